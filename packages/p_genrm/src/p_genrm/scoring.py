"""Scoring with any causal LM: batched evaluation-chain sampling, strict parsing, retries of failed parses.

:class:`GenRMScorer` turns :class:`ScoreRequest` objects into prompts (chat template when the tokenizer has one),
samples chains through an rlcore ``Generator`` (``HFGenerator``; ``VLLMGenerator`` optional), parses each chain
strictly and re-samples only the failed ones, up to ``max_retries`` rounds. A chain that still fails is kept with
its reason code and skipped by the aggregation; failure counts are reported, scores are never guessed.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .evaluation_chain import ChainSample, ScoreRequest, build_messages, shuffle_order

__all__ = ["GenRMScorer", "ScoringStats", "render_prompt", "load_scorer"]


def render_prompt(messages: list[dict[str, str]], tokenizer: Any) -> str:
    """The generation prompt: the tokenizer's chat template when it has one, else a plain role-tagged text."""
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "".join(f"{m['role'].upper()}:\n{m['content']}\n\n" for m in messages) + "ASSISTANT:\n"


@dataclass
class ScoringStats:
    """Counters over a scorer's lifetime: chains generated, parse failures by reason, retries."""

    generated: int = 0
    parsed: int = 0
    retried: int = 0
    generate_calls: int = 0
    failures: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly counters (failure reasons are those left after the retries)."""
        return {"generated": self.generated, "parsed": self.parsed, "retried": self.retried,
                "generate_calls": self.generate_calls, "failed_by_reason": dict(self.failures)}


class GenRMScorer:
    """Sample and parse evaluation chains for many requests in as few ``generate`` calls as possible.

    Args:
        generator: an rlcore ``Generator`` (``generate(prompts=..., params=..., generator=...)``).
        tokenizer: for the chat template; ``None`` uses ``generator.tokenizer``.
        max_new_tokens: chain length budget (the released HF pipeline uses 3072).
        temperature: sampling temperature (1.0 for test-time scaling, as released).
        max_retries: extra rounds that re-sample only the chains that failed to parse.
        seed: seeds both the display shuffles and the sampling generator.
        parse_kw: tolerances forwarded to :func:`parse_chain`.
    """

    def __init__(self, generator: Any, tokenizer: Any = None, max_new_tokens: int = 3072, temperature: float = 1.0,
                 top_p: float = 1.0, max_retries: int = 2, seed: int = 42, parse_kw: dict[str, Any] | None = None):
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.generator = generator
        self.tokenizer = tokenizer if tokenizer is not None else getattr(generator, "tokenizer", None)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.max_retries = max_retries
        self.parse_kw = parse_kw or {}
        self.rng = random.Random(seed)
        self.seed = seed
        self._torch_gen = None
        self.stats = ScoringStats()

    def _tgen(self):
        import torch

        if self._torch_gen is None:
            device = getattr(self.generator, "device", "cpu")
            self._torch_gen = torch.Generator(device=device).manual_seed(self.seed)
        return self._torch_gen

    def _generate(self, prompts: list[str], n: int) -> list[list[str]]:
        from rlcore.rollout import SamplingParams

        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                top_p=self.top_p, n=n)
        self.stats.generate_calls += 1
        out = self.generator.generate(prompts=prompts, params=params, generator=self._tgen())
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
        prompts = [render_prompt(build_messages(r, o), self.tokenizer) for r, o in zip(requests, orders)]
        results: list[list[ChainSample]] = [[] for _ in requests]
        for c in sorted(set(counts) - {0}):
            idx = [i for i, k in enumerate(counts) if k == c]
            for i, texts in zip(idx, self._generate([prompts[i] for i in idx], c)):
                results[i] = [ChainSample.from_text(t, orders[i], **self.parse_kw) for t in texts]
        for _ in range(self.max_retries):
            failed = [(i, j) for i, res in enumerate(results) for j, s in enumerate(res) if s.parsed is None]
            if not failed:
                break
            self.stats.retried += len(failed)
            texts = self._generate([prompts[i] for i, _ in failed], 1)
            for (i, j), (t,) in zip(failed, texts):
                results[i][j] = ChainSample.from_text(t, orders[i], **self.parse_kw)
        for res in results:
            for s in res:
                if s.parsed is None:
                    self.stats.failures[s.error] += 1
                else:
                    self.stats.parsed += 1
        return results


def load_scorer(model: str, device: str | None = None, dtype: str | None = None, batch_size: int | None = None,
                **scorer_kw: Any) -> GenRMScorer:
    """A :class:`GenRMScorer` over ``HFGenerator`` for a built-in, local or hub causal LM."""
    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.rollout import HFGenerator

    lm, tok = load_model_and_tokenizer(model, device=device, dtype=dtype)
    return GenRMScorer(HFGenerator(lm, tok, batch_size=batch_size), tok, **scorer_kw)
