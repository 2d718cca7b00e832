"""Sampling building blocks shared by the generators and scoring: parameters, results, logit processing, helpers.

:class:`SamplingParams`, :class:`Completion` and the :class:`Generator` protocol, the call recorders of
``rlcore.testing``, logit processing and selective log-softmax, prompt encoding and argument checks, seeded
per-row uniforms, and the prefill helpers used by both :class:`rlcore.hf_generator.HFGenerator` and
:func:`rlcore.scoring.score_continuations`. Conventions: see :mod:`rlcore.rollout`, the public entry point.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

import torch

from .chat import fit_messages
from .lm import lm_forward


@dataclasses.dataclass
class SamplingParams:
    """Sampling settings shared by every backend (names follow vLLM / TRL)."""

    max_new_tokens: int = 256
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 disables
    n: int = 1
    stop: list[str] = dataclasses.field(default_factory=list)
    stop_token_ids: list[int] | None = None  # None: the tokenizer's / model's EOS
    seed: int | None = None
    bad_token_ids: list[int] | None = None  # never sampled (logit -inf before temperature/top-k/top-p)

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must be non-empty")
        if self.bad_token_ids is not None:
            self.bad_token_ids = [int(t) for t in self.bad_token_ids]
            if any(t < 0 for t in self.bad_token_ids):
                raise ValueError(f"bad_token_ids must be >= 0, got {self.bad_token_ids}")


@dataclasses.dataclass
class Completion:
    """One sampled continuation of one prompt."""

    prompt_index: int
    token_ids: list[int]
    text: str
    logprobs: torch.Tensor  # (T,) under the sampling distribution
    raw_logprobs: torch.Tensor  # (T,) under the raw model
    finish_reason: Literal["eos", "stop", "length"]


class Generator(Protocol):
    """Batched sampler: ``generate(...)[i][j]`` is the j-th of ``params.n`` samples for prompt i."""

    def generate(
        self,
        prompts: Sequence[str] | None = None,
        prompt_ids: Sequence[Sequence[int]] | None = None,
        params: SamplingParams | None = None,
        generator: torch.Generator | None = None,
        *,
        seeds: Sequence[int] | None = None,
        mm_inputs: Mapping[str, torch.Tensor] | None = None,
        messages: Sequence[list[dict]] | None = None,
    ) -> list[list[Completion]]: ...


# ------------------------------------------------------------------ recording hook (rlcore.testing)
# Callbacks registered by ``rlcore.testing.recording_generators``; every generate / score call reports to them, so
# calls are recorded however the caller imported the function or class.
_RECORDERS: list[Callable[..., None]] = []


def _record(kind: str, prompt_ids, params, mm_inputs, continuation_ids=None) -> None:
    for cb in list(_RECORDERS):
        cb(kind, prompt_ids, params, mm_inputs, continuation_ids)


@contextlib.contextmanager
def _recorder(cb: Callable[..., None]):
    """Register ``cb(kind, prompt_ids, params, mm_inputs, continuation_ids)`` for every generate/score call."""
    _RECORDERS.append(cb)
    try:
        yield
    finally:
        _RECORDERS.remove(cb)


def process_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                   bad_token_ids: Sequence[int] | torch.Tensor | None = None):
    """``bad_token_ids`` masking, then temperature, then top-k, then top-p (nucleus); dropped entries are ``-inf``.

    Both filters keep every token whose logit is at least a threshold: the k-th largest logit (top-k), and the logit
    of the token whose probability mass crosses ``top_p`` (top-p, over the top-k survivors), so tokens tied with the
    last one kept are all kept. With top-k on, top-p is computed on the k values ``torch.topk`` already sorted
    (plus the mass of tokens tied with the k-th): no sort over the vocabulary, which costs 3 ms per step at a 32K
    vocabulary and 15 ms at 152K (batch 4, one CPU thread).

    Args:
        logits: ``(N, V)``.
        temperature: divides the logits (0 is treated as 1 here: greedy decoding takes the argmax elsewhere).
        top_k: keep the k largest logits (0 disables).
        top_p: keep the smallest set of tokens whose probability reaches ``top_p`` (1 disables).
        bad_token_ids: ids that get ``-inf`` first, so they are never sampled and take no top-k/top-p slot.

    Returns:
        ``(N, V)`` float32 logits of the sampling distribution (``log_softmax`` of it is the sampling log-prob).

    """
    x = logits.float()
    if bad_token_ids is not None and len(bad_token_ids):
        x = x.index_fill(-1, torch.as_tensor(bad_token_ids, dtype=torch.long, device=x.device), float("-inf"))
    x = x / (temperature if temperature > 0 else 1.0)
    if top_k and top_k < x.shape[-1]:
        vals = torch.topk(x, top_k, dim=-1).values  # (N, k), descending
        kth = vals[..., -1:]  # (N, 1)
        if top_p >= 1.0:
            return x.masked_fill(x < kth, float("-inf"))
        # the survivors are vals plus the tokens tied with the k-th value that topk left out
        tied_out = ((x == kth).sum(-1, keepdim=True) - (vals == kth).sum(-1, keepdim=True)).float()  # (N, 1)
        log_z = torch.logaddexp(torch.logsumexp(vals, -1, keepdim=True), kth + tied_out.log())  # (N, 1)
        return x.masked_fill(x < _nucleus_threshold(vals, (vals - log_z).exp(), top_p), float("-inf"))
    if top_p < 1.0:
        sorted_x = torch.sort(x, dim=-1, descending=True).values  # (N, V)
        x = x.masked_fill(x < _nucleus_threshold(sorted_x, torch.softmax(sorted_x, dim=-1), top_p), float("-inf"))
    return x


def _nucleus_threshold(sorted_x: torch.Tensor, probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The logit of the token whose mass crosses ``top_p`` (``(N, 1)``), from descending logits and their probs.

    A token is kept when the mass before it is at most ``top_p`` (the crossing token is kept); the kept tokens are a
    prefix of the sorted order, so the threshold is the last kept value.
    """
    keep = probs.cumsum(-1) - probs <= top_p  # (N, M), a prefix (the first token is always kept)
    return sorted_x.gather(-1, keep.sum(-1, keepdim=True) - 1)


