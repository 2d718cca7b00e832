"""``q-rag eval``: support-fact recall/EM and (optionally) reader EM/F1 by context length, with a PNG plot."""

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


def evaluate_by_length(qf, datasets: dict[str, Sequence[Sample]], max_steps: int, sort_by_index: bool | None = None,
                       cache_dir=None, backend: str = "auto", generator=None, max_new_tokens: int = 32,
                       qvalue_threshold: float | None = None, reader_task: str = "auto",
                       encode_kw: dict | None = None) -> dict[str, dict]:
    """Metrics per dataset (one per context length): sf_recall, sf_em, return, tokens.

    With a reader ``generator`` also the official BabiLong ``answer_em`` / ``answer_f1`` (task from ``reader_task``
    or the file name).
    """
    from .index import ChunkIndex, encode_chunks
    from .reader import answer_questions, babilong_em, babilong_f1, task_from_name

    results = {}
    for name, samples in datasets.items():
        rows, kept = [], []
        for s in samples:
            emb = encode_chunks(qf, s.chunks, cache_dir=cache_dir, **(encode_kw or {}))
            index = ChunkIndex(emb, qf.position, qf.rope_theta, backend, step_size=qf.step_size)
            res = retrieve(qf, s, max_steps, sort_by_index, index=index)
            rows.append(support_fact_metrics(res.ids, s.sf_idx))
            kept.append(qvalue_stop(res.ids, res.qvalues, qvalue_threshold))
        m = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        m["tokens"], m["n"] = doc_tokens(samples), len(samples)
        if generator is not None:
            task = task_from_name(name) if reader_task == "auto" else reader_task
            answers = answer_questions(generator, samples, kept, task, max_new_tokens)
            m["reader_task"] = task
            m["answer_em"] = float(np.mean([babilong_em(a, s.answer) for a, s in zip(answers, samples, strict=True)]))
            m["answer_f1"] = float(np.mean([babilong_f1(a, s.answer, task)
                                            for a, s in zip(answers, samples, strict=True)]))
        results[name] = m
    return results


def plot_accuracy_vs_length(results: dict[str, dict], path: str | Path) -> None:
    """Save a PNG of sf_recall / sf_em (and reader EM/F1) against document length (log x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(results.values(), key=lambda m: m["tokens"])
    x = [m["tokens"] for m in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("sf_recall", "sf_em", "answer_em", "answer_f1"):
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
