"""Batched sampling with per-token log-probs: one ``Generator`` interface, HF and vLLM backends, and scoring.

Every generated token comes with two log-probs:
- ``logprobs``: under the *sampling* distribution actually used (after ``bad_token_ids`` masking, temperature,
  top-k, top-p): what an importance ratio or an MCMC proposal density needs;
- ``raw_logprobs``: under the raw model (temperature 1, no filtering): what a target density p(x) needs.

Conventions: ``token_ids`` include the EOS token when generation ended on it (RL must learn to stop), while
``text`` skips special tokens. A stop string ends generation at the token that completes it; ``text`` is cut just
before the stop string and ``token_ids`` keep the tokens up to and including the completing one.

Prompts are given as exactly one of ``prompts`` (strings), ``prompt_ids`` (token ids; continuing from a prefix is
passing prompt + prefix here) or ``messages`` (chat conversations, rendered with the tokenizer's chat template and
``add_generation_prompt=True``). ``seeds`` (one per prompt) makes sample ``j`` of prompt ``i`` draw all of its
randomness from a generator seeded ``seeds[i] + j``: it then depends only on (seed, prompt, j), never on the other
prompts, ``batch_size`` or ``n``. ``mm_inputs`` are extra model inputs of the prefill forward (e.g. Qwen2-Audio
``input_features``), first dimension = number of prompts.

Backends: :func:`make_generator` (``backend="hf"`` -> :class:`HFGenerator`, ``"vllm"`` -> :class:`VLLMGenerator`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

import torch

# torch-free definitions (package configs import them at class-definition time), re-exported here
from .backends import BACKEND_HELP, BACKENDS, VLLM_MISSING, BackendUnavailableError
from .chat import fit_messages
from .lm import cache_kwarg, lm_forward

__all__ = [
    "BACKENDS",
    "BACKEND_HELP",
    "BackendUnavailableError",
    "SamplingParams",
    "Completion",
    "Generator",
    "HFGenerator",
    "VLLMGenerator",
    "make_generator",
    "encode_prompts",
    "model_device",
    "process_logits",
    "selective_log_softmax",
    "score_continuations",
]



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


def process_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                   bad_token_ids: Sequence[int] | torch.Tensor | None = None):
    """``bad_token_ids`` masking, then temperature, then top-k, then top-p (nucleus); dropped entries are ``-inf``.

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
        kth = torch.topk(x, top_k, dim=-1).values[..., -1:]  # (N, 1)
        x = x.masked_fill(x < kth, float("-inf"))
    if top_p < 1.0:
        sorted_x, order = torch.sort(x, dim=-1, descending=True)
        probs = torch.softmax(sorted_x, dim=-1)
        drop_sorted = probs.cumsum(-1) - probs > top_p  # keep the token that crosses top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        x = x.masked_fill(drop, float("-inf"))
    return x


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


def _decode_attention_mask(model: Any, mask: torch.Tensor) -> torch.Tensor | None:
    """The ``(B, 1, 1, K)`` mask of decode steps, built once for all of them (None: pass the 2D mask instead).

    A 2D padding mask makes transformers rebuild a 4D mask in every step (about 10% of a small model's decode step
    on CPU); a ready 4D mask is used as given. Only for decoders whose every layer attends to the whole cache (see
    :func:`rlcore.cascade.full_attention_decoder`), with SDPA (boolean: True = attend) or eager attention (additive).

    Args:
        model: the decoder.
        mask: ``(B, K)`` 1 on the keys (prompt and generated tokens, present and future) a row attends to.
    """
    from .cascade import full_attention_decoder

    if not full_attention_decoder(model):
        return None
    keep = mask.bool()[:, None, None, :]  # (B, 1, 1, K)
    impl = model.config._attn_implementation
    if impl == "sdpa":
        return keep
    if impl == "eager":
        dt = _model_dtype(model) or torch.float32
        return torch.zeros(keep.shape, dtype=dt, device=mask.device).masked_fill_(~keep, torch.finfo(dt).min)
    return None


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


# ``prefix_attention="auto"`` uses cascade attention when it spares a decode step at least this many KV elements
# per layer (rows x prompt positions - shared positions, times kv heads x head dim). Below it, the extra kernels
# per layer cost more than the copies save: measured on a 2-core CPU with the tiny Qwen2 (2 kv heads x 16 dims),
# n=16 rows of one prompt break even near 400 prompt tokens (cascade 0.75x at 128 tokens, 1.12x at 512).
CASCADE_MIN_SAVED = 1 << 17


