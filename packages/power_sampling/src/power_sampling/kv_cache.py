"""Batched chain state for MH proposals: a KV cache that keeps each chain's prefix, or a re-encoding fallback.

Both stores hold, for N chains, a *committed* sequence (prompt + current MCMC state) and, during a proposal, a
*working* sequence = committed[:keep] + newly sampled tokens. The protocol:

1. ``begin(rows, keep, pending)``: the selected rows start a proposal that keeps the first ``keep_i`` tokens of
   chain i; ``pending_i`` is the last kept token (the one whose logits predict the first resampled token).
2. ``next_logits(active)`` -> ``(N, V)`` next-token logits for every row (rows not ``active`` give junk).
3. ``push(tokens, active)``: append sampled tokens to the active rows.
4. ``end(rows, accept)``: selected rows with ``accept`` commit their working sequence; the others keep the old one.

Rows begin and end proposals independently, so a chain that finishes a short proposal starts its next move at
the very next decode step while longer proposals of other chains continue (no batch-wide barrier).

:class:`KVCacheChains` keeps an HF ``DynamicCache`` with one row per chain (row i's live columns are tracked by
masks). A proposal masks the columns after the kept prefix out (attention-mask holes) and appends new columns;
stale columns are dropped by an occasional gather. Nothing before the resample index is ever recomputed, unlike
the reference code, which re-encodes the whole prefix in ``model.generate`` for every proposal. :class:`ReencodeChains` re-runs the model
on every full sequence each step (right padding, so position t is column t): for models without a KV cache such
as :class:`rlcore.testing.TableLM`.
"""

from __future__ import annotations

from typing import Any

import torch
from rlcore.lm import cache_kwarg, lm_forward

__all__ = ["KVCacheChains", "ReencodeChains", "make_chain_store"]


def _cache_layers(cache: Any) -> list[Any]:
    """The per-layer K/V holders of a DynamicCache (transformers >= 4.56), checked to be plain full-attention."""
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise TypeError(f"unsupported KV cache {type(cache).__name__}: expected a transformers DynamicCache")
    for layer in layers:
        if getattr(layer, "is_sliding", False) or not hasattr(layer, "keys"):
            raise TypeError(f"unsupported cache layer {type(layer).__name__}: sliding-window/linear-attention caches "
                            "cannot be cropped per row")
    return layers


