"""Emotion evaluation: accuracy, per-class recall, UA (their mean), soft-label agreement, confusion matrix.

UA (unweighted accuracy, also called UAR) is the mean recall over the classes present in the ground truth, the
usual SER metric on imbalanced corpora. Soft-label agreement is the mean similarity ``sim(pred, gold)`` under the
valence-arousal similarity matrix (:mod:`emotionthinker.similarity`; an unparsed prediction counts 0): partial
credit for near misses, the quantity the similarity-weighted outcome reward optimises.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .policy import LABELS

__all__ = ["UNPARSED", "compute_confusion", "compute_emotion_metrics", "plot_confusion"]

UNPARSED = "(unparsed)"


def compute_confusion(truth: Sequence[str], pred: Sequence[str | None]) -> np.ndarray:
    """``(9, 10)`` counts: rows true label (LABELS order), columns predicted label + a final "unparsed" column."""
    cols = {lab: j for j, lab in enumerate(LABELS)}
    cm = np.zeros((len(LABELS), len(LABELS) + 1), dtype=np.int64)
    for t, p in zip(truth, pred, strict=True):
        cm[cols[t], cols.get(p, len(LABELS)) if p is not None else len(LABELS)] += 1
    return cm


def compute_emotion_metrics(truth: Sequence[str], pred: Sequence[str | None], similarity=None) -> dict[str, Any]:
    """Accuracy, per-class recall (classes present in ``truth``), UA (their mean), soft agreement, confusion.

    Args:
        truth: gold labels (of :data:`LABELS`).
        pred: parsed predictions (``None`` = unparsed).
        similarity: a :class:`~emotionthinker.similarity.SimilarityMatrix` (default: the valence-arousal one).

    Example:
        >>> m = compute_emotion_metrics(["sad", "sad", "happy"], ["sad", None, "sad"])
        >>> round(m["accuracy"], 4), m["recall"], m["ua"], m["soft_agreement"]  # (1 + 0 + 0) / 3
        (0.3333, {'happy': 0.0, 'sad': 0.5}, 0.25, 0.333333)
    """
    from .similarity import load_similarity

    sim = similarity if similarity is not None else load_similarity()
    if not truth:
        raise ValueError("no records to evaluate")
    cm = compute_confusion(truth, pred)
    support = cm.sum(1)
    recall = {LABELS[i]: float(cm[i, i] / support[i]) for i in range(len(LABELS)) if support[i]}
    return {
        "n": len(truth),
        "accuracy": float(np.trace(cm[:, : len(LABELS)]) / len(truth)),
        "recall": dict(sorted(recall.items())),
        "ua": float(np.mean(list(recall.values()))),
        "soft_agreement": round(float(np.mean([sim(p, t) for t, p in zip(truth, pred, strict=True)])), 6),
        "similarity": sim.source,
        "unparsed": float(cm[:, -1].sum() / len(truth)),
        "confusion": cm.tolist(),
        "labels": list(LABELS),
    }


def plot_confusion(cm: np.ndarray | list, path: str | Path, title: str = "EmotionThinker confusion matrix") -> str:
    """Save a row-normalised confusion-matrix heat map (counts annotated) as PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 6.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(cm.shape[1]), list(LABELS) + [UNPARSED], rotation=45, ha="right")
    ax.set_yticks(range(cm.shape[0]), LABELS)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=100)
    plt.close(fig)
    return str(path)