class HFGenerator:
    """Sampling with a transformers causal LM (or any rlcore LM) through a hand-rolled batched decode loop.

    Why not ``model.generate``: it returns processed scores only, cannot give both sampling and raw log-probs per
    token without a second pass, and re-checks stop strings with a full decode. On CUDA the decode step runs with a
    static KV cache and ``torch.compile`` (``mode="reduce-overhead"``: CUDA graphs), the HF-recommended fast path.

    Shared prefill: the ``n`` rows of one prompt are not prefilled ``n`` times; each distinct prompt of a batch is
    prefilled once and its KV cache is expanded to its rows (``Cache.reorder_cache`` with repeated indices), then
    copied into the static cache on CUDA. Distinct prompts that start with the same ``>= min_shared_prefix``
    tokens (a long instruction head, say) prefill that prefix once too: the batch layout is then
    ``[prefix][left pad][tail]`` (positions follow the mask, so the pads in the middle change nothing). Results
    equal the unshared path (``share_prefill=False``) up to float rounding.

    Args:
        model: a causal LM (HF or rlcore LM interface).
        tokenizer: needed for string prompts, chat messages, text output and stop strings.
        batch_size: rows (prompts x n) decoded together; ``None`` = all at once.
        cache_implementation: ``"dynamic"``, ``"static"`` or ``"auto"`` (static on CUDA).
        compile: compile the decode step; ``"auto"`` = on CUDA only.
        seed: seeds one generator used by calls that pass neither ``generator``, ``seeds`` nor ``params.seed``.
        share_prefill: prefill each distinct prompt once per batch, and a common token prefix of the distinct
            prompts once (see above).
        min_shared_prefix: the shortest common prefix (tokens) worth prefilling once for distinct prompts.
        prefix_attention: how decode steps read the shared prompt KV. ``"cascade"``: it stays shared and each step
            attends to it once per group of rows (:mod:`rlcore.cascade`); ``"expand"``: it is copied to every row
            (plain SDPA); ``"auto"``: cascade where supported (dynamic cache, llama / qwen2 / qwen3 / mistral) and
            worth it: when it spares each decode step at least :data:`CASCADE_MIN_SAVED` KV elements per layer.

    """

    def __init__(self, model: Any, tokenizer: Any = None, device: Any = None, batch_size: int | None = None,
                 cache_implementation: str = "auto", compile: bool | str = "auto", seed: int | None = None,
                 share_prefill: bool = True, min_shared_prefix: int = 32, prefix_attention: str = "auto"):
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device) if device is not None else model_device(model)
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        on_cuda = self.device.type == "cuda"
        if cache_implementation not in ("auto", "dynamic", "static"):
            raise ValueError(f"cache_implementation must be auto, dynamic or static, got {cache_implementation!r}")
        self.static = cache_implementation == "static" or (cache_implementation == "auto" and on_cuda)
        self.static = self.static and cache_kwarg(model) is not None
        self.compile = on_cuda if compile == "auto" else bool(compile)
        self.share_prefill = share_prefill
        self.min_shared_prefix = min_shared_prefix
        if prefix_attention not in ("auto", "cascade", "expand"):
            raise ValueError(f"prefix_attention must be auto, cascade or expand, got {prefix_attention!r}")
        from .cascade import supports_cascade

        # cascade needs the dynamic (per-row) cache for the generated tokens; the static CUDA path expands
        self.cascade = (prefix_attention != "expand" and share_prefill and not self.static
                        and supports_cascade(model))
        self.cascade_min_saved = 0 if prefix_attention == "cascade" else CASCADE_MIN_SAVED
        if prefix_attention == "cascade" and not self.cascade:
            raise ValueError("prefix_attention='cascade' needs share_prefill, the dynamic cache and a supported HF "
                             "decoder (llama, qwen2, qwen3, mistral without sliding windows)")
        self._step_fn = None
        self._default_generator = (torch.Generator(device=self.device).manual_seed(seed) if seed is not None
                                   else None)
        if tokenizer is not None and tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
            raise ValueError("tokenizer has neither a pad token nor an eos token: set tokenizer.pad_token")

    # ---------------------------------------------------------------- helpers
    def _eos_ids(self, params: SamplingParams) -> set[int]:
        if params.stop_token_ids is not None:
            return set(params.stop_token_ids)
        ids: set[int] = set()
        for src in (self.tokenizer, getattr(self.model, "config", None)):
            eos = getattr(src, "eos_token_id", None)
            if isinstance(eos, int):
                ids.add(eos)
            elif isinstance(eos, list | tuple):
                ids.update(int(e) for e in eos)
        gen_cfg = getattr(self.model, "generation_config", None)
        eos = getattr(gen_cfg, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        return ids

    def _pad_id(self) -> int:
        tok = self.tokenizer
        if tok is not None:
            return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        return 0

    def _encode(self, prompts, prompt_ids, messages=None) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts, prompt_ids, messages=messages)

    def _check_length(self, n_prompt: int, params: SamplingParams) -> None:
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        if isinstance(limit, int) and n_prompt + params.max_new_tokens > limit:
            raise ValueError(
                f"prompt of {n_prompt} tokens + max_new_tokens={params.max_new_tokens} exceeds the model's context "
                f"of {limit} tokens"
            )

    def _decode_text(self, ids: list[int]) -> str:
        if self.tokenizer is None:
            return ""
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ---------------------------------------------------------------- public
    def generate(self, prompts=None, prompt_ids=None, params: SamplingParams | None = None,
                 generator: torch.Generator | None = None, *, seeds: Sequence[int] | None = None,
                 mm_inputs: Mapping[str, torch.Tensor] | None = None,
                 messages: Sequence[list[dict]] | None = None) -> list[list[Completion]]:
        """Sample ``params.n`` continuations of each prompt; see the module docstring for conventions.

        Randomness: ``seeds`` (per prompt, see the module docstring) if given; else ``generator``; else one
        generator seeded ``params.seed``; else the constructor's ``seed``; else torch's global RNG.
        """
        params = params or SamplingParams()
        if params.stop and self.tokenizer is None:
            raise ValueError("stop strings need a tokenizer")
        ids = self._encode(prompts, prompt_ids, messages)
        seeds = _check_seeds(seeds, len(ids))
        mm = _check_mm(mm_inputs, len(ids))
        _record("generate", ids, params, mm)
        if seeds is not None and generator is not None:
            raise ValueError("pass seeds= (one per prompt) or generator=, not both")
        if seeds is None and generator is None:
            if params.seed is not None:
                generator = torch.Generator(device=self.device).manual_seed(params.seed)
            else:
                generator = self._default_generator
        rows = [(i, j) for i in range(len(ids)) for j in range(params.n)]
        bs = self.batch_size or len(rows)
        results: list[list[Completion]] = [[] for _ in ids]
        for start in range(0, len(rows), bs):
            chunk = rows[start:start + bs]
            owners = [i for i, _ in chunk]
            uniforms = None
            if seeds is not None and params.temperature > 0:
                uniforms = torch.stack([_row_uniforms(seeds[i] + j, params.max_new_tokens) for i, j in chunk])
                uniforms = uniforms.to(self.device)
            comps = self._decode_batch([ids[i] for i in owners], params, generator, owners=owners, mm=mm,
                                       uniforms=uniforms)
            for pi, comp in zip(owners, comps):
                comp.prompt_index = pi
                results[pi].append(comp)
        return results

    def _prefill(self, seqs, input_ids, mask, owners, mm, total):
        """Prefill forward for the B rows; returns (last logits (B, 1, V), cache or None, mask, cascade state or None).

        Shared: distinct prompts once (``owners`` says which rows share one), a common token prefix of the distinct
        prompts once (layout ``[prefix][pad][tail]``, see :func:`_prefill_distinct`), then the KV is expanded.
        """
        B = input_ids.shape[0]
        dtype = _model_dtype(self.model)
        uniq = list(dict.fromkeys(owners))
        if self.share_prefill and cache_kwarg(self.model) is not None:
            first = {o: r for r, o in reversed(list(enumerate(owners)))}
            useqs = [seqs[first[o]] for o in uniq]
            L = 0 if mm else _shared_prefix_len(useqs, self.min_shared_prefix)
            if len(uniq) < B or L > 0:
                res = _prefill_distinct(self.model, useqs, self._pad_id(), self.device, L,
                                        _mm_rows(mm, uniq, self.device, dtype))
                if res is not None:
                    logits, cache, umask = res
                    slot = {o: k for k, o in enumerate(uniq)}
                    expand = torch.tensor([slot[o] for o in owners], device=self.device)
                    state = (self._cascade_state(cache, umask, L, expand, self.cascade_min_saved)
                             if self.cascade and not mm else None)
                    if state is not None:
                        from transformers import DynamicCache

                        return (logits.index_select(0, expand), DynamicCache(), umask.index_select(0, expand),
                                state)
                    if len(uniq) < B:
                        cache.reorder_cache(expand)
                        logits, umask = logits.index_select(0, expand), umask.index_select(0, expand)
                    if not self.static:
                        return logits, cache, umask, None
                    static = self._to_static(cache, total)
                    if static is not None:
                        return logits, static, umask, None
            # this cache type cannot be expanded / copied: fall back to prefilling every row
        cache = None
        if self.static:
            from transformers import StaticCache

            cache = StaticCache(config=self.model.config, max_cache_len=total)
        logits, cache = lm_forward(self.model, input_ids, mask, _positions(mask), cache, logits_to_keep=1,
                                   **_mm_rows(mm, owners, self.device, dtype))
        return logits, cache, mask, None

    @staticmethod
    def _cascade_state(cache, umask, prefix_len, expand, min_saved=0):
        """Shared levels for cascade decoding from the distinct prompts' cache (None: cache layout unknown).

        Levels: the common prefix (``prefix_len`` tokens, one group of every row) and each distinct prompt's tail
        (its rows = ``expand == u``); without a common prefix, each distinct prompt whole. None as well when the
        cascade would spare fewer than ``min_saved`` KV elements per layer and step.
        """
        from .cascade import CascadeState, SharedLevel

        layers = getattr(cache, "layers", None)
        if not layers or not all(isinstance(getattr(x, "keys", None), torch.Tensor) for x in layers):
            return None
        K, V, L = [x.keys for x in layers], [x.values for x in layers], prefix_len
        _, h_kv, P, d = K[0].shape
        shared = L + K[0].shape[0] * (P - L)  # KV positions a cascade step reads once
        if (len(expand) * P - shared) * h_kv * d < min_saved:
            return None
        levels = []
        if L > 0:
            levels.append(SharedLevel.from_groups([k[:1, :, :L] for k in K], [v[:1, :, :L] for v in V],
                                                  umask[:1, :L], torch.zeros_like(expand)))
        levels.append(SharedLevel.from_groups([k[:, :, L:].contiguous() for k in K],
                                              [v[:, :, L:].contiguous() for v in V], umask[:, L:], expand))
        return CascadeState(levels)

    def _to_static(self, dyn, total):
        """Copy an expanded DynamicCache into a fresh StaticCache (None when the layer types do not match)."""
        from transformers import StaticCache

        try:
            from transformers.cache_utils import DynamicLayer, StaticLayer
        except ImportError:
            return None
        layers = getattr(dyn, "layers", None)
        static = StaticCache(config=self.model.config, max_cache_len=total)
        s_layers = getattr(static, "layers", None)
        if (not layers or s_layers is None or len(s_layers) != len(layers)
                or any(type(x) is not DynamicLayer for x in layers) or any(type(x) is not StaticLayer for x in s_layers)):
            return None
        for li, layer in enumerate(layers):
            static.update(layer.keys, layer.values, li)
        return static

    def _decode_batch(self, seqs: list[list[int]], params: SamplingParams, generator, *, owners=None, mm=None,
                      uniforms=None) -> list[Completion]:
        # inference mode: no autograd bookkeeping at all (about 10% of a small model's decode step on CPU); its
        # tensors never leave it: the log-probs are copied out, the ids leave as lists
        with torch.inference_mode():
            tokens, lps, raw, ends = self._decode_tensors(seqs, params, generator, owners, mm, uniforms)
        lps, raw = lps.cpu().clone(), raw.cpu().clone()  # normal tensors (usable in autograd by callers)
        return [self._finish(tokens[b][:n], lps[b, :n], raw[b, :n], reason, params)
                for b, (n, reason) in enumerate(ends)]

    def _decode_tensors(self, seqs, params, generator, owners, mm, uniforms):
        """The decode loop; returns (token ids (B lists), sampling and raw log-probs (B, T), [(length, reason)])."""
        B, P = len(seqs), max(len(s) for s in seqs)
        owners = list(range(B)) if owners is None else list(owners)
        self._check_length(P, params)
        eos = self._eos_ids(params)
        eos_t = torch.tensor(sorted(eos), device=self.device, dtype=torch.long) if eos else None
        input_ids, mask = _pad_left(seqs, self._pad_id(), self.device)
        total = P + params.max_new_tokens
        logits, cache, mask, shared = self._prefill(seqs, input_ids, mask, owners, mm, total)
        V = logits.shape[-1]
        bad_t = None
        if params.bad_token_ids:
            if max(params.bad_token_ids) >= V:
                raise ValueError(f"bad_token_ids contain {max(params.bad_token_ids)}, but the vocabulary has {V} ids")
            bad_t = torch.tensor(sorted(set(params.bad_token_ids)), dtype=torch.long, device=self.device)
            if len(bad_t) >= V:
                raise ValueError("bad_token_ids block the whole vocabulary: nothing can be sampled")
        use_cache = cache is not None
        mm_full = _mm_rows(mm, owners, self.device, _model_dtype(self.model)) if not use_cache else {}
        tokens = torch.empty((B, params.max_new_tokens), dtype=torch.long, device=self.device)
        lps = torch.zeros((B, params.max_new_tokens), device=self.device)
        raw = torch.zeros((B, params.max_new_tokens), device=self.device)
        done = torch.zeros(B, dtype=torch.bool, device=self.device)
        eos_at = torch.full((B,), -1, dtype=torch.long, device=self.device)  # the step a row sampled EOS, or -1
        stopped: dict[int, int] = {}  # row -> length, for rows ended by a stop string
        stop_window = 2 * max((len(s) for s in params.stop), default=0) + 4
        pos = _positions(mask)[:, -1:]
        # the masks of all steps at once: step t reads the first W + t + 1 columns (no per-step concatenation)
        W = mask.shape[1]
        full = torch.ones((B, W + params.max_new_tokens), dtype=mask.dtype, device=self.device)
        full[:, :W] = mask
        mask4 = _decode_attention_mask(self.model, full) if use_cache and shared is None and not self.static else None
        for t in range(params.max_new_tokens):
            last = logits[:, -1].float()  # (B, V)
            raw_all = torch.log_softmax(last, -1)
            if params.temperature == 0:
                tok = (last if bad_t is None else last.index_fill(-1, bad_t, float("-inf"))).argmax(-1)
                lp = torch.zeros(B, device=self.device)
            else:
                samp_all = torch.log_softmax(
                    process_logits(last, params.temperature, params.top_k, params.top_p, bad_t), -1)
                if uniforms is not None:
                    tok = _inverse_cdf(samp_all.exp(), uniforms[:, t])
                else:
                    tok = torch.multinomial(samp_all.exp(), 1, generator=generator).squeeze(-1)
                lp = samp_all.gather(-1, tok[:, None]).squeeze(-1)
            tokens[:, t], lps[:, t] = tok, lp
            raw[:, t] = raw_all.gather(-1, tok[:, None]).squeeze(-1)
            if eos_t is not None:
                hit = torch.isin(tok, eos_t) & ~done
                eos_at.masked_fill_(hit, t)
                done |= hit
            if params.stop:
                for b in (~done).nonzero().flatten().tolist():
                    tail = self.tokenizer.decode(tokens[b, max(0, t + 1 - stop_window): t + 1].tolist())
                    if any(s in tail for s in params.stop):
                        stopped[b] = t + 1
                        done[b] = True
            if t == params.max_new_tokens - 1 or bool(done.all()):
                break
            cur = full[:, : W + t + 1]  # (B, W + t + 1)
            pos = pos + 1
            if shared is not None:  # cascade: the prompt KV stays shared (rlcore.cascade)
                from .cascade import cascade_attention

                with cascade_attention(self.model):
                    logits, cache = lm_forward(self.model, tok[:, None], cur, pos, cache, rlcore_cascade=shared)
            elif use_cache:
                step_mask = cur if mask4 is None else mask4[..., : W + t + 1]
                logits, cache = self._step(tok[:, None], step_mask, pos, cache, total)
            else:  # model without a KV cache: re-encode everything (with the multimodal inputs every time)
                seq = torch.cat([input_ids, tokens[:, : t + 1]], dim=1)
                logits, _ = lm_forward(self.model, seq, cur, _positions(cur), None, logits_to_keep=1, **mm_full)
        ends = []
        for b, e in enumerate(eos_at.tolist()):
            if b in stopped:
                ends.append((stopped[b], "stop"))
            elif e >= 0:
                ends.append((e + 1, "eos"))
            else:
                ends.append((params.max_new_tokens, "length"))
        return tokens.tolist(), lps, raw, ends

    def _step(self, tok, mask, pos, cache, total):
        if not self.static:
            return lm_forward(self.model, tok, mask, pos, cache)
        # static cache: a fixed-shape (B, total) mask so the compiled step (CUDA graph) is reused every step
        full_mask = torch.zeros((mask.shape[0], total), dtype=mask.dtype, device=mask.device)
        full_mask[:, : mask.shape[1]] = mask
        if self._step_fn is None:
            name = cache_kwarg(self.model)  # resolved outside the compiled function: no graph break

            def step(t, m, p, c):
                return self.model(input_ids=t, attention_mask=m, position_ids=p, use_cache=True, **{name: c}).logits, c

            self._step_fn = torch.compile(step, mode="reduce-overhead", dynamic=False) if self.compile else step
        logits, cache = self._step_fn(tok, full_mask, pos, cache)
        return logits.clone(), cache

    def _finish(self, ids, lps, raw, reason, params) -> Completion:
        text = self._decode_text(ids)
        if reason == "stop":
            cut = min(text.find(s) for s in params.stop if s in text) if any(s in text for s in params.stop) else -1
            if cut < 0:  # the stop string straddles special tokens: fall back to the raw decode
                full = self.tokenizer.decode(ids)
                cut = min(full.find(s) for s in params.stop if s in full)
                text = full[:cut]
            else:
                text = text[:cut]
        return Completion(-1, ids, text, lps, raw, reason)


