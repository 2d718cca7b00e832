"""Difficulty filter: keep seed items a model answers correctly in some but not all of ``k`` samples (spec step 1).

The official filter (Qwen2.5-32B-Instruct, 8 samples, temperature 1.0) reads the answer after "the answer is"
and counts a pass when the normalised gold is a substring of the normalised prediction ("CEM").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rlcore.rewards import normalize_answer

from .context_filling import render_context
from .data import QAItem
from .prompts import FILTER_PROMPT, to_messages
from .sampling import Sampler

__all__ = ["extract_the_answer_is", "compute_cem", "compute_pass_counts", "filter_by_difficulty"]

_ANSWER_IS = re.compile(r"the answer is", re.IGNORECASE)


def extract_the_answer_is(response: str) -> str | None:
    """Text after the last "the answer is" (case-insensitive), stripped of quotes/markup; ``None`` if absent.

    Example:
        >>> extract_the_answer_is("... so The answer is 'Paris'.")
        "'Paris'."
    """
    hits = list(_ANSWER_IS.finditer(response))
    if not hits:
        return None
    return response[hits[-1].end():].strip(" :*\n")


def compute_cem(prediction: str | None, golds: Sequence[str]) -> float:
    """Cover exact match: 1 if some normalised gold is a substring of the normalised prediction.

    Example:
        >>> compute_cem("It is the Paris metro", ["Paris"]), compute_cem(None, ["Paris"])
        (1.0, 0.0)
    """
    if prediction is None:
        return 0.0
    p = normalize_answer(prediction)
    return float(any(normalize_answer(g) and normalize_answer(g) in p for g in golds))


def compute_pass_counts(items: Sequence[QAItem], sampler: Sampler, k: int) -> list[int]:
    """Passes out of ``k`` samples per item over its original short context."""
    prompts = [to_messages(FILTER_PROMPT.format(context=render_context(it.documents), input=it.question))
               for it in items]
    responses = sampler.sample(prompts, k)
    return [int(sum(compute_cem(extract_the_answer_is(r), it.answers) for r in rs))
            for it, rs in zip(items, responses)]


def filter_by_difficulty(items: Sequence[QAItem], sampler: Sampler, k: int = 8) -> tuple[list[QAItem], dict[str, Any]]:
    """Keep items with ``0 < passes < k``; returns the kept items and stats (pass histogram, kept fraction)."""
    if k < 2:
        raise ValueError(f"k must be >= 2 (keep 0 < passes < k), got {k}")
    passes = compute_pass_counts(items, sampler, k)
    kept = [it for it, p in zip(items, passes) if 0 < p < k]
    hist = {str(c): passes.count(c) for c in range(k + 1)}
    return kept, {"total": len(items), "kept": len(kept), "kept_fraction": len(kept) / max(len(items), 1),
                  "pass_histogram": hist}
