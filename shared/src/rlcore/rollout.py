"""Batched sampling with per-token log-probs: one ``Generator`` interface, HF and vLLM backends, and scoring.

Every generated token comes with two log-probs:
- ``logprobs``: under the *sampling* distribution actually used (after temperature, top-k, top-p): what an
  importance ratio or an MCMC proposal density needs;
- ``raw_logprobs``: under the raw model (temperature 1, no filtering): what a target density p(x) needs.

Conventions: ``token_ids`` include the EOS token when generation ended on it (RL must learn to stop), while
``text`` skips special tokens. A stop string ends generation at the token that completes it; ``text`` is cut just
before the stop string and ``token_ids`` keep the tokens up to and including the completing one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import torch

from .lm import cache_kwarg, lm_forward

__all__ = [
    "SamplingParams",
    "Completion",
    "Generator",
    "HFGenerator",
    "VLLMGenerator",
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
    ) -> list[list[Completion]]: ...


def process_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0):
    """Temperature, then top-k, then top-p (nucleus) filtering; filtered entries become ``-inf``.

    Args:
        logits: ``(N, V)``.
        temperature: divides the logits (0 is treated as 1 here: greedy decoding takes the argmax elsewhere).
        top_k: keep the k largest logits (0 disables).
        top_p: keep the smallest set of tokens whose probability reaches ``top_p`` (1 disables).

    Returns:
        ``(N, V)`` float32 logits of the sampling distribution (``log_softmax`` of it is the sampling log-prob).

    """
    x = logits.float() / (temperature if temperature > 0 else 1.0)
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
                   ids_arg: str = "prompt_ids") -> list[list[int]]:
    """Token ids of exactly one of ``prompts`` (strings, need ``tokenizer``) or ``prompt_ids``; no empty prompt.

    ``ids_arg`` names the ids argument in error messages (callers call it ``prompt_ids`` or ``input_ids``).
    """
    if (prompts is None) == (prompt_ids is None):
        raise ValueError(f"pass exactly one of prompts= or {ids_arg}=")
    if prompts is not None:
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


class HFGenerator:
    """Sampling with a transformers causal LM (or any rlcore LM) through a hand-rolled batched decode loop.

    Why not ``model.generate``: it returns processed scores only, cannot give both sampling and raw log-probs per
    token without a second pass, and re-checks stop strings with a full decode. On CUDA the decode step runs with a
    static KV cache and ``torch.compile`` (``mode="reduce-overhead"``: CUDA graphs), the HF-recommended fast path.

    Args:
        model: a causal LM (HF or rlcore LM interface).
        tokenizer: needed for string prompts, text output and stop strings.
        batch_size: rows (prompts x n) decoded together; ``None`` = all at once.
        cache_implementation: ``"dynamic"``, ``"static"`` or ``"auto"`` (static on CUDA).
        compile: compile the decode step; ``"auto"`` = on CUDA only.

    """

    def __init__(self, model: Any, tokenizer: Any = None, device: Any = None, batch_size: int | None = None,
                 cache_implementation: str = "auto", compile: bool | str = "auto"):
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device) if device is not None else model_device(model)
        self.batch_size = batch_size
        on_cuda = self.device.type == "cuda"
        if cache_implementation not in ("auto", "dynamic", "static"):
            raise ValueError(f"cache_implementation must be auto, dynamic or static, got {cache_implementation!r}")
        self.static = cache_implementation == "static" or (cache_implementation == "auto" and on_cuda)
        self.static = self.static and cache_kwarg(model) is not None
        self.compile = on_cuda if compile == "auto" else bool(compile)
        self._step_fn = None
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

    def _encode(self, prompts, prompt_ids) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts, prompt_ids)

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
                 generator: torch.Generator | None = None) -> list[list[Completion]]:
        """Sample ``params.n`` continuations of each prompt; see the module docstring for conventions."""
        params = params or SamplingParams()
        if params.stop and self.tokenizer is None:
            raise ValueError("stop strings need a tokenizer")
        ids = self._encode(prompts, prompt_ids)
        if generator is None and params.seed is not None:
            generator = torch.Generator(device=self.device).manual_seed(params.seed)
        rows = [(i, p) for i, p in enumerate(ids) for _ in range(params.n)]
        bs = self.batch_size or len(rows)
        results: list[list[Completion]] = [[] for _ in ids]
        for start in range(0, len(rows), bs):
            chunk = rows[start:start + bs]
            for (pi, _), comp in zip(chunk, self._decode_batch([p for _, p in chunk], params, generator)):
                comp.prompt_index = pi
                results[pi].append(comp)
        return results

    @torch.no_grad()
    def _decode_batch(self, seqs: list[list[int]], params: SamplingParams, generator) -> list[Completion]:
        B, P = len(seqs), max(len(s) for s in seqs)
        self._check_length(P, params)
        eos = self._eos_ids(params)
        eos_t = torch.tensor(sorted(eos), device=self.device, dtype=torch.long) if eos else None
        input_ids, mask = _pad_left(seqs, self._pad_id(), self.device)
        total = P + params.max_new_tokens
        cache = None
        if self.static:
            from transformers import StaticCache

            cache = StaticCache(config=self.model.config, max_cache_len=total)
        logits, cache = lm_forward(self.model, input_ids, mask, _positions(mask), cache, logits_to_keep=1)
        use_cache = cache is not None
        tokens = torch.empty((B, params.max_new_tokens), dtype=torch.long, device=self.device)
        lps = torch.zeros((B, params.max_new_tokens), device=self.device)
        raw = torch.zeros((B, params.max_new_tokens), device=self.device)
        done = torch.zeros(B, dtype=torch.bool, device=self.device)
        lengths = torch.full((B,), params.max_new_tokens, dtype=torch.long, device=self.device)
        reasons = ["length"] * B
        stop_window = 2 * max((len(s) for s in params.stop), default=0) + 4
        pos = _positions(mask)[:, -1:]
        for t in range(params.max_new_tokens):
            last = logits[:, -1].float()  # (B, V)
            raw_all = torch.log_softmax(last, -1)
            if params.temperature == 0:
                tok = last.argmax(-1)
                lp = torch.zeros(B, device=self.device)
            else:
                samp_all = torch.log_softmax(process_logits(last, params.temperature, params.top_k, params.top_p), -1)
                tok = torch.multinomial(samp_all.exp(), 1, generator=generator).squeeze(-1)
                lp = samp_all.gather(-1, tok[:, None]).squeeze(-1)
            tokens[:, t], lps[:, t] = tok, lp
            raw[:, t] = raw_all.gather(-1, tok[:, None]).squeeze(-1)
            if eos_t is not None:
                hit = torch.isin(tok, eos_t) & ~done
                for b in hit.nonzero().flatten().tolist():
                    lengths[b], reasons[b] = t + 1, "eos"
                done |= hit
            if params.stop:
                for b in (~done).nonzero().flatten().tolist():
                    tail = self.tokenizer.decode(tokens[b, max(0, t + 1 - stop_window): t + 1].tolist())
                    if any(s in tail for s in params.stop):
                        lengths[b], reasons[b] = t + 1, "stop"
                        done[b] = True
            if bool(done.all()) or t == params.max_new_tokens - 1:
                break
            mask = torch.cat([mask, torch.ones((B, 1), dtype=mask.dtype, device=self.device)], dim=1)
            pos = pos + 1
            if use_cache:
                logits, cache = self._step(tok[:, None], mask, pos, cache, total)
            else:  # model without a KV cache: re-encode everything
                full = torch.cat([input_ids, tokens[:, : t + 1]], dim=1)
                logits, _ = lm_forward(self.model, full, mask, _positions(mask), None, logits_to_keep=1)
        return [self._finish(tokens[b, : lengths[b]].tolist(), lps[b, : lengths[b]].cpu(),
                             raw[b, : lengths[b]].cpu(), reasons[b], params) for b in range(B)]

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


class VLLMGenerator:
    """The same interface on vLLM (optional extra ``rlcore[vllm]``; not exercised on CPU-only CI).

    Sampling log-probs come from vLLM with ``logprobs_mode="processed_logprobs"``; raw log-probs from a second,
    prefill-only pass over prompt + completion (``prompt_logprobs``).
    """

    def __init__(self, model: str, tokenizer: Any = None, **llm_kwargs: Any):
        try:
            from vllm import LLM
        except ImportError as e:
            raise ImportError("VLLMGenerator needs vLLM: pip install 'rlcore[vllm]'") from e
        llm_kwargs.setdefault("logprobs_mode", "processed_logprobs")
        self.llm = LLM(model=model, **llm_kwargs)
        self.tokenizer = tokenizer or self.llm.get_tokenizer()

    @staticmethod
    def vllm_sampling_kwargs(params: SamplingParams) -> dict[str, Any]:
        """SamplingParams -> keyword arguments of ``vllm.SamplingParams`` (tested without vLLM)."""
        return dict(n=params.n, temperature=params.temperature, top_p=params.top_p,
                    top_k=params.top_k if params.top_k > 0 else -1, max_tokens=params.max_new_tokens,
                    stop=list(params.stop), stop_token_ids=params.stop_token_ids, seed=params.seed, logprobs=0)

    def generate(self, prompts=None, prompt_ids=None, params: SamplingParams | None = None,
                 generator: torch.Generator | None = None) -> list[list[Completion]]:
        """See :class:`Generator`; ``generator`` is ignored (vLLM seeds by ``params.seed``)."""
        from vllm import SamplingParams as VSP

        params = params or SamplingParams()
        if (prompts is None) == (prompt_ids is None):
            raise ValueError("pass exactly one of prompts= or prompt_ids=")
        if prompt_ids is None:
            prompt_ids = [self.tokenizer(p).input_ids for p in prompts]
        inputs = [{"prompt_token_ids": list(p)} for p in prompt_ids]
        outs = self.llm.generate(inputs, VSP(**self.vllm_sampling_kwargs(params)), use_tqdm=False)
        flat = [(i, o) for i, out in enumerate(outs) for o in out.outputs]
        rescore = [{"prompt_token_ids": list(prompt_ids[i]) + list(o.token_ids)} for i, o in flat]
        scored = self.llm.generate(rescore, VSP(max_tokens=1, prompt_logprobs=0), use_tqdm=False)
        results: list[list[Completion]] = [[] for _ in prompt_ids]
        for (i, o), s in zip(flat, scored):
            ids = list(o.token_ids)
            lps = torch.tensor([d[t].logprob for d, t in zip(o.logprobs, ids)])
            n_p = len(prompt_ids[i])
            raw = torch.tensor([d[t].logprob for d, t in zip(s.prompt_logprobs[n_p:], ids)])
            reason = "length" if o.finish_reason == "length" else ("stop" if o.stop_reason is not None else "eos")
            results[i].append(Completion(i, ids, o.text, lps, raw, reason))
        return results


@torch.no_grad()
def score_continuations(model: Any, prompt_ids: Sequence[Sequence[int]], continuation_ids: Sequence[Sequence[int]],
                        temperature: float = 1.0, batch_size: int | None = None, pad_id: int = 0,
                        ) -> list[torch.Tensor]:
    """Per-token log-probs of each continuation given its prompt, in one forward pass per batch.

    Layout ``[left pad][prompt][continuation][right pad]`` so every continuation starts at the same column; the LM
    head runs only on the last ``max_cont + 1`` positions (``logits_to_keep``) and the log-softmax is selective.

    Returns:
        One ``(len(continuation),)`` float32 tensor per pair (log-probs at ``temperature``).

    """
    if len(prompt_ids) != len(continuation_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(continuation_ids)} continuations")
    device = model_device(model)
    n = len(prompt_ids)
    bs = batch_size or max(n, 1)
    out: list[torch.Tensor] = []
    for s in range(0, n, bs):
        ps, cs = prompt_ids[s:s + bs], continuation_ids[s:s + bs]
        if any(len(p) == 0 for p in ps):
            raise ValueError("every prompt needs at least one token to condition on")
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
        logits, _ = lm_forward(model, ids, mask, _positions(mask), None, logits_to_keep=C + 1)
        logits = logits[:, :-1].float() / (temperature if temperature > 0 else 1.0)  # (b, C, V)
        lp = selective_log_softmax(logits, cont.to(device))  # (b, C)
        out += [lp[i, : len(c)].cpu() for i, c in enumerate(cs)]
    return out
