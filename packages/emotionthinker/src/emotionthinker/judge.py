"""Pluggable reasoning judges: ``judge(think, answer, record) -> score in [0, 1]``.

The paper scores the ``<think>`` trace with a reward model on multi-dimensional criteria (four, per summaries);
the model and scale are not public [U]. A judge here is any callable with that signature: a registered name, a
``module:attr`` path, or an object passed in Python. The built-in ``prosody-rubric`` is a transparent rule-based
stand-in over four criteria (acoustic grounding, answer consistency, coherence, transcript faithfulness),
rounded to 0.1 steps like Sophia's 0-1 judge scale. It is a baseline for tests and demos, not the paper's RM.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from typing import Any

from .policy import LABEL_ALIASES, normalize_label

__all__ = ["Judge", "JUDGE_REGISTRY", "register_judge", "get_judge", "check_judge_score", "prosody_rubric_judge",
           "compute_rubric_criteria"]

Judge = Callable[[str, "str | None", dict[str, Any]], float]
JUDGE_REGISTRY: dict[str, Judge] = {}

_CUES = {
    "pitch_level": r"pitch|tone|f0",
    "energy_level": r"energy|loud\w*|volume|intensity",
    "speed_level": r"speed|rate|pace|tempo|fast|slow",
    "intonation": r"intonation|contour|rising|falling|melody",
}


def register_judge(name: str) -> Callable[[Judge], Judge]:
    """Register a judge under ``name``; a different function under a taken name is an error."""

    def deco(fn: Judge) -> Judge:
        if name in JUDGE_REGISTRY and JUDGE_REGISTRY[name] is not fn:
            raise ValueError(f"judge {name!r} is already registered")
        JUDGE_REGISTRY[name] = fn
        return fn

    return deco


def get_judge(name: str) -> Judge:
    """A registered judge, or ``module:attr`` imported (a class is instantiated with no arguments).

    Raises:
        ValueError: unknown name (lists the registered ones) or an import path that does not resolve.
    """
    if name in JUDGE_REGISTRY:
        return JUDGE_REGISTRY[name]
    if ":" in name:
        mod, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot load judge {name!r}: {e}") from None
        return obj() if isinstance(obj, type) else obj
    raise ValueError(f"unknown judge {name!r}; registered: {sorted(JUDGE_REGISTRY)} (or give 'module:attr')")


def check_judge_score(name: str, value: Any) -> float:
    """Validate one judge output: a finite float in [0, 1] (error names the judge)."""
    v = float(value)
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise ValueError(f"judge {name!r} returned {value!r}; scores must be finite and in [0, 1]")
    return v


def _mentions(text: str, cue: str, level: str) -> bool:
    """The level word within 4 words of a cue word (either order)."""
    lvl = re.escape(level.replace("-", " ").split()[0])
    pat = rf"\b(?:{cue})\b(?:\W+\w+){{0,4}}?\W+{lvl}|\b{lvl}\w*(?:\W+\w+){{0,4}}?\W+(?:{cue})\b"
    return re.search(pat, text) is not None


def compute_rubric_criteria(think: str, answer: str | None, record: dict[str, Any]) -> dict[str, float]:
    """The four rubric criteria in [0, 1] (see module docstring); ``nan`` marks a criterion that does not apply.

    - grounding: share of the record's known prosody levels the trace names next to their cue word
      (no levels known: share of the four cue families mentioned at all).
    - consistency: 1 if the final answer's label appears in the trace, 0.5 if it does not, 0 without an answer.
    - coherence: length factor (1 inside 50-200 words) x lexical variety (distinct/total >= 0.5 -> 1).
    - faithfulness: share of the transcript's content words (> 3 letters) in the trace, x2 capped at 1.
    """
    t = think.lower()
    known = {k: str(record[k]).lower() for k in _CUES if record.get(k) not in (None, "", "uncertain", "too_short")}
    if known:
        grounding = sum(_mentions(t, _CUES[k], v) for k, v in known.items()) / len(known)
    else:
        grounding = sum(re.search(rf"\b(?:{c})\b", t) is not None for c in _CUES.values()) / len(_CUES)
    label = normalize_label(answer)
    if label is None:
        consistency = 0.0
    else:
        names = [label] + [a for a, v in LABEL_ALIASES.items() if v == label]
        consistency = 1.0 if any(re.search(rf"\b{re.escape(n)}", t) for n in names) else 0.5
    words = re.findall(r"[a-z']+", t)
    n = len(words)
    length = 0.0 if n == 0 else min(1.0, n / 50) if n < 50 else min(1.0, 200 / n)
    variety = min(1.0, (len(set(words)) / n) / 0.5) if n else 0.0
    content = {w for w in re.findall(r"[a-z']+", str(record.get("transcription") or "").lower()) if len(w) > 3}
    faithful = min(1.0, 2 * sum(w in set(words) for w in content) / len(content)) if content else float("nan")
    return {"grounding": grounding, "consistency": consistency, "coherence": length * variety,
            "faithfulness": faithful}


@register_judge("prosody-rubric")
def prosody_rubric_judge(think: str, answer: str | None, record: dict[str, Any]) -> float:
    """Mean of the applicable rubric criteria, rounded to 0.1 (Sophia's 0-1 scale in 0.1 steps).

    Example:
        >>> rec = {"pitch_level": "high", "transcription": "I cannot believe it"}
        >>> # grounding 1 (pitch..high), consistency 1, coherence 11/50 = 0.22, faithfulness 1: mean 0.805
        >>> prosody_rubric_judge("The pitch is high and she says believe loudly, so surprise.", "surprise", rec)
        0.8
    """
    vals = [v for v in compute_rubric_criteria(think, answer, record).values() if not math.isnan(v)]
    return round(sum(vals) / len(vals), 1)
