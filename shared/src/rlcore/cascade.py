"""Cascade (shared-prefix) decode attention: rows that share prompt KV read it once per step, not once per row.

Best-of-n sampling, GRPO groups and P-GenRM's Ind-n chains decode many rows over the same prompt. The usual
path copies the prompt's KV cache to every row (``Cache.reorder_cache`` with repeated indices), so each decode
step reads ``rows x prompt`` keys and values. Here the prompt KV stays in *levels*, each shared by a group of
rows, and only the generated tokens live in a per-row cache. One decode step computes, for every level, the
attention of all its rows' queries against that level's keys in one batched matmul (the group's queries are
stacked along the query axis), then the per-row attention over the generated tokens, and merges the partial
results with their log-sum-exp weights:

    o = sum_l exp(lse_l - lse) * o_l,   lse = logsumexp_l lse_l                       (exact softmax split)

where ``o_l = softmax(q K_l^T * s) V_l`` over level ``l``'s valid positions and ``lse_l`` its log normaliser.
This is the prefix-sharing idea of Hydragen (Juravsky et al., 2024) and FlashInfer's cascade attention, written
for transformers' attention interface so that any supported HF model uses it unchanged. Levels used by
``rlcore.rollout.HFGenerator``: the token prefix common to all prompts of a call (one group of every row) and
each distinct prompt's own tail (one group per prompt).

Why hand-written: transformers has no shared-prefix attention (its SDPA path needs the expanded cache), and
FlashInfer / vLLM's prefix caching are CUDA-only.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["ATTN_NAME", "SharedLevel", "CascadeState", "attend", "cascade_attention_forward", "full_attention_decoder",
           "supports_cascade", "cascade_attention"]

ATTN_NAME = "rlcore_cascade"
# decoder-only families whose attention is plain scaled dot-product over the cache (no softcapping, sinks or
# per-layer sliding windows in this path; a sliding-window config is refused by `supports_cascade`)
SUPPORTED_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "mistral"})


@dataclass
class SharedLevel:
    """KV shared by groups of rows.

    Attributes:
        keys, values: per layer, ``(G, H_kv, L, d)`` (post-RoPE, as the cache stores them).
        valid: ``(G, L)`` bool, False at padding.
        rows: ``(G, n)`` long, the batch rows of each group (padded with 0 where ``rows_valid`` is False).
        rows_valid: ``(G, n)`` bool.

    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    valid: torch.Tensor
    rows: torch.Tensor
    rows_valid: torch.Tensor

    @classmethod
    def from_groups(cls, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor], valid: torch.Tensor,
                    row_group: torch.Tensor) -> SharedLevel:
        """Build from ``row_group`` ``(B,)``: the group (index into ``keys[l]``'s first axis) of every batch row."""
        G = keys[0].shape[0]
        counts = torch.bincount(row_group, minlength=G)
        n = max(int(counts.max()), 1)
        order = torch.argsort(row_group, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(len(row_group), device=row_group.device) - starts[row_group[order]]
        rows = torch.zeros((G, n), dtype=torch.long, device=row_group.device)
        rows_valid = torch.zeros((G, n), dtype=torch.bool, device=row_group.device)
        rows[row_group[order], slot] = order
        rows_valid[row_group[order], slot] = True
        return cls(list(keys), list(values), valid.to(torch.bool), rows, rows_valid)


@dataclass
class CascadeState:
    """The shared levels of one decode batch (the generated tokens are in the model's own per-row cache)."""

    levels: list[SharedLevel]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, valid: torch.Tensor | None,
           scaling: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention with its log normaliser, in float32.

    ``o = softmax(q k^T * scaling) v`` over the valid keys, ``lse = log sum exp(q k^T * scaling)``.

    Args:
        q: ``(N, H, R, d)`` queries (R query rows per head).
        k: ``(N, H, L, d)`` keys.
        v: ``(N, H, L, d)`` values.
        valid: ``(N, L)`` bool or None (all valid).
        scaling: the softmax scale (``1/sqrt(d)`` for standard attention).

    Returns:
        ``(o (N, H, R, d), lse (N, H, R))``; a row with no valid key has ``o = 0`` and ``lse = -inf``.

    """
    s = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scaling  # (N, H, R, L)
    if valid is not None:
        s = s.masked_fill(~valid[:, None, None, :], float("-inf"))
    m = s.amax(-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p = torch.exp(s - m)
    z = p.sum(-1)  # (N, H, R)
    o = torch.matmul(p, v.float()) / z.clamp_min(torch.finfo(torch.float32).tiny)[..., None]
    return o, torch.log(z) + m.squeeze(-1)


def cascade_attention_forward(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                              attention_mask: Any = None, scaling: float | None = None, dropout: float = 0.0,
                              rlcore_cascade: CascadeState | None = None, **kwargs: Any):
    """One decode step (query length 1) as a transformers attention-interface function.

    ``query`` ``(B, H_q, 1, d)``; ``key`` / ``value`` ``(B, H_kv, t, d)``: the per-row cache of generated tokens
    (the current one included), all valid. The shared levels come from ``rlcore_cascade`` (passed through the
    model's forward kwargs). Returns ``(out (B, 1, H_q, d), None)`` as transformers' attention functions do.
    """
    if rlcore_cascade is None:
        raise ValueError("cascade attention needs rlcore_cascade= (use rlcore.cascade.cascade_attention)")
    B, Hq, Q, d = query.shape
    if Q != 1:
        raise ValueError(f"cascade attention decodes one token per row, got a query of length {Q}")
    Hkv = key.shape[1]
    rep = Hq // Hkv
    scale = float(scaling if scaling is not None else d ** -0.5)
    layer = module.layer_idx
    qf = query.reshape(B, Hkv, rep, d)  # head h = kv_head * rep + r, as repeat_kv lays them out
    outs, lses = [], []
    o, lse = attend(qf, key, value, None, scale)  # own generated tokens: (B, Hkv, rep, d)
    outs.append(o)
    lses.append(lse)
    for lvl in rlcore_cascade.levels:
        G, n = lvl.rows.shape
        qg = qf[lvl.rows.reshape(-1)].reshape(G, n, Hkv, rep, d).permute(0, 2, 1, 3, 4).reshape(G, Hkv, n * rep, d)
        og, lg = attend(qg, lvl.keys[layer], lvl.values[layer], lvl.valid, scale)
        og = og.reshape(G, Hkv, n, rep, d).permute(0, 2, 1, 3, 4).reshape(G * n, Hkv, rep, d)
        lg = lg.reshape(G, Hkv, n, rep).permute(0, 2, 1, 3).reshape(G * n, Hkv, rep)
        sel = lvl.rows_valid.reshape(-1)
        idx = lvl.rows.reshape(-1)[sel]
        o_rows = torch.zeros_like(o).index_copy_(0, idx, og[sel])
        l_rows = torch.full_like(lse, float("-inf")).index_copy_(0, idx, lg[sel])
        outs.append(o_rows)
        lses.append(l_rows)
    w = torch.softmax(torch.stack(lses), 0)  # (levels + 1, B, Hkv, rep); the own level is always finite
    out = (w[..., None] * torch.stack(outs)).sum(0)
    return out.reshape(B, 1, Hq, d).to(query.dtype), None


def _register() -> None:
    from transformers import AttentionInterface

    if ATTN_NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(ATTN_NAME, cascade_attention_forward)


def full_attention_decoder(model: Any) -> bool:
    """True for an HF decoder of a supported family (llama, qwen2, qwen3, mistral) with full attention everywhere.

    One ``(B, 1, q, kv)`` attention mask is then valid for all of its layers.
    """
    cfg = getattr(model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in SUPPORTED_MODEL_TYPES:
        return False
    if not hasattr(cfg, "_attn_implementation"):
        return False
    if getattr(cfg, "use_sliding_window", False) and getattr(cfg, "sliding_window", None):
        return False
    layer_types = getattr(cfg, "layer_types", None) or []
    return all(t == "full_attention" for t in layer_types)


def supports_cascade(model: Any) -> bool:
    """True for an HF decoder of a supported family with full attention in every layer."""
    if not full_attention_decoder(model):
        return False
    try:  # the levels travel through forward(**kwargs) down to the attention function
        params = inspect.signature(type(model).forward).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


@contextlib.contextmanager
def cascade_attention(model: Any) -> Iterator[None]:
    """Route the model's attention through :func:`cascade_attention_forward` inside the block (restored after)."""
    _register()
    cfg = model.config
    before = cfg._attn_implementation
    cfg._attn_implementation = ATTN_NAME
    try:
        yield
    finally:
        cfg._attn_implementation = before
