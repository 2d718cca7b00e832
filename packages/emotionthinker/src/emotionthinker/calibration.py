"""Relative prosody levels: percentile cuts within the clip's own corpus (and gender, for pitch).

Released pipeline ``calibration.py`` (spec "Level labels"): energy and rate are grouped per corpus (``dataset``),
pitch (F0 median Hz) per corpus x predicted gender. Default cuts are tertiles (33.3 / 66.7), linear-interpolated
percentiles. A group with fewer than 50 valued members uses the pooled fallback (all corpora; still per gender for
pitch). ``value <= cut1`` -> low (slow), ``<= cut2`` -> normal, else high (fast).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["LEVEL_FEATURES", "compute_cuts", "compute_level", "calibrate_levels"]

# level field -> (feature field, group by gender?, labels low/normal/high)
LEVEL_FEATURES: dict[str, tuple[str, bool, tuple[str, str, str]]] = {
    "pitch_level": ("f0_median_hz", True, ("low", "normal", "high")),
    "energy_level": ("energy_dbfs", False, ("low", "normal", "high")),
    "speed_level": ("articulation_rate_pps", False, ("slow", "normal", "fast")),
}


def compute_cuts(values: Sequence[float], percentiles: tuple[float, float] = (33.3, 66.7)) -> tuple[float, float]:
    """The two cut points: linear-interpolated percentiles of ``values``.

    Example:
        >>> compute_cuts([1.0, 2.0, 3.0, 4.0], (25, 75))  # positions 0.75 and 2.25
        (1.75, 3.25)
    """
    c1, c2 = np.percentile(np.asarray(values, dtype=np.float64), percentiles, method="linear")
    return float(c1), float(c2)


def compute_level(value: float | None, cuts: tuple[float, float], labels: tuple[str, str, str]) -> str | None:
    """``value <= cut1`` -> labels[0], ``<= cut2`` -> labels[1], else labels[2]; ``None`` stays ``None``.

    Example:
        >>> compute_level(2.0, (1.75, 3.25), ("low", "normal", "high"))
        'normal'
    """
    if value is None:
        return None
    if value <= cuts[0]:
        return labels[0]
    return labels[1] if value <= cuts[1] else labels[2]


def _group_key(rec: dict[str, Any], by_gender: bool) -> tuple:
    corpus = rec.get("dataset") or "unknown"
    return (corpus, rec.get("gender") or "unknown") if by_gender else (corpus,)


def calibrate_levels(records: list[dict[str, Any]], percentiles: tuple[float, float] = (33.3, 66.7),
                     min_group: int = 50) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Add ``pitch_level`` / ``energy_level`` / ``speed_level`` to each record (copies; inputs untouched).

    Records need the feature fields of :data:`LEVEL_FEATURES` (``None`` allowed -> level ``None``) and may carry
    ``dataset`` and ``gender``. Returns ``(records, cuts_report)`` where the report lists, per level and group,
    the cuts, the group size and whether the pooled fallback was used.
    """
    out = [dict(r) for r in records]
    report: dict[str, Any] = {}
    for level, (feat, by_gender, labels) in LEVEL_FEATURES.items():
        groups: dict[tuple, list[float]] = defaultdict(list)
        pooled: dict[tuple, list[float]] = defaultdict(list)
        for r in out:
            v = r.get(feat)
            if v is not None:
                groups[_group_key(r, by_gender)].append(float(v))
                pooled[_group_key(r, by_gender)[1:]].append(float(v))
        cuts_by_group: dict[tuple, tuple[float, float]] = {}
        report[level] = {}
        for key, vals in groups.items():
            fallback = len(vals) < min_group
            src = pooled[key[1:]] if fallback else vals
            cuts_by_group[key] = compute_cuts(src, percentiles)
            report[level]["/".join(key)] = {"cuts": list(cuts_by_group[key]), "n": len(vals), "pooled": fallback,
                                            "n_used": len(src)}
        for r in out:
            v = r.get(feat)
            r[level] = None if v is None else compute_level(float(v), cuts_by_group[_group_key(r, by_gender)], labels)
    return out, report
