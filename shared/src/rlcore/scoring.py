"""Scoring: per-token log-probs of given continuations (:func:`score_continuations`), with shared prompt prefill."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .lm import cache_kwarg, lm_forward
from .sampling import (
    _check_mm,
    _mm_rows,
    _model_dtype,
    _pad_left,
    _positions,
    _prefill_distinct,
    _record,
    _shared_prefix_len,
    model_device,
    selective_log_softmax,
)


def score_continuations(model: Any, prompt_ids: Sequence[Sequence[int]], continuation_ids: Sequence[Sequence[int]],
                        temperature: float = 1.0, batch_size: int | None = None, pad_id: int = 0, *,
                        mm_inputs: Mapping[str, torch.Tensor] | None = None, grad: bool = False,
                        share_prompts: bool = True, min_shared_prefix: int = 32) -> list[torch.Tensor]:
    """Per-token log-probs of each continuation given its prompt, in one forward pass per batch.

    Layout ``[left pad][prompt][continuation][right pad]`` so every continuation starts at the same column; the LM
    head runs only on the last ``max_cont + 1`` positions (``logits_to_keep``) and the log-softmax is selective.

    Prompt sharing (``share_prompts``, no-grad, no ``mm_inputs``, a model with a KV cache): pairs with identical
    prompt ids are grouped, each distinct prompt of a batch is prefilled once, its KV cache expanded to its pairs,
    and only the continuations are run on top (same numbers as the unshared pass up to float rounding).

    Args:
        model: a causal LM (HF or rlcore LM interface).
        prompt_ids: token ids of each pair's prompt (at least one token each).
        continuation_ids: token ids of each pair's continuation (may be empty).
        temperature: the log-probs are of ``softmax(logits / temperature)``.
        batch_size: pairs per forward pass; ``None`` = all at once.
        pad_id: the padding id (never attended to).
        mm_inputs: extra model inputs (first dimension = number of pairs), passed to the forward pass.
        grad: keep the autograd graph (loss passes); the tensors then stay on the model's device.
        share_prompts: prefill a prompt shared by several pairs once (see above).
        min_shared_prefix: distinct prompts of a batch that start with at least this many identical tokens
            prefill that prefix once (layout ``[prefix][left pad][tail]``).

    Returns:
        One ``(len(continuation),)`` float32 tensor per pair (log-probs at ``temperature``), on CPU unless ``grad``.

    """
    if len(prompt_ids) != len(continuation_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(continuation_ids)} continuations")
    mm = _check_mm(mm_inputs, len(prompt_ids), what="prompt/continuation pair")
    _record("score", [list(p) for p in prompt_ids], None, mm, [list(c) for c in continuation_ids])
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError("every prompt needs at least one token to condition on")
    keys = [tuple(int(t) for t in p) for p in prompt_ids]
    share = (share_prompts and not grad and mm is None and cache_kwarg(model) is not None
             and (len(set(keys)) < len(keys) or _shared_prefix_len(list(set(keys)), min_shared_prefix) > 0))
    ctx = torch.enable_grad() if grad else torch.no_grad()
    with ctx:
        if share:
            return _score_shared(model, keys, continuation_ids, temperature, batch_size, pad_id, min_shared_prefix)
        return _score_plain(model, prompt_ids, continuation_ids, temperature, batch_size, pad_id, mm, grad)


def _score_plain(model, prompt_ids, continuation_ids, temperature, batch_size, pad_id, mm, grad):
    device = model_device(model)
    dtype = _model_dtype(model)
    n = len(prompt_ids)
    bs = batch_size or max(n, 1)
    out: list[torch.Tensor] = []
    for s in range(0, n, bs):
        ps, cs = prompt_ids[s:s + bs], continuation_ids[s:s + bs]
        ids, mask = _pad_left(ps, pad_id, device)
        C = max((len(c) for c in cs), default=0)
        if C == 0:
            out += [torch.zeros(0) for _ in cs]
            continue
        cont = torch.full((len(cs), C), pad_id, dtype=torch.long)
        cmask = torch.zeros((len(cs), C), dtype=torch.long)
        for i, c in enumerate(cs):
            cont[i, : len(c)] = torch.as_tensor(list(c), dtype=torch.long)
            cmask[i, : len(c)] = 1
        ids = torch.cat([ids, cont.to(device)], 1)
        mask = torch.cat([mask, cmask.to(device)], 1)
        logits, _ = lm_forward(model, ids, mask, _positions(mask), None, logits_to_keep=C + 1,
                               **_mm_rows(mm, range(s, s + len(ps)), device, dtype))
        logits = logits[:, :-1].float() / (temperature if temperature > 0 else 1.0)  # (b, C, V)
        lp = selective_log_softmax(logits, cont.to(device))  # (b, C)
        out += [lp[i, : len(c)] if grad else lp[i, : len(c)].cpu() for i, c in enumerate(cs)]
    return out


def _score_shared(model, keys, continuation_ids, temperature, batch_size, pad_id, min_shared_prefix):
    device = model_device(model)
    n = len(keys)
    groups: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    order = [i for members in groups.values() for i in members]  # pairs grouped by prompt
    bs = batch_size or max(n, 1)
    out: list[torch.Tensor | None] = [None] * n
    for s in range(0, n, bs):
        chunk = order[s:s + bs]
        cs = [list(continuation_ids[i]) for i in chunk]
        C = max((len(c) for c in cs), default=0)
        if C == 0:
            for i in chunk:
                out[i] = torch.zeros(0)
            continue
        uniq = list(dict.fromkeys(keys[i] for i in chunk))
        slot = {k: u for u, k in enumerate(uniq)}
        res = _prefill_distinct(model, uniq, pad_id, device, _shared_prefix_len(uniq, min_shared_prefix), {})
        if res is None:  # this cache cannot be expanded: score the chunk unshared
            for i, r in zip(chunk, _score_plain(model, [list(keys[i]) for i in chunk], cs, temperature, None, pad_id,
                                                None, False)):
                out[i] = r
            continue
        last, cache, pmask = res  # (U, 1, V), KV of the U prompts, (U, P)
        expand = torch.tensor([slot[keys[i]] for i in chunk], device=device)
        last = last.index_select(0, expand)
        pmask = pmask.index_select(0, expand)
        cont = torch.full((len(cs), C), pad_id, dtype=torch.long)
        cmask = torch.zeros((len(cs), C), dtype=torch.long)
        for r, c in enumerate(cs):
            cont[r, : len(c)] = torch.as_tensor(c, dtype=torch.long)
            cmask[r, : len(c)] = 1
        cont, cmask = cont.to(device), cmask.to(device)
        if C > 1:
            cache.reorder_cache(expand)
            mask = torch.cat([pmask, cmask[:, : C - 1]], 1)
            pos = pmask.sum(-1, keepdim=True) + torch.arange(C - 1, device=device)[None]
            rest, _ = lm_forward(model, cont[:, : C - 1], mask, pos, cache)
            logits = torch.cat([last, rest], 1)
        else:
            logits = last
        logits = logits.float() / (temperature if temperature > 0 else 1.0)  # (b, C, V)
        lp = selective_log_softmax(logits, cont)
        for r, i in enumerate(chunk):
            out[i] = lp[r, : len(cs[r])].cpu()
    return out  # type: ignore[return-value]
