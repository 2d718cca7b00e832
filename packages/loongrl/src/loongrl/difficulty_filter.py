"""Difficulty filter: keep seed items a model answers correctly in some but not all of ``k`` samples (spec step 1).

The official filter (Qwen2.5-32B-Instruct, 8 samples, temperature 1.0) reads the answer after the *first* "the
answer is" and counts a pass when the normalised prediction is a substring of the normalised gold ("CEM",
``pred in gold``). The earlier behaviour of this package (last "the answer is", ``gold in pred``) is kept as the
named options ``answer_occurrence="last"`` and ``cem_match="gold_in_pred"``. A prediction that normalises to
``""`` never passes (``"" in gold`` would always be true).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rlcore.rewards import normalize_answer

from .context_filling import render_context
from .data import QAItem
from .prompts import FILTER_PROMPT, to_messages

__all__ = ["extract_the_answer_is", "compute_cem", "compute_pass_counts", "filter_by_difficulty",
           "CEM_MATCHES", "ANSWER_OCCURRENCES"]

CEM_MATCHES = ("pred_in_gold", "gold_in_pred")
ANSWER_OCCURRENCES = ("first", "last")

_ANSWER_IS = re.compile(r"the answer is", re.IGNORECASE)


def extract_the_answer_is(response: str, occurrence: str = "first") -> str | None:
    r"""Text after the first (official) or last "the answer is" (case-insensitive), stripped of ``" :*\\n"``.

    ``None`` if absent. Never raises.

    Example:
        >>> extract_the_answer_is("The answer is Rome. Wait, the answer is 'Paris'.")
        "Rome. Wait, the answer is 'Paris'."
        >>> extract_the_answer_is("The answer is Rome. Wait, the answer is 'Paris'.", "last")
        "'Paris'."
    """
    if not isinstance(response, str):
        return None
    if occurrence == "last":
        hits = list(_ANSWER_IS.finditer(response))
        hit = hits[-1] if hits else None
    else:
        hit = _ANSWER_IS.search(response)
    if hit is None:
        return None
    return response[hit.end():].strip(" :*\n")


def compute_cem(prediction: str | None, golds: Sequence[str], match: str = "pred_in_gold") -> float:
    """CEM of the difficulty filter.

    1 if the normalised prediction is a substring of some normalised gold (official,
    ``match="pred_in_gold"``), or the gold of the prediction (``"gold_in_pred"``). Empty never passes.

    Example:
        >>> compute_cem("Paris", ["Paris, France"]), compute_cem("Paris, France", ["Paris"])
        (1.0, 0.0)
        >>> compute_cem("It is the Paris metro", ["Paris"], "gold_in_pred"), compute_cem(None, ["Paris"])
        (1.0, 0.0)
    """
    if not isinstance(prediction, str):
        return 0.0
    p = normalize_answer(prediction)
    if not p:
        return 0.0
    for g in golds:
        if not isinstance(g, str):
            continue
        gn = normalize_answer(g)
        if gn and (p in gn if match == "pred_in_gold" else gn in p):
            return 1.0
    return 0.0


def filter_prompt(item: QAItem) -> list[dict[str, Any]]:
    """The filter's chat prompt for one item (its original short context)."""
    return to_messages(FILTER_PROMPT.format(context=render_context(item.documents), input=item.question))


def count_passes(item: QAItem, responses: Sequence[str], match: str = "pred_in_gold",
                 occurrence: str = "first") -> int:
    """Passes among one item's responses."""
    return int(sum(compute_cem(extract_the_answer_is(r, occurrence), item.answers, match) for r in responses))


def compute_pass_counts(items: Sequence[QAItem], sampler: Any, k: int, match: str = "pred_in_gold",
                        occurrence: str = "first") -> list[int]:
    """Passes out of ``k`` samples per item over its original short context."""
    responses = sampler.sample([filter_prompt(it) for it in items], k)
    return [count_passes(it, rs, match, occurrence) for it, rs in zip(items, responses)]


def filter_by_difficulty(items: Sequence[QAItem], sampler: Any, k: int = 8, match: str = "pred_in_gold",
                         occurrence: str = "first") -> tuple[list[QAItem], dict[str, Any]]:
    """Keep items with ``0 < passes < k``; returns the kept items and stats (pass histogram, kept fraction)."""
    if k < 2:
        raise ValueError(f"k must be >= 2 (keep 0 < passes < k), got {k}")
    passes = compute_pass_counts(items, sampler, k, match, occurrence)
    return select_by_passes(items, passes, k)


def select_by_passes(items: Sequence[QAItem], passes: Sequence[int], k: int) -> tuple[list[QAItem], dict[str, Any]]:
    """The kept items (``0 < passes < k``) and the stats."""
    passes = list(passes)
    kept = [it for it, p in zip(items, passes) if 0 < p < k]
    hist = {str(c): passes.count(c) for c in range(k + 1)}
    return kept, {"total": len(items), "kept": len(kept), "kept_fraction": len(kept) / max(len(items), 1),
                  "pass_histogram": hist}
