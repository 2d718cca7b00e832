"""``q-rag eval``: support-fact recall/EM and (optionally) reader accuracy by context length, with a PNG plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import Sample
from .retriever import qvalue_stop, retrieve, support_fact_metrics

__all__ = ["evaluate_by_length", "plot_accuracy_vs_length", "doc_tokens"]


def doc_tokens(samples: Sequence[Sample]) -> int:
    """Median document length in (approximate) tokens."""
    from .data import approx_tokens

    return int(np.median([sum(approx_tokens(c) for c in s.chunks) for s in samples]))


def evaluate_by_length(qf, datasets: dict[str, Sequence[Sample]], max_steps: int, sort_by_index: bool = True,
                       cache_dir=None, backend: str = "auto", generator=None, max_new_tokens: int = 32,
                       qvalue_threshold: float | None = None) -> dict[str, dict]:
    """Metrics per dataset (one per context length): sf_recall, sf_em, return, tokens, and reader accuracy."""
    from .reader import answer_correct, answer_questions

    results = {}
    for name, samples in datasets.items():
        rows, kept = [], []
        for s in samples:
            res = retrieve(qf, s, max_steps, sort_by_index, cache_dir=cache_dir, backend=backend)
            rows.append(support_fact_metrics(res.ids, s.sf_idx))
            kept.append(qvalue_stop(res.ids, res.qvalues, qvalue_threshold))
        m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        m["tokens"], m["n"] = doc_tokens(samples), len(samples)
        if generator is not None:
            answers = answer_questions(generator, samples, kept, max_new_tokens)
            m["accuracy"] = float(np.mean([answer_correct(a, s.answer) for a, s in zip(answers, samples, strict=True)]))
        results[name] = m
    return results


def plot_accuracy_vs_length(results: dict[str, dict], path: str | Path) -> None:
    """Save a PNG of sf_recall / sf_em (and reader accuracy) against document length (log x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(results.values(), key=lambda m: m["tokens"])
    x = [m["tokens"] for m in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("sf_recall", "sf_em", "accuracy"):
        if all(key in m for m in rows):
            ax.plot(x, [m[key] for m in rows], marker="o", label=key)
    ax.set_xscale("log")
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1.05)
    ax.set_title("Q-RAG accuracy vs context length")
    ax.legend()
    fig.tight_layout()
    fig.savefig(str(path), dpi=100)
    plt.close(fig)