# ====================================================================== vLLM
def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise BackendUnavailableError(VLLM_MISSING) from e
    return vllm


def _model_ref(model: Any) -> str:
    """A vLLM model reference: a string as is, else the module's ``name_or_path`` / ``config._name_or_path``."""
    if isinstance(model, str | os.PathLike):
        return str(model)
    for ref in (getattr(model, "name_or_path", None), getattr(getattr(model, "config", None), "_name_or_path", None)):
        if isinstance(ref, str) and ref:
            return ref
    raise ValueError("the vllm backend needs a model name or path; this module has no name_or_path "
                     "(save it with save_pretrained and pass the directory)")


class VLLMGenerator:
    """The :class:`Generator` interface on vLLM (optional extra ``rlcore[vllm]``; GPU).

    Mapping (checked on CPU with a fake ``vllm`` module, and end to end by the ``gpu``-marked test):
    - every (prompt i, sample j) is one vLLM request with ``n=1``; with ``seeds`` its seed is ``seeds[i] + j``
      (per-request seed), otherwise ``params.seed + j`` when ``params.seed`` is set (unseeded otherwise). Prompts
      are token ids (``prompt_token_ids``), so continuing from a prefix is passing prompt + prefix; vLLM's prefix
      cache makes the ``n`` requests of one prompt share its prefill.
    - ``bad_token_ids`` -> ``allowed_token_ids`` = every other id of the vocabulary (vLLM masks the rest to -inf
      before sampling, as the HF backend does).
    - ``mm_inputs`` -> ``multi_modal_data`` per prompt under the key given by ``mm_key`` (for example
      ``{"audio": ...}``); vLLM takes raw media there, not processor features, so pass what the model's vLLM
      processor expects.
    - sampling log-probs (``logprobs``) come from vLLM itself with ``logprobs_mode="processed_logprobs"`` (after
      temperature / top-k / top-p / allowed ids); **raw log-probs come from a prefill re-score**: a second,
      prefill-only request over prompt + completion with ``prompt_logprobs=0`` (the raw model's log-prob of every
      prompt token), which is what :func:`score_continuations` computes on the HF side.

    ``load_weights(model)`` copies a training ``nn.Module``'s weights into the engine (on-policy rollouts) and
    resets the prefix cache.

    Args:
        model: model name or path (what ``vllm.LLM(model=...)`` takes).
        tokenizer: for string prompts / chat messages; default the engine's tokenizer.
        tensor_parallel_size: GPUs the model is split over.
        gpu_memory_utilization: fraction of GPU memory vLLM may use.
        seed: the engine seed (``LLM(seed=...)``).
        **llm_kwargs: passed to ``vllm.LLM`` (e.g. ``max_model_len``, ``dtype``, ``enforce_eager``).

    """

    def __init__(self, model: Any, tokenizer: Any = None, *, tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, seed: int | None = None, **llm_kwargs: Any):
        if tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
        vllm = _import_vllm()
        if tensor_parallel_size == 1:  # keep the engine in this process so load_weights can reach the model
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        if seed is not None:
            llm_kwargs["seed"] = seed
        self.tensor_parallel_size = tensor_parallel_size
        self.llm = vllm.LLM(model=_model_ref(model), tensor_parallel_size=tensor_parallel_size,
                            gpu_memory_utilization=gpu_memory_utilization, **llm_kwargs)
        self.tokenizer = tokenizer or self.llm.get_tokenizer()

    @staticmethod
    def vllm_sampling_kwargs(params: SamplingParams, seed: int | None = None, vocab_size: int | None = None,
                             n: int | None = None) -> dict[str, Any]:
        """SamplingParams -> keyword arguments of ``vllm.SamplingParams`` (tested without vLLM).

        ``seed`` overrides ``params.seed`` (per-request seeds); ``n`` overrides ``params.n``; ``vocab_size`` is
        needed to turn ``bad_token_ids`` into ``allowed_token_ids``.
        """
        kw: dict[str, Any] = dict(n=params.n if n is None else n, temperature=params.temperature,
                                  top_p=params.top_p, top_k=params.top_k if params.top_k > 0 else -1,
                                  max_tokens=params.max_new_tokens, stop=list(params.stop),
                                  stop_token_ids=params.stop_token_ids,
                                  seed=params.seed if seed is None else seed, logprobs=0)
        if params.stop_token_ids is not None and not params.stop_token_ids:
            kw["ignore_eos"] = True  # stop_token_ids=[] means "no EOS stop" in rlcore
        if params.bad_token_ids:
            if vocab_size is None:
                raise ValueError("bad_token_ids on the vllm backend need the vocabulary size")
            bad = set(params.bad_token_ids)
            kw["allowed_token_ids"] = [t for t in range(vocab_size) if t not in bad]
            if not kw["allowed_token_ids"]:
                raise ValueError("bad_token_ids block the whole vocabulary: nothing can be sampled")
        return kw

    def _vocab_size(self) -> int:
        return len(self.tokenizer)

    def generate(self, prompts=None, prompt_ids=None, params: SamplingParams | None = None,
                 generator: torch.Generator | None = None, *, seeds: Sequence[int] | None = None,
                 mm_inputs: Mapping[str, Any] | None = None, messages: Sequence[list[dict]] | None = None,
                 mm_key: str | None = None) -> list[list[Completion]]:
        """See :class:`Generator`. ``generator`` cannot drive vLLM's sampler: pass ``seeds`` or ``params.seed``."""
        vllm = _import_vllm()
        params = params or SamplingParams()
        if generator is not None:
            raise ValueError("the vllm backend cannot use a torch.Generator: pass seeds= or SamplingParams(seed=)")
        ids = encode_prompts(self.tokenizer, prompts, prompt_ids, messages=messages)
        seeds = _check_seeds(seeds, len(ids))
        mm = self._mm_data(mm_inputs, len(ids), mm_key)
        _record("generate", ids, params, mm_inputs)
        vocab = self._vocab_size() if params.bad_token_ids else None
        base_kw = self.vllm_sampling_kwargs(params, vocab_size=vocab, n=1)  # allowed_token_ids built once
        requests, sps, keys = [], [], []
        for i, p in enumerate(ids):
            for j in range(params.n):
                base = seeds[i] if seeds is not None else params.seed
                req: dict[str, Any] = {"prompt_token_ids": list(p)}
                if mm is not None:
                    req["multi_modal_data"] = mm[i]
                requests.append(req)
                sps.append(vllm.SamplingParams(**{**base_kw, "seed": None if base is None else base + j}))
                keys.append(i)
        outs = self.llm.generate(requests, sps, use_tqdm=False)
        samples = [(i, out.outputs[0]) for i, out in zip(keys, outs)]
        rescore = []
        for i, o in samples:
            req = {"prompt_token_ids": list(ids[i]) + list(o.token_ids)}
            if mm is not None:
                req["multi_modal_data"] = mm[i]
            rescore.append(req)
        scored = self.llm.generate(rescore, vllm.SamplingParams(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
        results: list[list[Completion]] = [[] for _ in ids]
        for (i, o), s in zip(samples, scored):
            tids = list(o.token_ids)
            lps = torch.tensor([d[t].logprob for d, t in zip(o.logprobs, tids)], dtype=torch.float32)
            n_p = len(ids[i])
            raw = torch.tensor([d[t].logprob for d, t in zip(s.prompt_logprobs[n_p:], tids)], dtype=torch.float32)
            reason = "length" if o.finish_reason == "length" else ("stop" if isinstance(o.stop_reason, str) else "eos")
            results[i].append(Completion(i, tids, o.text, lps, raw, reason))
        return results

    @staticmethod
    def _mm_data(mm_inputs, n_prompts: int, mm_key: str | None):
        if mm_inputs is None:
            return None
        if not isinstance(mm_inputs, Mapping) or not mm_inputs:
            raise ValueError("mm_inputs must be a non-empty dict")
        if mm_key is None and len(mm_inputs) != 1:
            raise ValueError(
                "the vllm backend takes raw media per prompt as multi_modal_data (e.g. mm_inputs={'audio': [...]}), "
                f"not processor features; got keys {sorted(mm_inputs)}: pass one modality or mm_key=")
        key = mm_key or next(iter(mm_inputs))
        if key not in mm_inputs:
            raise ValueError(f"mm_key {key!r} is not in mm_inputs (keys {sorted(mm_inputs)})")
        vals = mm_inputs[key]
        if len(vals) != n_prompts:
            raise ValueError(f"mm_inputs[{key!r}] has {len(vals)} entries, expected {n_prompts} (one per prompt)")
        return [{key: v} for v in vals]

    def load_weights(self, model: Any) -> int:
        """Copy ``model``'s parameters (a training ``nn.Module``, same architecture) into the engine.

        Uses the engine's in-process model (``llm.llm_engine.model_executor.driver_worker...model_runner.model``,
        the path TRL's colocate mode uses; the engine runs in-process when ``tensor_parallel_size == 1``) and
        otherwise ``LLM.apply_model`` (every tensor-parallel worker loads the full tensors; vLLM's
        ``load_weights`` shards them). Then resets the prefix cache. Returns the number of tensors sent.
        """
        state = getattr(model, "state_dict", None)
        if state is None:
            raise ValueError("load_weights needs an nn.Module (something with state_dict())")
        weights = [(k, v.detach()) for k, v in state().items()]
        target = self._inprocess_model()
        if target is not None:
            target.load_weights(weights)
        elif hasattr(self.llm, "apply_model"):
            cpu = [(k, v.cpu()) for k, v in weights]
            self.llm.apply_model(lambda m: m.load_weights(cpu))
        else:
            raise ValueError("this vLLM version exposes neither an in-process model nor LLM.apply_model")
        reset = getattr(self.llm, "reset_prefix_cache", None)
        if callable(reset):
            reset()
        return len(weights)

    def _inprocess_model(self):
        executor = getattr(getattr(self.llm, "llm_engine", None), "model_executor", None)
        worker = getattr(executor, "driver_worker", None)
        for w in (getattr(worker, "worker", None), worker):
            m = getattr(getattr(w, "model_runner", None), "model", None)
            if m is not None and hasattr(m, "load_weights"):
                return m
        return None


def make_generator(model: Any, tokenizer: Any = None, *, backend: str = "hf", batch_size: int | None = None,
                   tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9, seed: int | None = None,
                   **kw: Any):
    """A :class:`Generator` for ``backend`` (one of :data:`BACKENDS`).

    ``"hf"``: ``HFGenerator(model, tokenizer, batch_size=..., seed=..., **kw)`` (``model`` an nn.Module / LM;
    the vLLM options are ignored). ``"vllm"``: ``VLLMGenerator(ref, tokenizer, tensor_parallel_size=...,
    gpu_memory_utilization=..., seed=..., **kw)`` where ``ref`` is ``model`` if it is a string, else the module's
    ``name_or_path``. Raises ``ValueError`` for an unknown backend (listing the choices) and
    :class:`BackendUnavailableError` (one line) when vLLM is not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if tensor_parallel_size < 1:
        raise ValueError(f"tensor_parallel_size must be >= 1, got {tensor_parallel_size}")
    if not 0 < gpu_memory_utilization <= 1:
        raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
    if backend == "hf":
        if isinstance(model, str | os.PathLike):
            raise ValueError("the hf backend needs a loaded model (nn.Module); load it first, "
                             "e.g. rlcore.builtins.load_model_and_tokenizer")
        return HFGenerator(model, tokenizer, batch_size=batch_size, seed=seed, **kw)
    _import_vllm()
    return VLLMGenerator(model, tokenizer, tensor_parallel_size=tensor_parallel_size,
                         gpu_memory_utilization=gpu_memory_utilization, seed=seed, **kw)


# ====================================================================== scoring
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


@contextlib.contextmanager
def _recorder(cb: Callable[..., None]):
    """Register ``cb(kind, prompt_ids, params, mm_inputs, continuation_ids)`` for every generate/score call."""
    _RECORDERS.append(cb)
    try:
        yield
    finally:
        _RECORDERS.remove(cb)
