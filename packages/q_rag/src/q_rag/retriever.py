"""Multi-step retrieval with a trained Q-function (greedy), and support-fact metrics (spec: "Evaluation").

Per document: chunk embeddings once (:func:`encode_chunks`), then ``max_steps`` state encodings, each followed by
an exact top-1 search (:class:`ChunkIndex`). The per-step max-Q is kept for Q-value early stopping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from .data import Sample
from .index import ChunkIndex, encode_chunks
from .reward import compute_terminal_reward

__all__ = ["RetrievalResult", "state_chunks", "retrieve", "support_fact_metrics", "qvalue_stop"]


@dataclasses.dataclass
class RetrievalResult:
    """Retrieved chunk ids in retrieval order and the Q-value (max over candidates) at each step."""

    ids: list[int]
    qvalues: list[float]


def state_chunks(chunks: Sequence[str], retrieved: Sequence[int], sort_by_index: bool) -> list[str]:
    """The retrieved chunk texts as they appear in the state (document order if ``sort_by_index``)."""
    order = sorted(retrieved) if sort_by_index else list(retrieved)
    return [chunks[i] for i in order]


def retrieve(qf, sample: Sample, max_steps: int, sort_by_index: bool | None = None, index: ChunkIndex | None = None,
             cache_dir=None, backend: str = "auto", stop_on: Sequence[int] | None = None) -> RetrievalResult:
    """Greedy multi-step retrieval (``argmax_j Q(s_t, a_j)``) over ``sample.chunks``.

    Args:
        qf: a :class:`~q_rag.q_function.QFunction`.
        sample: the document and question.
        max_steps: retrieval steps (capped at the number of chunks).
        sort_by_index: render retrieved chunks in document order in the state (BabiLong) or retrieval order;
            None = the Q-function's saved setting.
        index: a prebuilt :class:`ChunkIndex` (else built here from :func:`encode_chunks`).
        cache_dir: embedding cache directory.
        backend: search backend when building the index.
        stop_on: stop as soon as these chunk ids are all retrieved (test env ``never_terminate=False``).
    """
    if sort_by_index is None:
        sort_by_index = qf.sort_by_index
    if index is None:
        emb = encode_chunks(qf, sample.chunks, cache_dir=cache_dir)
        index = ChunkIndex(emb, position=qf.position, rope_theta=qf.rope_theta, backend=backend,
                           step_size=qf.step_size)
    ids: list[int] = []
    qvals: list[float] = []
    with torch.no_grad():
        for _ in range(min(max_steps, len(sample.chunks))):
            s = qf.embed_states([sample.question], [state_chunks(sample.chunks, ids, sort_by_index)])[0]
            scores, top = index.search(s.float().cpu().numpy(), ids, k=1)
            ids.append(int(top[0]))
            qvals.append(float(scores[0]))
            if stop_on is not None and set(stop_on).issubset(ids):
                break
    return RetrievalResult(ids, qvals)


def support_fact_metrics(retrieved: Sequence[int], sf_idx: Sequence[int]) -> dict[str, float]:
    """Support-fact recall, exact match (all found), precision and the episode return (first-success bonus)."""
    sf = set(sf_idx)
    if not sf:
        return {"sf_recall": 1.0, "sf_em": 1.0, "sf_precision": 0.0, "return": 0.0}
    found = len(sf & set(retrieved))
    ret, done = 0.0, False
    for t in range(1, len(retrieved) + 1):
        r = compute_terminal_reward(retrieved[:t], sf, already_rewarded=done)
        done = done or r > 0
        ret += r
    return {"sf_recall": found / len(sf), "sf_em": float(found == len(sf)),
            "sf_precision": found / max(1, len(retrieved)), "return": ret}


def qvalue_stop(ids: Sequence[int], qvalues: Sequence[float], threshold: float | None) -> list[int]:
    """Q-value early stopping: keep chunks up to (not including) the first step whose Q <= ``threshold``."""
    if threshold is None:
        return list(ids)
    for t, q in enumerate(qvalues):
        if q <= threshold:
            return list(ids[:t])
    return list(ids)


def evaluate_retrieval(qf, samples: Sequence[Sample], max_steps: int, sort_by_index: bool | None = None,
                       stop_on_success: bool = False) -> dict[str, float]:
    """Mean support-fact metrics of greedy retrieval over ``samples``."""
    rows = []
    for s in samples:
        res = retrieve(qf, s, max_steps, sort_by_index, backend="numpy", stop_on=s.sf_idx if stop_on_success else None)
        rows.append(support_fact_metrics(res.ids, s.sf_idx))
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


__all__ += ["evaluate_retrieval"]