def _install_growable_update(layer: Any) -> None:
    """Make a DynamicLayer append into a buffer with doubling capacity instead of ``torch.cat`` on every step.

    ``layer.keys`` / ``layer.values`` stay ``(N, H, S, D)`` tensors (views of the buffer's first S columns), so the
    rest of this module and the model see an ordinary DynamicCache. A decode step then costs O(1) amortised copies
    instead of O(S) (``torch.cat`` re-copies the whole cache each step: the largest cost of the step on CPU). When
    another method replaces ``layer.keys`` (compaction), the next append re-buffers it.
    """
    layer._ps_kbuf = layer._ps_vbuf = None

    def update(key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not getattr(layer, "is_initialized", True) or layer.keys is None or layer.keys.numel() == 0:
            layer.keys, layer.values = key_states, value_states
            layer.is_initialized = True
            layer._ps_kbuf = layer._ps_vbuf = None
            return layer.keys, layer.values
        S, n = layer.keys.shape[-2], key_states.shape[-2]
        kb, vb = layer._ps_kbuf, layer._ps_vbuf
        if (kb is None or S + n > kb.shape[-2] or layer.keys.data_ptr() != kb.data_ptr()
                or kb.shape[0] != layer.keys.shape[0]):
            cap = max(2 * (S + n), 64)
            N, H, _, D = layer.keys.shape
            kb = layer.keys.new_empty((N, H, cap, D))
            vb = layer.values.new_empty((N, H, cap, layer.values.shape[-1]))
            kb[:, :, :S], vb[:, :, :S] = layer.keys, layer.values
            layer._ps_kbuf, layer._ps_vbuf = kb, vb
        kb[:, :, S:S + n], vb[:, :, S:S + n] = key_states, value_states
        layer.keys, layer.values = kb[:, :, :S + n], vb[:, :, :S + n]
        return layer.keys, layer.values

    layer.update = update


class KVCacheChains:
    """Per-chain KV cache with prefix reuse (see the module docstring).

    ``begin``/``end`` act on a subset of rows, so chains can start and finish proposals at different decode steps
    (continuous batching of MCMC moves).

    Columns are tracked with three per-row masks: ``committed`` (the committed sequence minus its pending token),
    ``work`` (the working sequence minus its pending token) and ``col_pos`` (the position each column encodes).
    Column order does not matter to attention (positions are baked into the keys by RoPE) as long as the query is
    the newest column, which it always is. When most columns are stale the cache is compacted by a gather.

    Args:
        model: an HF causal LM (or any rlcore LM returning a DynamicCache).
        prompts: N prompt id lists (each non-empty).
        device: where the model runs.
    """

    def __init__(self, model: Any, prompts: list[list[int]], device: torch.device, pad_id: int = 0):
        self.model, self.device, self.pad_id = model, device, pad_id
        self._sdpa = getattr(getattr(model, "config", None), "_attn_implementation", None) == "sdpa"
        index = {k: i for i, k in enumerate(dict.fromkeys(tuple(p) for p in prompts))}  # chains share a prefill
        uniq = list(index)
        row_of = torch.as_tensor([index[tuple(p)] for p in prompts], device=device)  # (N,)
        U, W = len(uniq), max(len(p) for p in uniq) - 1
        ids = torch.full((U, W), pad_id, dtype=torch.long)
        mask = torch.zeros((U, W), dtype=torch.long)
        for i, p in enumerate(uniq):
            if len(p) > 1:
                ids[i, W - len(p) + 1:] = torch.as_tensor(p[:-1])
                mask[i, W - len(p) + 1:] = 1
        mask = mask.to(device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        self.cache = None
        if W > 0:
            _, self.cache = lm_forward(model, ids.to(device), mask, pos, None, logits_to_keep=1)
            for layer in _cache_layers(self.cache):
                if getattr(layer, "keys", None) is not None and layer.keys.numel():
                    layer.keys, layer.values = layer.keys[row_of], layer.values[row_of]  # (N, H, W, D)
                _install_growable_update(layer)
        mask, pos = mask[row_of], pos[row_of]  # (N, W)
        self.committed = mask.bool()  # (N, S)
        self.work = mask.bool()  # (N, S)
        self.col_pos = torch.where(self.committed, pos, -1)  # (N, S)
        if W > 0:
            self._compact()  # zero the pad columns (fully masked queries may have produced NaN there)
        self.pending = torch.as_tensor([p[-1] for p in prompts], device=device)  # (N,) last token, not yet cached
        self.committed_pending = self.pending.clone()
        self.pos = torch.as_tensor([len(p) - 1 for p in prompts], device=device)  # (N,) position of pending

    def begin(self, rows: torch.Tensor, keep: torch.Tensor, pending: torch.Tensor) -> None:
        """Rows ``rows`` start a proposal keeping their first ``keep`` tokens (``pending`` = the last kept one)."""
        kept = self.committed & (self.col_pos < (keep - 1)[:, None])  # (N, S)
        self.work = torch.where(rows[:, None], kept, self.work)
        self.pending = torch.where(rows, pending.to(self.device), self.pending)
        self.pos = torch.where(rows, keep - 1, self.pos)

    @torch.no_grad()
    def next_logits(self, active: torch.Tensor) -> torch.Tensor:
        attn = torch.cat([self.work, active[:, None]], 1)  # (N, S+1)
        # one query per row: its attention mask is the key mask itself. SDPA models take it prebuilt as
        # (N, 1, 1, S+1) bool, the mask transformers would build from the 2D one (skips that per-step work)
        mask = attn[:, None, None, :] if self._sdpa else attn.long()
        logits, self.cache = lm_forward(self.model, self.pending[:, None], mask, self.pos[:, None],
                                        self.cache, logits_to_keep=1)
        self.work = attn
        self.committed = torch.nn.functional.pad(self.committed, (0, 1))  # the new column is not committed yet
        self.col_pos = torch.cat([self.col_pos, torch.where(active, self.pos, -1)[:, None]], 1)
        return logits[:, -1]  # (N, V)

    def push(self, tokens: torch.Tensor, active: torch.Tensor) -> None:
        self.pending = torch.where(active, tokens, self.pending)
        self.pos = self.pos + active.long()

    def end(self, rows: torch.Tensor, accept: torch.Tensor) -> None:
        """Rows ``rows`` finish their proposal: ``accept`` ones commit it, the others return to the committed state."""
        acc = rows & accept
        self.committed = torch.where(acc[:, None], self.work, self.committed)
        self.committed_pending = torch.where(acc, self.pending, self.committed_pending)
        self.work = torch.where(rows[:, None], self.committed, self.work)
        self.pending = torch.where(rows, self.committed_pending, self.pending)
        live = int((self.committed | self.work).sum(1).max())
        if self.work.shape[1] > max(2 * live, live + 32):
            self._compact()

    def reorder(self, index: torch.Tensor) -> None:
        """Row i becomes a copy of row ``index[i]`` (SMC resampling): a row gather of the cache, no re-prefill.

        Only the rows whose ancestor is another row are copied (in place), so a resampling event costs the rows
        it changes, not the whole cache.
        """
        index = index.to(self.device)
        rows = torch.nonzero(index != torch.arange(len(index), device=self.device)).flatten()
        if len(rows) == 0:
            return
        src = index[rows]
        if self.cache is not None:
            for layer in _cache_layers(self.cache):
                if getattr(layer, "keys", None) is not None and layer.keys.numel():
                    layer.keys[rows] = layer.keys[src]
                    layer.values[rows] = layer.values[src]
        for name in ("committed", "work", "col_pos", "pending", "committed_pending", "pos"):
            setattr(self, name, getattr(self, name)[index])

    def _compact(self) -> None:
        """Gather each row's live (committed or working) columns into a right-aligned cache of the max live width."""
        valid = self.committed | self.work  # (N, W)
        counts = valid.sum(1)  # (N,)
        S = int(counts.max()) if valid.numel() else 0
        order = torch.argsort(valid.to(torch.int8), dim=1, stable=True)[:, valid.shape[1] - S:]  # (N, S)
        keep = torch.arange(S, device=self.device)[None, :] >= (S - counts)[:, None]  # (N, S)
        if self.cache is not None:
            for layer in _cache_layers(self.cache):
                if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
                    continue
                H, D = layer.keys.shape[1], layer.keys.shape[3]
                idx = order[:, None, :, None].expand(-1, H, -1, D)  # (N, H, S, D)
                k4 = keep[:, None, :, None]
                layer.keys = torch.where(k4, layer.keys.gather(2, idx), 0)
                layer.values = torch.where(k4, layer.values.gather(2, idx), 0)
        self.committed = self.committed.gather(1, order) & keep
        self.work = self.work.gather(1, order) & keep
        self.col_pos = torch.where(keep, self.col_pos.gather(1, order), -1)


class ReencodeChains:
    """The same protocol for LMs without a KV cache: every step runs the model on the full working sequences.

    Sequences are right-padded (position t is column t, which is how :class:`rlcore.testing.TableLM` reads them).
    """

    def __init__(self, model: Any, prompts: list[list[int]], device: torch.device, pad_id: int = 0,
                 max_new_tokens: int = 0):
        self.model, self.device, self.pad_id = model, device, pad_id
        W = max(len(p) for p in prompts) + max_new_tokens
        self.committed = torch.full((len(prompts), W), pad_id, dtype=torch.long, device=device)  # (N, W)
        for i, p in enumerate(prompts):
            self.committed[i, : len(p)] = torch.as_tensor(p)
        self.length = torch.as_tensor([len(p) for p in prompts], device=device)  # (N,)
        self.work, self.work_len = self.committed.clone(), self.length.clone()

    def begin(self, rows: torch.Tensor, keep: torch.Tensor, pending: torch.Tensor) -> None:
        self.work = torch.where(rows[:, None], self.committed, self.work)
        self.work_len = torch.where(rows, keep, self.work_len)

    @torch.no_grad()
    def next_logits(self, active: torch.Tensor) -> torch.Tensor:
        W = int(self.work_len.max())
        col = torch.arange(W, device=self.device)[None, :]
        mask = (col < self.work_len[:, None]).long()  # (N, W)
        ids = self.work[:, :W] * mask + self.pad_id * (1 - mask)
        logits, _ = lm_forward(self.model, ids, mask, col.expand_as(ids), None)
        rows = torch.arange(len(ids), device=logits.device)
        return logits[rows, (self.work_len - 1).to(logits.device)]  # (N, V)

    def push(self, tokens: torch.Tensor, active: torch.Tensor) -> None:
        at = self.work_len.clamp(max=self.work.shape[1] - 1)[:, None]
        self.work.scatter_(1, at, torch.where(active[:, None], tokens[:, None], self.work.gather(1, at)))
        self.work_len = self.work_len + active.long()

    def reorder(self, index: torch.Tensor) -> None:
        """Row i becomes a copy of row ``index[i]`` (SMC resampling)."""
        index = index.to(self.device)
        for name in ("committed", "length", "work", "work_len"):
            setattr(self, name, getattr(self, name)[index])

    def end(self, rows: torch.Tensor, accept: torch.Tensor) -> None:
        acc = rows & accept
        self.committed = torch.where(acc[:, None], self.work, self.committed)
        self.length = torch.where(acc, self.work_len, self.length)
        self.work = torch.where(rows[:, None], self.committed, self.work)
        self.work_len = torch.where(rows, self.length, self.work_len)


def make_chain_store(model: Any, prompts: list[list[int]], device: torch.device, pad_id: int = 0,
                     use_kv_cache: bool | None = None, max_new_tokens: int = 0) -> KVCacheChains | ReencodeChains:
    """A :class:`KVCacheChains` when the model takes a KV cache (and ``use_kv_cache`` is not False), else re-encode."""
    if use_kv_cache is None:
        use_kv_cache = cache_kwarg(model) is not None
    if use_kv_cache:
        return KVCacheChains(model, prompts, device, pad_id)
    return ReencodeChains(model, prompts, device, pad_id, max_new_tokens)
