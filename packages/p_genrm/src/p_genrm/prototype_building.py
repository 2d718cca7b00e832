"""Offline prototype building over training users: chains -> PART-1 embeddings -> K-means -> refinement -> index.

Every (user, train/val row) is scored once with a leave-one-out history of ``history_size`` pairs from the same
user's train+val rows (spec); the chain's PART 1 is embedded. Rows whose chain never parsed (after the scorer's
retries) are left out and counted. The refinement embeds the rows' queries, chosen/rejected responses and history
events with the same encoder.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .data import UserData, make_request, sample_history
from .prototypes import Member, PrototypeIndex, RefinementBatch, compute_kmeans_prototypes, refine_prototypes

__all__ = ["build_prototype_index", "embed_refinement_data"]


def embed_refinement_data(embedder: Any, queries: list[str], chosen: list[str], rejected: list[str],
                          histories: list[tuple]) -> RefinementBatch:
    """Embed members' preference data into padded tensors: q, r+, r- (N, d); history (N, H, d) with mask (N, H)."""
    import torch

    n = len(queries)
    H = max([len(h) for h in histories] + [1])
    flat = [e for h in histories for e in h]
    base = embedder(list(queries) + list(chosen) + list(rejected))
    d = base.shape[1]
    q, rp, rn = (torch.tensor(base[i * n:(i + 1) * n]) for i in range(3))
    hh, hp, hn = (torch.zeros(n, H, d) for _ in range(3))
    mask = torch.zeros(n, H, dtype=torch.bool)
    if flat:
        he = embedder([e.user for e in flat] + [e.chosen for e in flat] + [e.rejected for e in flat])
        m = len(flat)
        k = 0
        for i, h in enumerate(histories):
            for j in range(len(h)):
                hh[i, j], hp[i, j], hn[i, j] = (torch.tensor(he[k + t * m]) for t in range(3))
                mask[i, j] = True
                k += 1
    return RefinementBatch(q, rp, rn, hh, hp, hn, mask)


def _member_chains(scorer: Any, rows: list, reqs: list, chains_path: str | Path | None, batch_size: int,
                   progress: Callable[[int, int], None] | None) -> list:
    if chains_path is None:
        out = scorer.sample_chains(reqs, 1)
        if progress is not None:
            progress(len(reqs), len(reqs))
        return out
    from rlcore.io import ResumableJsonlWriter, iter_jsonl

    keys = [f"{r.user_id}:{r.row_id}" for r, _ in rows]
    chains: list = [None] * len(reqs)
    with ResumableJsonlWriter(chains_path) as w:
        if w.done:
            pos = {k: i for i, k in enumerate(keys)}
            for rec in iter_jsonl(chains_path):
                i = pos.get(rec["id"])
                if i is not None:
                    chains[i] = [scorer.parse(rec["text"], tuple(rec["order"]))]
        todo = [i for i, c in enumerate(chains) if c is None]
        for s in range(0, len(todo), batch_size):
            chunk = todo[s:s + batch_size]
            for i, (c,) in zip(chunk, scorer.sample_chains([reqs[i] for i in chunk], 1)):
                chains[i] = [c]
                w.write({"id": keys[i], "text": c.text, "order": list(c.order), "error": c.error})
            if progress is not None:
                progress(len(reqs) - len(todo) + s + len(chunk), len(reqs))
    return chains


def build_prototype_index(scorer: Any, users: dict[str, UserData], embedder: Any, num_prototypes: int = 100,
                          history_size: int = 3, seed: int = 42, refine: bool = True,
                          refine_kw: dict[str, Any] | None = None, kmeans_kw: dict[str, Any] | None = None,
                          chains_path: str | Path | None = None, batch_size: int = 64,
                          progress: Callable[[int, int], None] | None = None) -> tuple[PrototypeIndex, dict[str, Any]]:
    """Build the prototype index from training users' train+val rows; returns it with build metrics.

    ``chains_path``: stream each member chain (``id`` = ``user:row``, raw text, display order) to this JSONL as
    its batch finishes; a rerun re-parses the chains already there and samples only the missing ones.
    ``progress(done, total)`` is called after each batch.

    Raises:
        ValueError: no training rows, or no chain parsed at all (nothing to cluster).
    """
    rng = random.Random(seed)
    rows, reqs = [], []
    for u in users.values():
        pool = u.train + u.val
        for r in pool:
            hist = sample_history(pool, history_size, seed, exclude=r.row_id, key=f"{u.user_id}:{r.row_id}")
            rows.append((r, hist))
            reqs.append(make_request(r, hist, chosen_first=rng.random() < 0.5, stated_criteria=u.stated_criteria))
    if not reqs:
        raise ValueError("build_prototype_index: the users have no train/val rows")
    chains = _member_chains(scorer, rows, reqs, chains_path, batch_size, progress)
    keep = [(row, hist, c[0].parsed.analysis) for (row, hist), c in zip(rows, chains) if c[0].parsed is not None]
    if not keep:
        raise ValueError(f"build_prototype_index: none of the {len(reqs)} chains parsed; check the model/format")
    if num_prototypes > len(keep):
        raise ValueError(f"num_prototypes={num_prototypes} exceeds the {len(keep)} parsed members")
    E = embedder([a for _, _, a in keep])
    A0, assign = compute_kmeans_prototypes(E, num_prototypes, seed=seed, **(kmeans_kw or {}))
    A, metrics = A0, {}
    if refine:
        data = embed_refinement_data(embedder, [r.query for r, _, _ in keep], [r.chosen for r, _, _ in keep],
                                     [r.rejected for r, _, _ in keep], [h for _, h, _ in keep])
        A, metrics = refine_prototypes(A0, assign, data, seed=seed, **(refine_kw or {}))
    members = [Member(r.user_id, r.row_id, h, a) for r, h, a in keep]
    index = PrototypeIndex(A, E, members, initial_prototypes=A0,
                           meta={"history_size": history_size, "seed": seed, "refined": refine})
    sizes = np.bincount(index.assign, minlength=num_prototypes)
    metrics.update({"members": len(keep), "dropped_unparsed": len(reqs) - len(keep),
                    "empty_prototypes": int((sizes == 0).sum()), "reassigned": int((index.assign != assign).sum())})
    index.meta["build"] = metrics
    return index, metrics
