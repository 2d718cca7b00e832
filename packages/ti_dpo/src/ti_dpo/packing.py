"""Shared-prompt layout: one packed row per pair, ``[x | y_w | y_l | anchor]``, with the prompt's tokens once.

A TRL preference batch scores ``[chosen; rejected]`` (and TI-DPO appends the anchors) as separate right-padded rows,
so the prompt x is encoded two or three times and every row is padded to the longest one. Here the rows of a pair
(``row g``, ``g + B``, ``g + 2B``, ...) become one packed row: the prompt tokens once, then each row's response
tokens. A 4D mask lets a response token see the prompt and the earlier tokens of its own response only, and each
token keeps the position id it has in its padded row (its column), so every token's hidden state is the one the
padded layout computes, up to float rounding. :attr:`SharedPromptLayout.src` maps each padded ``(row, column)`` to
its packed slot, so callers read hidden states back in the padded ``(R, T)`` layout and nothing downstream changes.

Gradient attribution at a *response* position is exact in this layout (the chosen and rejected responses do not see
each other); at a prompt position it is the sum over the pair's rows, so the trainer does not use this layout when
fused attribution needs prompt importances (``importance_span="sequence"``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

__all__ = ["SharedPromptLayout", "pack_shared_prompt", "shared_prompt_supported"]


@dataclasses.dataclass
class SharedPromptLayout:
    """A packed batch: ``P <= G`` rows of width ``W`` holding the ``R = k·G`` rows (G pairs) of a padded batch."""

    input_ids: torch.Tensor  # (P, W) packed token ids (pad slots hold the pad id)
    position_ids: torch.Tensor  # (P, W) each token's column in its padded row (0 on pad slots)
    allowed: torch.Tensor  # (P, W, W) bool: query slot q may attend to key slot k
    src: torch.Tensor  # (R, T) index into the flattened (P·W) slots; 0 where the padded row is padding

    def attention_mask(self, dtype: torch.dtype, implementation: str) -> torch.Tensor:
        """The ``(P, 1, W, W)`` mask for the model: boolean for sdpa, additive (0 / dtype min) for eager."""
        m = self.allowed.unsqueeze(1)
        if implementation == "sdpa":
            return m
        return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill(~m, torch.finfo(dtype).min)

    def gather(self, packed: torch.Tensor) -> torch.Tensor:
        """``(P, W, ...)`` packed values -> ``(R, T, ...)`` in the padded layout (differentiable)."""
        flat = packed.reshape(-1, *packed.shape[2:])  # (P·W, ...)
        return flat[self.src]  # (R, T, ...)


def shared_prompt_supported(model: Any) -> str | None:
    """``None`` when ``model`` can run the packed layout, else the reason it cannot (kept in the trainer's log).

    Needs a custom 4D mask taken as is (transformers >= 5 ``masking_utils``) with sdpa or eager attention, and no
    sliding-window layers (a 4D mask replaces the model's own window).
    """
    cfg = getattr(model, "config", None)
    impl = getattr(cfg, "_attn_implementation", None)
    if impl not in ("sdpa", "eager"):
        return f"attention implementation {impl!r} (needs 'sdpa' or 'eager')"
    if getattr(cfg, "use_sliding_window", False) or "sliding_attention" in (getattr(cfg, "layer_types", None) or ()):
        return "sliding-window attention"
    try:
        import transformers
        from packaging.version import Version
    except ImportError:  # pragma: no cover - transformers is a dependency
        return "transformers not importable"
    if Version(transformers.__version__) < Version("5.0.0"):
        return f"transformers {transformers.__version__} (4D masks need >= 5)"
    return None


def _first_fit(lengths: list[int], capacity: int) -> tuple[dict[int, tuple[int, int]], list[int]]:
    """First-fit decreasing: run -> (packed row, first slot), and the slots used in each row."""
    fill: list[int] = []
    place: dict[int, tuple[int, int]] = {}
    for g in sorted(range(len(lengths)), key=lambda g: -lengths[g]):
        n = lengths[g]
        row = next((i for i, used in enumerate(fill) if used + n <= capacity), len(fill))
        if row == len(fill):
            fill.append(0)
        place[g], fill[row] = (row, fill[row]), fill[row] + n
    return place, fill


def pack_shared_prompt(input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_mask: torch.Tensor,
                       groups: int, pad_id: int = 0, row_budget: int = 0) -> SharedPromptLayout | None:
    """Pack the rows ``g, g+G, g+2G, ...`` of a padded batch as one segment run ``[x_g | y_g0 | y_g1 ...]``.

    Each pair's run holds its shared prompt once, then each of its rows' response tokens. Runs are placed into packed
    rows first-fit-decreasing by length, a row holding several runs when they fit in
    ``max(longest run, row_budget)`` slots (runs never see each other: the mask is per pair).

    Args:
        input_ids: ``(R, T)`` rows, ``R`` a multiple of ``groups`` (TRL: ``[chosen; rejected]``, then the anchors).
        attention_mask: ``(R, T)`` 1 on real tokens.
        completion_mask: ``(R, T)`` 1 on response tokens.
        groups: ``G``, the number of pairs.
        pad_id: token id of the pad slots.
        row_budget: slots a packed row may hold (at least the longest run's length). The trainer keeps 0: wider
            rows save padding slots but cost quadratically more masked attention (on the tiny bench model a single
            row of all pairs measured the same as one row per pair, within noise).

    Returns:
        The layout, or ``None`` when some pair's rows do not share their prompt (same tokens at the same columns)
        or a row has a prompt token after a response token: then the padded layout must be used.

    Example:
        >>> ids = torch.tensor([[5, 6, 7, 0], [5, 6, 8, 9]])  # prompt [5, 6]; responses [7] and [8, 9]
        >>> am = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
        >>> cm = torch.tensor([[0, 0, 1, 0], [0, 0, 1, 1]])
        >>> lay = pack_shared_prompt(ids, am, cm, groups=1)
        >>> lay.input_ids.tolist(), lay.position_ids.tolist(), lay.src.tolist()
        ([[5, 6, 7, 8, 9]], [[0, 1, 2, 2, 3]], [[0, 1, 2, 0], [0, 1, 3, 4]])
    """
    R, T = input_ids.shape
    if groups < 1 or R % groups:
        raise ValueError(f"{R} rows do not split into {groups} groups")
    k = R // groups
    dev = input_ids.device
    am, cm = attention_mask.bool().cpu(), (completion_mask.bool() & attention_mask.bool()).cpu()
    ids = input_ids.cpu()
    prompt_m = am & ~cm  # (R, T)
    cols = torch.arange(T)
    runs: list[tuple[list[int], list[int], list[int]]] = []  # per pair: token ids, columns, segment of each slot
    offset = torch.zeros(R, T, dtype=torch.long)  # slot of each padded (row, column) inside its pair's run
    for g in range(groups):
        members = [g + j * groups for j in range(k)]
        p_cols = cols[prompt_m[members[0]]]
        g_ids, g_cols, g_seg = ids[members[0], p_cols].tolist(), p_cols.tolist(), [0] * len(p_cols)
        for j, r in enumerate(members):
            r_cols = cols[cm[r]]
            if not torch.equal(cols[prompt_m[r]], p_cols) or not torch.equal(ids[r, p_cols], ids[members[0], p_cols]):
                return None  # this pair's rows do not share one prompt
            if len(r_cols) and len(p_cols) and int(r_cols.min()) < int(p_cols.max()):
                return None  # a prompt token after a response token: not causal-prefix shaped
            offset[r, p_cols] = torch.arange(len(p_cols))
            offset[r, r_cols] = torch.arange(len(g_ids), len(g_ids) + len(r_cols))
            g_ids += ids[r, r_cols].tolist()
            g_cols += r_cols.tolist()
            g_seg += [j + 1] * len(r_cols)
        runs.append((g_ids, g_cols, g_seg))
    lengths = [len(run[0]) for run in runs]
    place, fill = _first_fit(lengths, max(1, max(lengths), row_budget))
    W = max(fill)  # trim the packed rows to the fullest
    P = len(fill)
    p_ids = torch.full((P, W), pad_id, dtype=input_ids.dtype)
    pos = torch.zeros((P, W), dtype=torch.long)
    pair = torch.full((P, W), -1, dtype=torch.long)  # -1: pad slot
    seg = torch.full((P, W), -1, dtype=torch.long)  # 0: the pair's prompt, j + 1: its j-th row's response
    src = torch.zeros(R, T, dtype=torch.long)
    for g, (g_ids, g_cols, g_seg) in enumerate(runs):
        row, start = place[g]
        sl = slice(start, start + len(g_ids))
        p_ids[row, sl], pos[row, sl], seg[row, sl] = torch.tensor(g_ids), torch.tensor(g_cols), torch.tensor(g_seg)
        pair[row, sl] = g
        members = [g + j * groups for j in range(k)]
        src[members] = offset[members] + row * W + start
    valid = pair >= 0  # (P, W)
    same_pair = pair.unsqueeze(2) == pair.unsqueeze(1)  # (P, W, W)
    q_seg, k_seg = seg.unsqueeze(2), seg.unsqueeze(1)  # (P, W, 1), (P, 1, W)
    causal = torch.ones(W, W, dtype=torch.bool).tril()  # slot order is causal order within a segment
    allowed = causal & valid.unsqueeze(1) & same_pair & ((k_seg == 0) | (k_seg == q_seg))
    allowed |= torch.eye(W, dtype=torch.bool)  # a pad slot attends to itself: no all-masked (NaN) row
    src = torch.where(am, src, torch.zeros_like(src))
    return SharedPromptLayout(p_ids.to(dev), pos.to(dev), allowed.to(dev), src.to(dev))
