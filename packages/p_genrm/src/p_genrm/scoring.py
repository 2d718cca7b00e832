"""Scoring with any causal LM: batched evaluation-chain sampling, parsing, retries of failed parses.

:class:`GenRMScorer` turns :class:`ScoreRequest` objects into prompts (chat template when the tokenizer has one,
system turn folded into the user turn when it has none), samples chains through an rlcore ``Generator``
(``make_generator``: HF or vLLM), parses each chain and re-samples only the failed ones, up to ``max_retries``
rounds. A chain that still fails is kept with
its reason code and skipped by the aggregation; failure counts are reported, scores are never guessed.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rlcore.chat import fit_messages, fold_system, template_supports_system

from .chain_parser import ChainSample
from .evaluation_chain import ScoreRequest, build_messages, shuffle_order

__all__ = ["GenRMScorer", "ScoringStats", "render_prompt", "fit_messages", "fold_system_prompt", "fit_to_context",
           "template_supports_system", "load_scorer"]


# system-turn folding lives in rlcore (shared with loongrl); re-exported under this module's names
fold_system_prompt = fold_system


def render_prompt(messages: list[dict[str, str]], tokenizer: Any) -> str:
    """The generation prompt: the chat template (see :func:`fit_messages`) when there is one, else role tags."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(fit_messages(messages, tokenizer), tokenize=False,
                                             add_generation_prompt=True)
    return "".join(f"{m['role'].upper()}:\n{m['content']}\n\n" for m in messages) + "ASSISTANT:\n"


def model_context(generator: Any) -> int | None:
    """The generator's model context length (``max_position_embeddings``), None when unknown."""
    cfg = getattr(getattr(generator, "model", None), "config", None)
    limit = getattr(cfg, "max_position_embeddings", None)
    return limit if isinstance(limit, int) and limit > 0 else None


