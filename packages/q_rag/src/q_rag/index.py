"""Retrieval at scale: chunk embeddings computed once (batched, cached on disk) and exact candidate scoring.

Scores are ``Q(s, a_j) = <s, R(p_j) e_j>`` with ``e_j`` the cached unrotated chunk embedding. Since RoPE is a
rotation, ``<s, R(p) e> = <R(-p) s, e>``: every chunk sharing a position is scored with one rotated query
against the unrotated vectors. Relative positions are constant on contiguous runs of chunks and take at most
``19 (k+1)`` values after ``k`` steps, so the exact search is one range-restricted inner-product search per run
(faiss ``IDSelectorRange``, or a numpy matmul per slice), the same total work as one brute-force pass and
**no approximation**. Absolute positions never change, so their rotated vectors are indexed directly.

Memory: embeddings live in a ``.npy`` file opened as a memmap (``(N, d)`` float32; 10M tokens ~ 400k sentences
= 61 MB at d=384/4); the numpy backend streams it in blocks; the faiss backend holds one float32 copy and refuses
documents over ``max_index_gb``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .positions import get_position_processor, position_runs
from .rope import compute_rope

__all__ = ["encode_chunks", "ChunkIndex", "brute_force_scores", "model_fingerprint"]


def model_fingerprint(qf) -> str:
    """sha256 over the action encoder's weights and the Q-function settings (the embedding-cache key part)."""
    h = hashlib.sha256(repr(sorted(qf.settings().items())).encode())
    for name, t in qf.action_encoder.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _chunks_key(chunks: Sequence[str]) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def encode_chunks(qf, chunks: Sequence[str], cache_dir: str | Path | None = None, batch_size: int = 256,
                  show_progress: bool = False, max_chunks: int = 2_000_000) -> np.ndarray:
    """Unrotated action embeddings ``(N, d)`` float32 of ``chunks``, computed once in batches.

    With ``cache_dir`` the result is a read-only memmap of ``<cache_dir>/<model>-<chunks>.npy`` (written
    atomically on first use, reused afterwards); memory while encoding is one batch.

    Raises:
        ValueError: no chunks, or more than ``max_chunks`` (a document larger than the configured limit).
    """
    n = len(chunks)
    if n == 0:
        raise ValueError("cannot index a document with no chunks")
    if n > max_chunks:
        raise ValueError(f"document has {n} chunks, more than max_chunks={max_chunks}; raise the limit or split it")
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{model_fingerprint(qf)}-{_chunks_key(chunks)}.npy"
        if path.is_file():
            return np.load(path, mmap_mode="r")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, qf.dim))
    else:
        out = np.empty((n, qf.dim), dtype=np.float32)
    bar = None
    if show_progress:
        from rlcore.cli import progress

        bar = progress()
        bar.start()
        task = bar.add_task("encoding chunks", total=n)
    try:
        with torch.no_grad():
            for i in range(0, n, batch_size):
                batch = list(chunks[i : i + batch_size])
                out[i : i + len(batch)] = qf.embed_actions(batch, batch_size=batch_size).float().cpu().numpy()
                if bar is not None:
                    bar.advance(task, len(batch))
    finally:
        if bar is not None:
            bar.stop()
    if path is not None:
        out.flush()
        del out
        os.replace(tmp, path)
        return np.load(path, mmap_mode="r")
    return out