def _sample_step(last: torch.Tensor, params: SamplingParams, bad_t: torch.Tensor | None, u: torch.Tensor | None,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One token per row from the last position's logits ``(B, V)``: ``(token, sampling log-prob, raw log-prob)``.

    Greedy at temperature 0 (sampling log-prob 0); else from the filtered distribution (:func:`process_logits`), by
    inverse CDF on the row's uniform ``u`` ``(B,)`` when given (seeded rows), else ``torch.multinomial``.
    """
    raw_all = torch.log_softmax(last, -1)  # (B, V)
    if params.temperature == 0:
        tok = (last if bad_t is None else last.index_fill(-1, bad_t, float("-inf"))).argmax(-1)
        lp = torch.zeros(last.shape[0], device=last.device)
    else:
        samp_all = torch.log_softmax(process_logits(last, params.temperature, params.top_k, params.top_p, bad_t), -1)
        if u is not None:
            tok = _inverse_cdf(samp_all.exp(), u)
        else:
            tok = torch.multinomial(samp_all.exp(), 1, generator=generator).squeeze(-1)
        lp = samp_all.gather(-1, tok[:, None]).squeeze(-1)
    return tok, lp, raw_all.gather(-1, tok[:, None]).squeeze(-1)


def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``log_softmax(logits, -1).gather(-1, index)`` without materialising the full ``(..., V)`` log-softmax.

    fp32/fp64: gather minus a per-row ``logsumexp``; bf16/fp16: row by row in fp32 (logsumexp in low precision
    loses accuracy). Shapes: ``logits (..., V)``, ``index (...)`` -> ``(...)``.
    """
    if logits.dtype in (torch.float32, torch.float64):
        picked = logits.gather(-1, index.unsqueeze(-1)).squeeze(-1)
        lse = torch.stack([torch.logsumexp(row, dim=-1) for row in logits])  # one row of the batch at a time
        return picked - lse
    out = [torch.log_softmax(row.float(), -1).gather(-1, i.unsqueeze(-1)).squeeze(-1) for row, i in zip(logits, index)]
    return torch.stack(out)


def encode_prompts(tokenizer: Any, prompts: Sequence[str] | None, prompt_ids: Sequence[Sequence[int]] | None,
                   ids_arg: str = "prompt_ids", messages: Sequence[Sequence[dict]] | None = None) -> list[list[int]]:
    """Token ids of exactly one of ``prompts`` (strings), ``prompt_ids`` or ``messages`` (chat); no empty prompt.

    ``messages`` are rendered with ``tokenizer.apply_chat_template(m, add_generation_prompt=True)`` and encoded
    without extra special tokens (the template writes them); a system turn the template cannot render is folded
    into the first user turn (:func:`rlcore.chat.fit_messages`). ``ids_arg`` names the ids argument in errors.
    """
    given = [x is not None for x in (prompts, prompt_ids, messages)]
    if sum(given) != 1:
        raise ValueError(f"pass exactly one of prompts= or {ids_arg}=" + (" or messages=" if messages is not None else ""))
    if messages is not None:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("messages= need a tokenizer with a chat template; pass prompts= or prompt_ids= instead")
        texts = []
        for i, conv in enumerate(messages):
            if not isinstance(conv, Sequence) or isinstance(conv, str) or not all(isinstance(m, Mapping) for m in conv):
                raise ValueError(f"messages[{i}] must be a list of {{'role': ..., 'content': ...}} dicts")
            texts.append(tokenizer.apply_chat_template(fit_messages(conv, tokenizer), add_generation_prompt=True,
                                                       tokenize=False))
        prompt_ids = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    elif prompts is not None:
        if tokenizer is None:
            raise ValueError(f"string prompts need a tokenizer; pass {ids_arg}= instead")
        prompt_ids = [tokenizer(p).input_ids for p in prompts]
    out = [list(map(int, p)) for p in prompt_ids]
    if not out:
        raise ValueError("no prompts given")
    for i, p in enumerate(out):
        if not p:
            raise ValueError(f"prompt {i} is empty (no tokens)")
    return out


def model_device(model: Any) -> torch.device:
    """The device of a model's parameters (CPU for a parameter-less LM)."""
    dev = getattr(model, "device", None)
    if isinstance(dev, torch.device):
        return dev
    try:
        return next(iter(model.parameters())).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")


def decode_context(model: Any) -> contextlib.AbstractContextManager:
    """The autograd mode of a sampling loop: inference mode, or ``no_grad`` for ZeRO-3 partitioned parameters.

    Inference mode skips all autograd bookkeeping (about 10% of a small model's decode step on CPU). Its tensors
    cannot be saved for backward later, so nothing it creates may leave the loop (copy results out). ZeRO-3 gathers a
    partitioned parameter inside the forward when it was not gathered beforehand; doing that in inference mode would
    leave the parameter holding an inference tensor, so those models decode under ``no_grad``.
    """
    try:
        first = next(iter(model.parameters()))
    except (StopIteration, AttributeError, TypeError):
        return torch.inference_mode()
    return torch.no_grad() if hasattr(first, "ds_id") else torch.inference_mode()


def _check_mm(mm_inputs: Mapping[str, Any] | None, n: int, what: str = "prompts") -> dict[str, torch.Tensor] | None:
    if mm_inputs is None:
        return None
    if not isinstance(mm_inputs, Mapping):
        raise ValueError(f"mm_inputs must be a dict of tensors, got {type(mm_inputs).__name__}")
    out = {}
    for k, v in mm_inputs.items():
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"mm_inputs[{k!r}] must be a tensor, got {type(v).__name__}")
        if v.dim() == 0 or v.shape[0] != n:
            raise ValueError(f"mm_inputs[{k!r}] has first dimension {tuple(v.shape)[:1]}, expected {n} (one per {what})")
        out[k] = v
    return out


