r"""Emotion similarity from valence-arousal distances (EMO-RL-style similarity-weighted outcome reward).

A 0/1 accuracy reward scores "contempt or disgust" for "angry" like "happy" for "angry". EMO-RL (EMNLP Findings
2025) weights the reward by emotion similarity instead. Each label sits at a point :math:`(v, a)` of the
valence-arousal plane (both in [-1, 1]); the similarity of two labels is

.. math:: s(p, g) = \max\left(0,\; 1 - \frac{\lVert (v_p, a_p) - (v_g, a_g) \rVert_2}{d_0}\right)

with radius :math:`d_0 = 1` by default: identical labels 1, labels farther apart than :math:`d_0` 0. The default
coordinates (:data:`DEFAULT_VA`) are ours: approximate positions on Russell's circumplex of affect on a 0.1 grid,
with "whisper" (a speaking style, not an emotion) placed at neutral valence and low arousal. They are a
documented starting point, not measured values; pass a file (:func:`load_similarity`) to use your own:

- ``{"valence_arousal": {"angry": [-0.6, 0.8], ...}, "radius": 1.0}`` (all nine labels), or
- ``{"matrix": {"angry": {"angry": 1.0, "sad": 0.2, ...}, ...}}`` (a full 9x9 table in [0, 1], diagonal 1).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rlcore.rewards import completion_text

from .policy import LABELS, normalize_label, parse_answer

__all__ = ["DEFAULT_VA", "DEFAULT_RADIUS", "SimilarityMatrix", "load_similarity", "compute_va_similarity",
           "SimilarityReward"]

# (valence, arousal) in [-1, 1]; ours (see module docstring).
DEFAULT_VA: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "happy": (0.8, 0.5),
    "sad": (-0.7, -0.4),
    "angry": (-0.6, 0.8),
    "contempt or disgust": (-0.6, 0.3),
    "confused": (-0.3, 0.4),
    "whisper": (0.0, -0.6),
    "surprise": (0.3, 0.8),
    "fear": (-0.7, 0.6),
}
DEFAULT_RADIUS = 1.0


def compute_va_similarity(va: dict[str, tuple[float, float]], radius: float = DEFAULT_RADIUS) -> dict[str, dict[str, float]]:
    r"""The 9x9 similarity table :math:`\max(0, 1 - d / d_0)` from valence-arousal points.

    Example:
        >>> s = compute_va_similarity(DEFAULT_VA)
        >>> s["angry"]["contempt or disgust"], s["angry"]["happy"], s["neutral"]["confused"]
        (0.5, 0.0, 0.5)
    """
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    out: dict[str, dict[str, float]] = {}
    for p in LABELS:
        out[p] = {}
        for g in LABELS:
            d = math.dist(va[p], va[g])
            out[p][g] = round(max(0.0, 1.0 - d / radius), 6)
    return out


class SimilarityMatrix:
    """Label-pair similarity lookup: ``sim(pred, gold)`` in [0, 1]; an unparsed prediction (``None``) gives 0."""

    def __init__(self, table: dict[str, dict[str, float]], source: str = "default"):
        self.table = table
        self.source = source

    def __call__(self, pred: str | None, gold: str) -> float:
        if pred is None:
            return 0.0
        return self.table[pred][gold]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "matrix": self.table}


def _check_label(path: Path, key: str, label: Any) -> str:
    lab = normalize_label(label) if isinstance(label, str) else None
    if lab is None or lab != label:
        raise ValueError(f"{path}: key {key!r}: {label!r} is not one of {list(LABELS)}")
    return lab


def load_similarity(path: str | Path | None = None) -> SimilarityMatrix:
    """The default matrix (``path`` empty/None) or one read from a JSON/YAML/TOML file (formats: module doc).

    Raises:
        ValueError: unreadable file, a missing/unknown label, a value outside [0, 1] or a diagonal that is not
            1 (the message names the file and the key).
    """
    if not path:
        return SimilarityMatrix(compute_va_similarity(DEFAULT_VA, DEFAULT_RADIUS), "default valence-arousal")
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"similarity file not found: {p}")
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        elif p.suffix == ".toml":
            import tomllib

            data = tomllib.loads(p.read_text(encoding="utf-8"))
        else:
            data = json.loads(p.read_text(encoding="utf-8"))
    except Exception as e:  # noqa: BLE001 - any parse error becomes one line naming the file
        raise ValueError(f"{p}: cannot parse similarity file ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or ("valence_arousal" in data) == ("matrix" in data):
        raise ValueError(f"{p}: needs exactly one of the keys 'valence_arousal' or 'matrix'")
    if "valence_arousal" in data:
        va_raw = data["valence_arousal"]
        if not isinstance(va_raw, dict):
            raise ValueError(f"{p}: key 'valence_arousal' must map labels to [valence, arousal]")
        va = {}
        for lab, xy in va_raw.items():
            _check_label(p, "valence_arousal", lab)
            if not (isinstance(xy, list | tuple) and len(xy) == 2 and all(isinstance(v, int | float) for v in xy)):
                raise ValueError(f"{p}: key 'valence_arousal.{lab}' must be [valence, arousal], got {xy!r}")
            va[lab] = (float(xy[0]), float(xy[1]))
        if missing := [lab for lab in LABELS if lab not in va]:
            raise ValueError(f"{p}: key 'valence_arousal' lacks {missing}")
        radius = data.get("radius", DEFAULT_RADIUS)
        if not isinstance(radius, int | float) or radius <= 0:
            raise ValueError(f"{p}: key 'radius' must be a number > 0, got {radius!r}")
        return SimilarityMatrix(compute_va_similarity(va, float(radius)), str(p))
    raw = data["matrix"]
    if not isinstance(raw, dict):
        raise ValueError(f"{p}: key 'matrix' must map labels to rows")
    table: dict[str, dict[str, float]] = {}
    for pred in LABELS:
        row = raw.get(pred)
        if not isinstance(row, dict):
            raise ValueError(f"{p}: key 'matrix.{pred}' is missing or not a mapping")
        for lab in row:
            _check_label(p, f"matrix.{pred}", lab)
        table[pred] = {}
        for gold in LABELS:
            v = row.get(gold)
            if not isinstance(v, int | float) or not 0.0 <= v <= 1.0:
                raise ValueError(f"{p}: key 'matrix.{pred}.{gold}' must be a number in [0, 1], got {v!r}")
            table[pred][gold] = float(v)
        if table[pred][pred] != 1.0:
            raise ValueError(f"{p}: key 'matrix.{pred}.{pred}' must be 1 (a label is fully similar to itself)")
    return SimilarityMatrix(table, str(p))


class SimilarityReward:
    """Outcome reward ``sim(parsed answer, gold)`` in TRL's signature (picklable; unparsed answer -> 0.0).

    Example:
        >>> r = SimilarityReward()
        >>> r(None, ["<answer>contempt or disgust</answer>", "<answer>happy</answer>", "x"], emotion=["angry"] * 3)
        [0.5, 0.0, 0.0]
    """

    def __init__(self, similarity: SimilarityMatrix | str | None = None):
        self.similarity = similarity if isinstance(similarity, SimilarityMatrix) else load_similarity(similarity)
        self.__name__ = "similarity_reward"

    def __call__(self, prompts: list, completions: list, emotion: list[str], **kwargs: Any) -> list[float | None]:
        out: list[float | None] = []
        for i, (c, gold) in enumerate(zip(completions, emotion, strict=True)):
            g = normalize_label(gold)
            if g is None:
                raise ValueError(f"similarity_reward: emotion {gold!r} at index {i} is not one of the nine labels")
            out.append(self.similarity(parse_answer(completion_text(c)), g))
        return out