def _rotate_np(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    x = np.array(x, dtype=np.float32)  # a writable copy of one block (memmaps are read-only)
    return compute_rope(torch.from_numpy(x), torch.from_numpy(np.asarray(positions)), theta).numpy()


def brute_force_scores(embeddings: np.ndarray, state: np.ndarray, positions: np.ndarray | None,
                       available: np.ndarray, theta: float = 10000.0) -> np.ndarray:
    """Reference scorer: rotate every chunk at its position, dot with the state; ``-inf`` where unavailable."""
    emb = np.asarray(embeddings, dtype=np.float32)
    rot = emb if positions is None else _rotate_np(emb, positions, theta)
    scores = rot @ state.astype(np.float32)  # (N,)
    return np.where(available, scores, -np.inf).astype(np.float32)


class ChunkIndex:
    """Exact top-k search of ``<s, RoPE(e_j, p_j)>`` over one document's cached chunk embeddings.

    Args:
        embeddings: ``(N, d)`` unrotated chunk embeddings (array or memmap from :func:`encode_chunks`).
        position: position processor name (``relative``, ``absolute``, ``none``).
        rope_theta: RoPE base.
        backend: ``faiss`` (in-RAM ``IndexFlatIP``), ``numpy`` (streams blocks from the memmap) or ``auto``
            (faiss from ``faiss_min_chunks`` chunks on).
        max_index_gb: largest faiss index allowed in RAM.
        block: rows per numpy block.
    """

    def __init__(self, embeddings: np.ndarray, position: str = "relative", rope_theta: float = 10000.0,
                 backend: str = "auto", faiss_min_chunks: int = 20_000, max_index_gb: float = 8.0,
                 block: int = 65_536):
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"embeddings must be a non-empty (N, d) array, got shape {embeddings.shape}")
        if backend not in ("auto", "faiss", "numpy"):
            raise ValueError(f"backend must be auto, faiss or numpy, got {backend!r}")
        self.position_fn = get_position_processor(position)
        self.position, self.theta, self.block = position, rope_theta, block
        self.n, self.dim = embeddings.shape
        self.emb = embeddings
        if position == "absolute":  # fixed positions: index the rotated vectors once
            rot = np.empty(embeddings.shape, dtype=np.float32)
            for i in range(0, self.n, block):
                rot[i : i + block] = _rotate_np(embeddings[i : i + block], np.arange(i, min(i + block, self.n)),
                                                rope_theta)
            self.emb = rot
        self.backend = ("faiss" if self.n >= faiss_min_chunks else "numpy") if backend == "auto" else backend
        self.faiss_index = None
        if self.backend == "faiss":
            need = self.n * self.dim * 4 / 2**30
            if need > max_index_gb:
                raise ValueError(
                    f"document of {self.n} chunks needs {need:.2f} GiB for the faiss index, over max_index_gb="
                    f"{max_index_gb}; use backend='numpy' (streams from the on-disk cache) or raise the limit")
            import faiss

            self.faiss_index = faiss.IndexFlatIP(self.dim)
            for i in range(0, self.n, block):
                self.faiss_index.add(np.ascontiguousarray(self.emb[i : i + block], dtype=np.float32))

    def _runs(self, retrieved: Sequence[int]) -> list[tuple[int, int, int | None]]:
        available = np.ones(self.n, dtype=bool)
        available[list(retrieved)] = False
        if self.position != "relative":
            return [(s, e, None) for s, e, _ in position_runs(np.zeros(self.n, np.int64), available)]
        return position_runs(self.position_fn(self.n, retrieved), available)

    def _queries(self, state: np.ndarray, runs) -> dict:
        pos = sorted({p for _, _, p in runs if p is not None})
        if not pos:
            return {None: state.astype(np.float32)}
        s = torch.from_numpy(np.ascontiguousarray(state, dtype=np.float32)).expand(len(pos), -1)
        rot = compute_rope(s, -torch.tensor(pos), self.theta).numpy()  # (P, d): R(-p) s
        return dict(zip(pos, rot, strict=True))

    def search(self, state: np.ndarray, retrieved: Sequence[int] = (), k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` available chunks for ``state (d,)``: ``(scores (k,), ids (k,))``, best first (exact)."""
        retrieved = [int(r) for r in retrieved]
        if len(set(retrieved)) >= self.n:
            raise ValueError("no chunk left to retrieve")
        if retrieved and (min(retrieved) < 0 or max(retrieved) >= self.n):
            raise ValueError(f"retrieved index out of range [0, {self.n})")
        state = np.asarray(state, dtype=np.float32).reshape(-1)
        if state.shape[0] != self.dim:
            raise ValueError(f"state has dim {state.shape[0]}, index has dim {self.dim}")
        runs = self._runs(retrieved)
        queries = self._queries(state, runs)
        cand_s, cand_i = [], []
        if self.faiss_index is not None:
            import faiss

            for s, e, p in runs:
                kk = min(k, e - s)
                params = faiss.SearchParameters(sel=faiss.IDSelectorRange(s, e, True))
                dist, ids_ = self.faiss_index.search(queries[p][None], kk, params=params)
                cand_s.append(dist[0]), cand_i.append(ids_[0])
        else:
            for s, e, p in runs:
                for b in range(s, e, self.block):
                    rows = np.asarray(self.emb[b : min(e, b + self.block)], dtype=np.float32)
                    sc = rows @ queries[p]
                    kk = min(k, len(sc))
                    top = np.argpartition(-sc, kk - 1)[:kk]
                    cand_s.append(sc[top]), cand_i.append(top + b)
        scores, ids = np.concatenate(cand_s), np.concatenate(cand_i).astype(np.int64)
        order = np.lexsort((ids, -scores))[:k]
        return scores[order], ids[order]