def fit_to_context(prompt_ids: list[list[int]], max_new_tokens: int, limit: int | None
                   ) -> tuple[list[list[int]], int, int]:
    """Fit prompts + generation budget into a context of ``limit`` tokens.

    If the longest prompt plus ``max_new_tokens`` fits, nothing changes. Otherwise the budget becomes
    ``max(limit - longest, min(max_new_tokens, limit // 4))`` and prompts longer than ``limit - budget`` keep
    their last tokens (the responses and the generation prompt). Returns ``(ids, budget, n_truncated)``.

    Example:
        >>> fit_to_context([[1] * 300, [2] * 10], 3072, 256)[1:]
        (64, 1)
    """
    if limit is None:
        return prompt_ids, max_new_tokens, 0
    longest = max(len(p) for p in prompt_ids)
    if longest + max_new_tokens <= limit:
        return prompt_ids, max_new_tokens, 0
    budget = max(limit - longest, min(max_new_tokens, max(limit // 4, 1)))
    keep = limit - budget
    out = [p if len(p) <= keep else p[len(p) - keep:] for p in prompt_ids]
    return out, budget, sum(len(p) > keep for p in prompt_ids)


@dataclass
class ScoringStats:
    """Counters over a scorer's lifetime: chains generated, parse failures by reason, retries, prompt fitting."""

    generated: int = 0
    parsed: int = 0
    retried: int = 0
    generate_calls: int = 0
    truncated_prompts: int = 0
    system_folded: bool = False
    failures: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly counters (failure reasons are those left after the retries)."""
        return {"generated": self.generated, "parsed": self.parsed, "retried": self.retried,
                "generate_calls": self.generate_calls, "failed_by_reason": dict(self.failures),
                "truncated_prompts": self.truncated_prompts, "system_folded": self.system_folded}


class GenRMScorer:
    """Sample and parse evaluation chains for many requests in as few ``generate`` calls as possible.

    Args:
        generator: an rlcore ``Generator`` (``generate(prompts=... | prompt_ids=..., params=..., generator=...)``).
        tokenizer: for the chat template; ``None`` uses ``generator.tokenizer``.
        max_new_tokens: chain length budget (the released HF pipeline uses 3072); lowered, and prompts
            left-truncated, when the model's context cannot hold prompt + budget (counted in ``stats``).
        temperature: sampling temperature (1.0 for test-time scaling, as released).
        max_retries: extra rounds that re-sample only the chains that failed to parse.
        seed: seeds both the display shuffles and the sampling generator.
        strict_arithmetic: ask for and parse our structured ``criteria`` format with its weighted-sum check
            (default: the released free-text format, stated scores taken as written).
    """

    def __init__(self, generator: Any, tokenizer: Any = None, max_new_tokens: int = 3072, temperature: float = 1.0,
                 top_p: float = 1.0, max_retries: int = 2, seed: int = 42, strict_arithmetic: bool = False):
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.generator = generator
        self.tokenizer = tokenizer if tokenizer is not None else getattr(generator, "tokenizer", None)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.max_retries = max_retries
        self.strict_arithmetic = strict_arithmetic
        self.rng = random.Random(seed)
        self.seed = seed
        self._torch_gen = None
        self.stats = ScoringStats()
        self.context = model_context(generator)

    def _tgen(self):
        import torch

        if self._torch_gen is None:
            device = getattr(self.generator, "device", "cpu")
            self._torch_gen = torch.Generator(device=device).manual_seed(self.seed)
        return self._torch_gen

    def prompt(self, request: ScoreRequest, order: tuple[int, int]) -> str:
        """The rendered generation prompt of ``request`` shown in ``order``."""
        tok = self.tokenizer
        if tok is not None and getattr(tok, "chat_template", None) and not template_supports_system(tok):
            self.stats.system_folded = True
        return render_prompt(build_messages(request, order, self.strict_arithmetic), tok)

    def parse(self, text: str, order: tuple[int, int]) -> ChainSample:
        """One generated text -> a :class:`ChainSample` (never raises)."""
        return ChainSample.from_text(text, order, strict_arithmetic=self.strict_arithmetic)

    def _generate(self, prompts: list[str], n: int) -> list[list[str]]:
        from rlcore.rollout import SamplingParams

        budget, kw = self.max_new_tokens, {"prompts": prompts}
        if self.tokenizer is not None:  # token ids: fit prompt + budget into the model's context
            ids = [self.tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
            ids, budget, cut = fit_to_context(ids, self.max_new_tokens, self.context)
            self.stats.truncated_prompts += cut
            kw = {"prompt_ids": ids}
        params = SamplingParams(max_new_tokens=budget, temperature=self.temperature, top_p=self.top_p, n=n)
        self.stats.generate_calls += 1
        out = self.generator.generate(params=params, generator=self._tgen(), **kw)
        self.stats.generated += n * len(prompts)
        return [[c.text for c in comps] for comps in out]

    def sample_chains(self, requests: list[ScoreRequest], n: int | list[int]) -> list[list[ChainSample]]:
        """``n`` (or ``n[i]``) parsed chains per request, shuffling each request's display order once.

        All requests sharing a sample count go into one ``generate`` call; failed parses are re-sampled (one call
        per retry round) and, when still failing, returned with ``error`` set and no scores.
        """
        counts = [n] * len(requests) if isinstance(n, int) else list(n)
        if len(counts) != len(requests) or any(c < 0 for c in counts):
            raise ValueError(f"n must be a count >= 0 or one per request ({len(requests)}), got {n}")
        orders = [shuffle_order(self.rng) for _ in requests]
        prompts = [self.prompt(r, o) for r, o in zip(requests, orders)]
        results: list[list[ChainSample]] = [[] for _ in requests]
        for c in sorted(set(counts) - {0}):
            idx = [i for i, k in enumerate(counts) if k == c]
            for i, texts in zip(idx, self._generate([prompts[i] for i in idx], c)):
                results[i] = [self.parse(t, orders[i]) for t in texts]
        for _ in range(self.max_retries):
            failed = [(i, j) for i, res in enumerate(results) for j, s in enumerate(res) if s.parsed is None]
            if not failed:
                break
            self.stats.retried += len(failed)
            texts = self._generate([prompts[i] for i, _ in failed], 1)
            for (i, j), (t,) in zip(failed, texts):
                results[i][j] = self.parse(t, orders[i])
        for res in results:
            for s in res:
                if s.parsed is None:
                    self.stats.failures[s.error] += 1
                else:
                    self.stats.parsed += 1
        return results


def load_scorer(model: str, device: str | None = None, dtype: str | None = None, batch_size: int | None = None,
                backend: str = "hf", tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                **scorer_kw: Any) -> GenRMScorer:
    """A :class:`GenRMScorer` over an rlcore generator (``make_generator``) for a built-in, local or hub model.

    ``backend="vllm"`` hands the model reference to vLLM (the HF weights are not loaded here); a missing vLLM is a
    one-line ``ValueError``.
    """
    from rlcore.builtins import load_model_and_tokenizer, resolve
    from rlcore.rollout import make_generator

    if backend == "vllm":
        gen = make_generator(resolve(model), None, backend="vllm", tensor_parallel_size=tensor_parallel_size,
                             gpu_memory_utilization=gpu_memory_utilization, seed=scorer_kw.get("seed"))
        return GenRMScorer(gen, gen.tokenizer, **scorer_kw)
    lm, tok = load_model_and_tokenizer(model, device=device, dtype=dtype)
    gen = make_generator(lm, tok, backend=backend, batch_size=batch_size)
    return GenRMScorer(gen, tok, **scorer_kw)
