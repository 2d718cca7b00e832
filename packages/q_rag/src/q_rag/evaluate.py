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
                       encode_kw: dict | None = None, records_path: str | Path | None = None,
                       reader_batch: int = 16, show_progress: bool = False) -> dict[str, dict]:
    """Metrics per dataset (one per context length): sf_recall, sf_em, return, tokens.

    With a reader ``generator`` also the official BabiLong ``answer_em`` / ``answer_f1`` (task from ``reader_task``
    or the file name). With ``records_path`` every question's record (retrieved ids, Q-values, kept ids, reader
    prediction, metrics) is appended to a JSONL as soon as it is done (``rlcore.io.ResumableJsonlWriter``, key
    ``"<dataset>::<id>"``); a rerun skips the questions already there and computes the means over all records.
    """
    import json

    from rlcore.io import ResumableJsonlWriter

    from .index import ChunkIndex, encode_chunks
    from .reader import answer_questions, babilong_em, babilong_f1, task_from_name

    writer = ResumableJsonlWriter(records_path, key="key").open() if records_path else None
    old: dict[str, dict] = {}
    if writer is not None and writer.done:
        for line in Path(records_path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                old[rec["key"]] = rec
    bar = None
    if show_progress:
        from rlcore.cli import progress

        bar = progress()
        bar.start()
        task_id = bar.add_task("evaluating", total=sum(len(v) for v in datasets.values()))
    else:
        task_id = None
    def flush(pending: list, recs: list, task: str) -> None:
        if generator is not None and pending:
            answers = answer_questions(generator, [p[0] for p in pending], [p[1]["kept"] for p in pending], task,
                                       max_new_tokens)
            for (smp, rec), ans in zip(pending, answers, strict=True):
                rec.update(prediction=ans, answer_em=babilong_em(ans, smp.answer),
                           answer_f1=babilong_f1(ans, smp.answer, task))
        for _, rec in pending:
            if writer is not None:
                writer.write(rec)
            recs.append(rec)
            if bar is not None:
                bar.advance(task_id)
        pending.clear()

    results = {}
    try:
        for name, samples in datasets.items():
            task = task_from_name(name) if reader_task == "auto" else reader_task
            recs: list[dict] = []
            pending: list[tuple[Sample, dict]] = []

            for s in samples:
                key = f"{name}::{s.id}"
                if key in old and (generator is None or "prediction" in old[key]):
                    recs.append(old[key])
                    if bar is not None:
                        bar.advance(task_id)
                    continue
                emb = encode_chunks(qf, s.chunks, cache_dir=cache_dir, **(encode_kw or {}))
                index = ChunkIndex(emb, qf.position, qf.rope_theta, backend, step_size=qf.step_size)
                res = retrieve(qf, s, max_steps, sort_by_index, index=index)
                rec = {"key": key, "id": s.id, "retrieved": res.ids, "qvalues": res.qvalues,
                       "kept": qvalue_stop(res.ids, res.qvalues, qvalue_threshold),
                       **support_fact_metrics(res.ids, s.sf_idx)}
                pending.append((s, rec))
                if len(pending) >= reader_batch:
                    flush(pending, recs, task)
            flush(pending, recs, task)
            keys = ["sf_recall", "sf_em", "sf_precision", "return"]
            if generator is not None:
                keys += ["answer_em", "answer_f1"]
            m = {k: float(np.mean([r[k] for r in recs])) for k in keys}
            m["tokens"], m["n"] = doc_tokens(samples), len(samples)
            if generator is not None:
                m["reader_task"] = task
            results[name] = m
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.stop()
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