def _mm_rows(mm: dict[str, torch.Tensor] | None, rows: Sequence[int], device, dtype) -> dict[str, torch.Tensor]:
    """The mm inputs of the given prompt indices (repeats allowed), on ``device``; floats cast to the model dtype."""
    if not mm:
        return {}
    idx = torch.as_tensor(list(rows), dtype=torch.long)
    out = {}
    for k, v in mm.items():
        t = v.index_select(0, idx.to(v.device)).to(device)
        if t.is_floating_point() and isinstance(dtype, torch.dtype):
            t = t.to(dtype)
        out[k] = t
    return out


def _check_seeds(seeds, n_prompts: int) -> list[int] | None:
    if seeds is None:
        return None
    seeds = [int(s) for s in seeds]
    if len(seeds) != n_prompts:
        raise ValueError(f"seeds has {len(seeds)} entries but there are {n_prompts} prompts (one seed per prompt)")
    return seeds


def _row_uniforms(seed: int, steps: int) -> torch.Tensor:
    """The ``steps`` uniforms of one row, from a CPU generator (device-independent, prefix-stable)."""
    return torch.rand(steps, generator=torch.Generator().manual_seed(seed))


def _inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One sample per row of ``probs (B, V)`` from uniforms ``u (B,)``; never a zero-probability token."""
    cdf = probs.cumsum(-1)
    x = (u.to(cdf.dtype) * cdf[:, -1]).unsqueeze(-1)
    tok = torch.searchsorted(cdf, x, right=True).squeeze(-1).clamp(max=probs.shape[-1] - 1)
    ok = probs.gather(-1, tok[:, None]).squeeze(-1) > 0
    return torch.where(ok, tok, probs.argmax(-1))  # only on a rounding edge at the top of the cdf


# ------------------------------------------------------------------ prefill helpers (HFGenerator and scoring)
def _pad_left(seqs: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    P = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), P), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), P), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, P - len(s):] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, P - len(s):] = 1
    return ids.to(device), mask.to(device)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _model_dtype(model: Any):
    dt = getattr(model, "dtype", None)
    return dt if isinstance(dt, torch.dtype) else None


def _shared_prefix_len(seqs: Sequence[Sequence[int]], min_len: int) -> int:
    """Length of the common token prefix of 2+ distinct sequences worth sharing (0 when under ``min_len``).

    Capped at ``shortest - 1`` so every sequence keeps at least one tail token (its last-position logits).
    """
    if len(seqs) < 2:
        return 0
    first, n = seqs[0], min(len(x) for x in seqs) - 1
    L = 0
    while L < n and all(x[L] == first[L] for x in seqs[1:]):
        L += 1
    return L if L >= max(min_len, 1) else 0


def _prefill_distinct(model, seqs, pad_id, device, prefix_len, mm_kw):
    """Prefill distinct prompts: their first ``prefix_len`` tokens once (one row), then the tails on top.

    Returns ``(last logits (U, 1, V), cache, mask (U, P))`` in the layout ``[prefix][left pad][tail]`` (plain left
    padding when ``prefix_len == 0``), or None when the model's cache cannot be expanded.
    """
    L = prefix_len
    tail_ids, tail_mask = _pad_left([list(x[L:]) for x in seqs], pad_id, device)
    if L == 0:
        logits, cache = lm_forward(model, tail_ids, tail_mask, _positions(tail_mask), None, logits_to_keep=1, **mm_kw)
        return (logits, cache, tail_mask) if cache is not None and hasattr(cache, "reorder_cache") else None
    pre = torch.as_tensor([list(seqs[0][:L])], dtype=torch.long, device=device)
    ones = torch.ones_like(pre)
    _, cache = lm_forward(model, pre, ones, _positions(ones), None, logits_to_keep=1)
    if cache is None or not hasattr(cache, "reorder_cache"):
        return None
    cache.reorder_cache(torch.zeros(len(seqs), dtype=torch.long, device=device))
    mask = torch.cat([ones.expand(len(seqs), L), tail_mask], 1)
    logits, cache = lm_forward(model, tail_ids, mask, _positions(mask)[:, L:], cache, logits_to_keep=1)
    return logits, cache, mask
