"""Relative prosody levels: percentile cuts within the clip's own corpus (and gender, for pitch).

Released pipeline ``calibration.py`` (spec "Level labels"): energy and rate are grouped per corpus (``dataset``),
pitch (F0 median Hz) per corpus x predicted gender. Default cuts are exact tertiles (100/3, 200/3),
linear-interpolated percentiles. A group with fewer than 50 valued members uses the pooled fallback (all corpora;
still per gender for pitch), which itself needs 50 members (else no level). ``value <= cut1`` -> low (slow),
``<= cut2`` -> normal, else high (fast). The fitted cut points are a JSON file (:func:`save_calibration`) that
another corpus can reuse (:func:`load_calibration`, ``annotate --calibration FILE``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LEVEL_FEATURES", "DEFAULT_PERCENTILES", "compute_cuts", "compute_level", "fit_calibration", "lookup_cuts",
           "apply_calibration", "calibrate_levels", "save_calibration", "load_calibration"]

CALIBRATION_FORMAT = "emotionthinker-calibration-v1"
DEFAULT_PERCENTILES = (100.0 / 3.0, 200.0 / 3.0)  # released calibration.py: exact tertiles

# level field -> (feature field, group by gender?, labels low/normal/high)
LEVEL_FEATURES: dict[str, tuple[str, bool, tuple[str, str, str]]] = {
    "pitch_level": ("f0_median_hz", True, ("low", "normal", "high")),
    "energy_level": ("energy_dbfs", False, ("low", "normal", "high")),
    "speed_level": ("articulation_rate_pps", False, ("slow", "normal", "fast")),
}


def compute_cuts(values: Sequence[float], percentiles: tuple[float, float] = DEFAULT_PERCENTILES) -> tuple[float, float]:
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


def _group_key(rec: dict[str, Any], by_gender: bool) -> str:
    corpus = str(rec.get("dataset") or "unknown")
    return f"{corpus}/{rec.get('gender') or 'unknown'}" if by_gender else corpus


def _pooled_key(rec: dict[str, Any], by_gender: bool) -> str:
    return str(rec.get("gender") or "unknown") if by_gender else "all"


def _cuts4(values: list[float], percentiles: tuple[float, float]) -> list[float]:
    return [round(c, 4) for c in compute_cuts(values, percentiles)]  # released files store 4 decimals


def fit_calibration(records: list[dict[str, Any]], percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
                    min_group: int = 50, pooled_needs_min_group: bool = True) -> dict[str, Any]:
    """Fit the cut points: per level, per group (corpus, or corpus/gender for pitch) and the pooled fallbacks.

    A group with ``>= min_group`` valued members gets its own cuts (``"cuts": [c1, c2]``), a smaller one
    ``"cuts": null`` and uses the pooled fallback (all corpora; per gender for pitch). With
    ``pooled_needs_min_group`` (released behaviour) a pooled group smaller than ``min_group`` has no cuts either,
    so its records get level ``None``; without it the pooled cuts are used whatever its size.

    Returns:
        A JSON-serialisable calibration (see :func:`save_calibration`), reusable on another corpus.
    """
    calib: dict[str, Any] = {"format": CALIBRATION_FORMAT, "percentiles": [float(p) for p in percentiles],
                             "min_group": int(min_group), "pooled_needs_min_group": bool(pooled_needs_min_group),
                             "levels": {}}
    for level, (feat, by_gender, labels) in LEVEL_FEATURES.items():
        groups: dict[str, list[float]] = defaultdict(list)
        pooled: dict[str, list[float]] = defaultdict(list)
        for r in records:
            v = r.get(feat)
            if v is not None:
                groups[_group_key(r, by_gender)].append(float(v))
                pooled[_pooled_key(r, by_gender)].append(float(v))
        calib["levels"][level] = {
            "feature": feat, "by_gender": by_gender, "labels": list(labels),
            "groups": {k: {"n": len(v), "cuts": _cuts4(v, percentiles) if len(v) >= min_group else None}
                       for k, v in sorted(groups.items())},
            "fallback": {k: {"n": len(v), "cuts": _cuts4(v, percentiles)}
                         for k, v in sorted(pooled.items()) if len(v) >= min_group or not pooled_needs_min_group},
        }
    return calib


def lookup_cuts(calib: dict[str, Any], level: str, rec: dict[str, Any]) -> tuple[tuple[float, float] | None, str]:
    """``(cuts, source)`` for one record: its group's cuts, else the pooled fallback's, else ``(None, "none")``."""
    entry = calib["levels"][level]
    by_gender = bool(entry["by_gender"])
    group = entry["groups"].get(_group_key(rec, by_gender))
    if group and group.get("cuts"):
        return tuple(group["cuts"]), "group"
    fb = entry["fallback"].get(_pooled_key(rec, by_gender))
    return (tuple(fb["cuts"]), "pooled") if fb and fb.get("cuts") else (None, "none")


def apply_calibration(records: list[dict[str, Any]], calib: dict[str, Any]) -> list[dict[str, Any]]:
    """Add ``pitch_level`` / ``energy_level`` / ``speed_level`` from fitted/loaded cut points (copies)."""
    out = [dict(r) for r in records]
    for level, entry in calib["levels"].items():
        labels = tuple(entry["labels"])
        for r in out:
            v = r.get(entry["feature"])
            cuts, _ = lookup_cuts(calib, level, r) if v is not None else (None, "none")
            r[level] = None if cuts is None else compute_level(float(v), cuts, labels)
    return out


def calibrate_levels(records: list[dict[str, Any]], percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
                     min_group: int = 50, calibration: dict[str, Any] | None = None,
                     pooled_needs_min_group: bool = True) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Levels for ``records`` (copies; inputs untouched) from ``calibration`` or cut points fitted on them.

    Returns:
        ``(records, calibration)``: the calibration used (cuts per level, group and pooled fallback).
    """
    calib = calibration if calibration is not None else fit_calibration(records, percentiles, min_group,
                                                                        pooled_needs_min_group)
    return apply_calibration(records, calib), calib


def save_calibration(path: str | Path, calib: dict[str, Any]) -> None:
    """Write the cut points as JSON (``annotate --calibration FILE`` reuses them on another corpus)."""
    from rlcore.io import write_json

    write_json(path, calib)


def load_calibration(path: str | Path) -> dict[str, Any]:
    """Read and check a calibration file.

    Raises:
        ValueError: unreadable JSON or a missing/malformed key (the message names the file and the key).
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"calibration file not found: {p}")
    try:
        calib = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{p}: not a JSON calibration file ({e})") from None
    if not isinstance(calib, dict) or calib.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"{p}: key 'format' must be {CALIBRATION_FORMAT!r} (written by emotionthinker annotate)")
    levels = calib.get("levels")
    if not isinstance(levels, dict) or set(levels) != set(LEVEL_FEATURES):
        raise ValueError(f"{p}: key 'levels' must hold {sorted(LEVEL_FEATURES)}")
    for level, entry in levels.items():
        for key in ("feature", "by_gender", "labels", "groups", "fallback"):
            if not isinstance(entry, dict) or key not in entry:
                raise ValueError(f"{p}: key 'levels.{level}.{key}' is missing")
        for part in ("groups", "fallback"):
            for g, v in entry[part].items():
                cuts = v.get("cuts") if isinstance(v, dict) else "bad"
                if cuts is not None and not (isinstance(cuts, list) and len(cuts) == 2
                                             and all(isinstance(c, int | float) for c in cuts) and cuts[0] <= cuts[1]):
                    raise ValueError(f"{p}: key 'levels.{level}.{part}.{g}.cuts' must be two increasing numbers")
    return calib
