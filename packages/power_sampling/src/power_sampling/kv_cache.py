"""Batched chain state for MH proposals: a KV cache that keeps each chain's prefix, or a re-encoding fallback.

Both stores hold, for N chains, a *committed* sequence (prompt + current MCMC state) and, during a proposal, a
*working* sequence = committed[:keep] + newly sampled tokens. The protocol:

1. ``begin(keep, pending)``: start a proposal that keeps the first ``keep_i`` tokens of chain i; ``pending_i`` is
   the last kept token (the one whose logits predict the first resampled token).
2. ``next_logits(active)`` -> ``(N, V)`` next-token logits for every row (rows not ``active`` give junk).
3. ``push(tokens, active)``: append sampled tokens to the active rows.
4. ``end(accept)``: rows with ``accept`` commit their working sequence; the others keep the old one.

:class:`KVCacheChains` keeps an HF ``DynamicCache`` with one row per chain in a right-aligned layout (row i's
valid columns are the last ``n_i`` ones, positions ``0..n_i-1``). A proposal masks the columns after the kept
prefix out (attention mask holes) and appends new columns; ``end`` gathers each row's surviving columns back into
a right-aligned cache. Nothing before the resample index is ever recomputed, unlike the reference code, which
re-encodes the whole prefix in ``model.generate`` for every proposal. :class:`ReencodeChains` re-runs the model
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


class KVCacheChains:
    """Per-chain KV cache with prefix reuse (see the module docstring).

    Args:
        model: an HF causal LM (or any rlcore LM returning a DynamicCache).
        prompts: N prompt id lists (each non-empty).
        device: where the model runs.
    """

    def __init__(self, model: Any, prompts: list[list[int]], device: torch.device, pad_id: int = 0):
        self.model, self.device, self.pad_id = model, device, pad_id
        N = len(prompts)
        W = max(len(p) for p in prompts) - 1
        ids = torch.full((N, W), pad_id, dtype=torch.long)
        mask = torch.zeros((N, W), dtype=torch.long)
        for i, p in enumerate(prompts):
            if len(p) > 1:
                ids[i, W - len(p) + 1:] = torch.as_tensor(p[:-1])
                mask[i, W - len(p) + 1:] = 1
        self.cache = None
        self.mask = mask.to(device)  # (N, S) valid cache columns, right-aligned
        if W > 0:
            pos = (self.mask.cumsum(-1) - 1).clamp(min=0)
            _, self.cache = lm_forward(model, ids.to(device), self.mask, pos, None, logits_to_keep=1)
            self._compact(self.mask.bool())  # zero the pad columns (fully masked queries may have produced NaN)
        self.pending = torch.as_tensor([p[-1] for p in prompts], device=device)  # (N,) last token, not yet cached
        self.length = torch.as_tensor([len(p) for p in prompts], device=device)  # (N,) committed length

    def begin(self, keep: torch.Tensor, pending: torch.Tensor) -> None:
        S = self.mask.shape[1]
        n_valid = self.length - 1  # (N,) cached columns of the committed sequence
        first = S - n_valid  # (N,) column of position 0
        col = torch.arange(S, device=self.device)[None, :]
        self._old = (self.mask.bool(), self.pending.clone(), self.length.clone(), S)
        self.work_mask = (col >= first[:, None]) & (col < (first + keep - 1)[:, None])  # (N, S) kept prefix
        self.pending = pending.to(self.device).clone()
        self.pos = keep - 1  # (N,) position of the pending token
        self.work_len = keep.clone()

    @torch.no_grad()
    def next_logits(self, active: torch.Tensor) -> torch.Tensor:
        attn = torch.cat([self.work_mask, active[:, None]], 1).long()  # (N, S+1)
        logits, self.cache = lm_forward(self.model, self.pending[:, None], attn, self.pos[:, None], self.cache,
                                        logits_to_keep=1)
        self.work_mask = attn.bool()
        return logits[:, -1]  # (N, V)

    def push(self, tokens: torch.Tensor, active: torch.Tensor) -> None:
        self.pending = torch.where(active, tokens, self.pending)
        self.pos = self.pos + active.long()
        self.work_len = self.work_len + active.long()

    def end(self, accept: torch.Tensor) -> None:
        old_mask, old_pending, old_len, S_old = self._old
        W = self.work_mask.shape[1]
        old = torch.zeros_like(self.work_mask)
        old[:, :S_old] = old_mask
        keep_cols = torch.where(accept[:, None], self.work_mask, old)  # (N, W)
        self.pending = torch.where(accept, self.pending, old_pending)
        self.length = torch.where(accept, self.work_len, old_len)
        if W > 0:
            self._compact(keep_cols)

    def _compact(self, valid: torch.Tensor) -> None:
        """Gather each row's ``valid`` columns into a right-aligned cache of width max(valid.sum(1))."""
        counts = valid.sum(1)  # (N,)
        S = int(counts.max()) if valid.numel() else 0
        order = torch.argsort(valid.to(torch.int8), dim=1, stable=True)[:, valid.shape[1] - S:]  # (N, S)
        new_mask = torch.arange(S, device=self.device)[None, :] >= (S - counts)[:, None]  # (N, S)
        if self.cache is not None:
            for layer in _cache_layers(self.cache):
                if getattr(layer, "keys", None) is None or layer.keys.numel() == 0:
                    continue
                H, D = layer.keys.shape[1], layer.keys.shape[3]
                idx = order[:, None, :, None].expand(-1, H, -1, D)  # (N, H, S, D)
                keep = new_mask[:, None, :, None]
                layer.keys = torch.where(keep, layer.keys.gather(2, idx), 0)
                layer.values = torch.where(keep, layer.values.gather(2, idx), 0)
        self.mask = new_mask.long()


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

    def begin(self, keep: torch.Tensor, pending: torch.Tensor) -> None:
        self.work, self.work_len = self.committed.clone(), keep.clone()

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

    def end(self, accept: torch.Tensor) -> None:
        self.committed = torch.where(accept[:, None], self.work, self.committed)
        self.length = torch.where(accept, self.work_len, self.length)


def make_chain_store(model: Any, prompts: list[list[int]], device: torch.device, pad_id: int = 0,
                     use_kv_cache: bool | None = None, max_new_tokens: int = 0) -> KVCacheChains | ReencodeChains:
    """A :class:`KVCacheChains` when the model takes a KV cache (and ``use_kv_cache`` is not False), else re-encode."""
    if use_kv_cache is None:
        use_kv_cache = cache_kwarg(model) is not None
    if use_kv_cache:
        return KVCacheChains(model, prompts, device, pad_id)
    return ReencodeChains(model, prompts, device, pad_id, max_new_tokens)
