"""Retrieval at scale: chunk embeddings computed once (batched, parallel, in a bounded on-disk cache) and exact search.

Scores are ``Q(s, a_j) = <s, R(p_j) e_j>`` with ``e_j`` the cached unrotated chunk embedding. Since RoPE is a
rotation, ``<s, R(p) e> = <R(-p) s, e>``: every chunk sharing a position is scored with one rotated query
against the unrotated vectors. Relative positions are constant on contiguous runs of chunks and take at most
``19 (k+1)`` values after ``k`` steps, so a search is one range-restricted inner product per run: the same total
work as one brute-force pass. Absolute positions never change, so their rotated vectors are indexed directly.

Backends (:class:`ChunkIndex`):

- ``fp16`` (default for large documents): a float16 copy of the vectors in RAM is scanned (``torch`` half
  matrix-vector products accumulate in float32 on CPU, checked at start-up), then every chunk whose approximate
  score is within ``2 B`` of the k-th best approximate score is re-scored exactly in float32 from the cache
  (rotated at its position, as the brute force does). ``B`` is a rigorous bound on the float16 rounding error
  (storage, query and output rounding, float32 accumulation): the returned top-k equals the exact float32 top-k.
- ``numpy``: float32 blocks streamed from the memmap (the previous path; the bench baseline).
- ``faiss``: an in-RAM ``IndexFlatIP`` with ``IDSelectorRange`` per run.

Cache: float32 ``.npy`` memmaps ``<cache_dir>/<model>-<chunks>.npy`` (keyed by the action encoder's weights and
settings and by the chunk texts), written atomically; with ``cache_max_gb`` the directory is kept under the cap
by evicting least-recently-used entries (each use refreshes an entry's mtime).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .positions import get_position_processor, position_runs
from .rope import compute_rope

__all__ = ["encode_chunks", "ChunkIndex", "brute_force_scores", "model_fingerprint", "evict_cache", "SEARCH_BACKENDS"]

SEARCH_BACKENDS = ("auto", "fp16", "numpy", "faiss")
CACHE_SUFFIX = ".npy"


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


def evict_cache(cache_dir: str | Path, max_bytes: int, keep: Sequence[Path] = ()) -> list[Path]:
    """Delete least-recently-used cache entries (oldest mtime first) until the ``.npy`` files fit ``max_bytes``.

    Entries in ``keep`` (e.g. the one just written or in use) are never deleted, so the directory may stay over
    the cap when ``keep`` alone exceeds it. Unfinished temp files of other processes are left alone.

    Returns:
        The deleted paths, oldest first.
    """
    keep_set = {Path(k).resolve() for k in keep}
    entries = []
    for f in Path(cache_dir).glob(f"*{CACHE_SUFFIX}"):
        if ".tmp" in f.name:
            continue
        try:
            st = f.stat()
        except FileNotFoundError:  # evicted concurrently
            continue
        entries.append((st.st_mtime, f.name, f, st.st_size))
    total = sum(e[3] for e in entries)
    removed = []
    for _, _, f, size in sorted(entries):
        if total <= max_bytes:
            break
        if f.resolve() in keep_set:
            continue
        try:
            f.unlink()
        except FileNotFoundError:
            pass
        total -= size
        removed.append(f)
    return removed


def _touch(path: Path) -> None:
    now = time.time()
    try:
        os.utime(path, (now, now))
    except OSError:  # read-only cache: LRU order just is not refreshed
        pass


def _encode_into(qf, chunks: Sequence[str], out: np.ndarray, batch_size: int, workers: int, bar, task) -> None:
    """Fill ``out (N, d)`` with ``E_a(chunks)``: length-sorted batches (little padding), ``workers`` threads."""
    n = len(chunks)
    limit = min(qf.max_action_tokens, qf.max_len)
    group = batch_size * max(8, 2 * workers)  # tokenize a group, sort it by length, cut it into batches

    def run(rows: list[list[int]], idx: np.ndarray) -> None:
        with torch.inference_mode():
            out[idx] = qf._pool(qf.action_encoder, rows).float().cpu().numpy()

    prev_threads = torch.get_num_threads()
    if workers > 1:
        torch.set_num_threads(max(1, prev_threads // workers))
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for g0 in range(0, n, group):
                ids = qf.tokenizer(list(chunks[g0 : g0 + group]), truncation=True, max_length=limit)["input_ids"]
                order = np.argsort([len(r) for r in ids], kind="stable")
                jobs = []
                for b0 in range(0, len(order), batch_size):
                    sel = order[b0 : b0 + batch_size]
                    jobs.append((pool.submit(run, [ids[i] for i in sel], sel + g0), len(sel)))
                for fut, size in jobs:
                    fut.result()
                    if bar is not None:
                        bar.advance(task, size)
    finally:
        torch.set_num_threads(prev_threads)


def encode_chunks(qf, chunks: Sequence[str], cache_dir: str | Path | None = None, batch_size: int = 256,
                  show_progress: bool = False, max_chunks: int = 2_000_000, workers: int = 1,
                  cache_max_gb: float | None = None) -> np.ndarray:
    """Unrotated action embeddings ``(N, d)`` float32 of ``chunks``, computed once.

    Chunks are tokenized in groups, sorted by length and encoded in batches of ``batch_size`` (so a batch holds
    sentences of similar length: little padding), by ``workers`` threads sharing the torch thread budget.
    With ``cache_dir`` the result is a read-only memmap of ``<cache_dir>/<model>-<chunks>.npy`` (written
    atomically on first use, reused afterwards; every use refreshes its LRU time); with ``cache_max_gb`` the
    least-recently-used other entries are evicted after a write so that the directory stays under the cap.

    Raises:
        ValueError: no chunks, more than ``max_chunks``, or a bad ``batch_size``/``workers``/``cache_max_gb``.
    """
    n = len(chunks)
    if n == 0:
        raise ValueError("cannot index a document with no chunks")
    if n > max_chunks:
        raise ValueError(f"document has {n} chunks, more than max_chunks={max_chunks}; raise the limit or split it")
    if batch_size < 1 or workers < 1:
        raise ValueError(f"batch_size and workers must be >= 1, got {batch_size} and {workers}")
    if cache_max_gb is not None and cache_max_gb <= 0:
        raise ValueError(f"cache_max_gb must be > 0, got {cache_max_gb}")
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{model_fingerprint(qf)}-{_chunks_key(chunks)}{CACHE_SUFFIX}"
        if path.is_file():
            _touch(path)
            return np.load(path, mmap_mode="r")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}{CACHE_SUFFIX}")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, qf.dim))
    else:
        out = np.empty((n, qf.dim), dtype=np.float32)
    bar = task = None
    if show_progress:
        from rlcore.cli import progress

        bar = progress()
        bar.start()
        task = bar.add_task("encoding chunks", total=n)
    try:
        _encode_into(qf, chunks, out, batch_size, workers, bar, task)
    finally:
        if bar is not None:
            bar.stop()
    if path is not None:
        out.flush()
        del out
        os.replace(tmp, path)
        if cache_max_gb is not None:
            evict_cache(path.parent, int(cache_max_gb * 2**30), keep=[path])
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


_F16_ACC32: bool | None = None


def fp16_accumulates_in_fp32() -> bool:
    """Whether torch's CPU half matrix-vector product accumulates in float32 (probe: 2048 + 383 ones)."""
    global _F16_ACC32
    if _F16_ACC32 is None:
        e = torch.ones(4, 384, dtype=torch.float16)
        e[:, 0] = 2048
        _F16_ACC32 = bool((e @ torch.ones(384, dtype=torch.float16)).float().eq(2432).all())  # fp16 sums: 2048
    return _F16_ACC32


_U16 = 2.0**-11  # float16 unit roundoff
_PARALLEL_ROWS = 32_768
_F16_MAX_ABS = 6.0e4


class ChunkIndex:
    """Exact top-k search of ``<s, RoPE(e_j, p_j)>`` over one document's cached chunk embeddings.

    Args:
        embeddings: ``(N, d)`` unrotated chunk embeddings (array or memmap from :func:`encode_chunks`).
        position: position processor name (``relative``, ``absolute``, ``none``).
        rope_theta: RoPE base.
        backend: ``fp16`` (float16 scan + exact float32 re-rank), ``numpy`` (float32 blocks streamed from the
            memmap), ``faiss`` (in-RAM ``IndexFlatIP``) or ``auto`` (fp16 from ``fp16_min_chunks`` chunks on).
        max_index_gb: largest in-RAM copy allowed (faiss float32, fp16 half).
        block: rows per block when copying/streaming.
        step_size: segment offset of the ``relative`` processor.
        fp16_min_chunks: ``auto`` uses numpy below this size.
    """

    def __init__(self, embeddings: np.ndarray, position: str = "relative", rope_theta: float = 10000.0,
                 backend: str = "auto", max_index_gb: float = 8.0, block: int = 65_536, step_size: int = 20,
                 fp16_min_chunks: int = 4096):
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"embeddings must be a non-empty (N, d) array, got shape {embeddings.shape}")
        if backend not in SEARCH_BACKENDS:
            raise ValueError(f"backend must be one of {SEARCH_BACKENDS}, got {backend!r}")
        self.position_fn = get_position_processor(position)
        self.position, self.theta, self.block, self.step_size = position, rope_theta, block, step_size
        self.n, self.dim = embeddings.shape
        self.emb = embeddings  # unrotated float32 (the exact re-rank reads this)
        self.scan = embeddings  # what the numpy/faiss paths scan (rotated once for absolute positions)
        if position == "absolute":  # fixed positions: index the rotated vectors once
            rot = np.empty(embeddings.shape, dtype=np.float32)
            for i in range(0, self.n, block):
                rot[i : i + block] = _rotate_np(embeddings[i : i + block], np.arange(i, min(i + block, self.n)),
                                                rope_theta)
            self.scan = rot
        if backend == "auto":
            backend = "fp16" if self.n >= fp16_min_chunks else "numpy"
        self.backend = backend
        self.faiss_index = None
        self.half = None
        if backend == "faiss":
            need = self.n * self.dim * 4 / 2**30
            if need > max_index_gb:
                raise ValueError(
                    f"document of {self.n} chunks needs {need:.2f} GiB for the faiss index, over max_index_gb="
                    f"{max_index_gb}; use backend='fp16' or 'numpy' (streams from the on-disk cache) or raise it")
            import faiss

            self.faiss_index = faiss.IndexFlatIP(self.dim)
            for i in range(0, self.n, block):
                self.faiss_index.add(np.ascontiguousarray(self.scan[i : i + block], dtype=np.float32))
        elif backend == "fp16":
            need = self.n * self.dim * 2 / 2**30
            if need > max_index_gb:
                raise ValueError(f"document of {self.n} chunks needs {need:.2f} GiB for the fp16 copy, over "
                                 f"max_index_gb={max_index_gb}; use backend='numpy' or raise the limit")
            self.acc32 = fp16_accumulates_in_fp32()
            self.half = torch.empty((self.n, self.dim), dtype=torch.float16)
            max_abs, max_norm = 0.0, 0.0
            for i in range(0, self.n, block):
                rows = np.asarray(self.scan[i : i + block], dtype=np.float32)
                max_abs = max(max_abs, float(np.abs(rows).max()))
                max_norm = max(max_norm, float(np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64)).max()))
                self.half[i : i + len(rows)] = torch.from_numpy(rows)
            if not np.isfinite(max_abs) or max_abs > _F16_MAX_ABS:
                raise ValueError(f"embedding values up to {max_abs:g} overflow float16; use backend='numpy'")
            self.max_abs, self.max_norm = max_abs, max_norm

    def _runs(self, retrieved: Sequence[int]) -> list[tuple[int, int, int | None]]:
        available = np.ones(self.n, dtype=bool)
        available[list(retrieved)] = False
        if self.position != "relative":
            return [(s, e, None) for s, e, _ in position_runs(np.zeros(self.n, np.int64), available)]
        pos = self.position_fn(self.n, retrieved, step_size=self.step_size)
        return position_runs(pos, available)

    def _queries(self, state: np.ndarray, runs) -> dict:
        pos = sorted({p for _, _, p in runs if p is not None})
        if not pos:
            return {None: state.astype(np.float32)}
        s = torch.from_numpy(np.ascontiguousarray(state, dtype=np.float32)).expand(len(pos), -1)
        rot = compute_rope(s, -torch.tensor(pos), self.theta).numpy()  # (P, d): R(-p) s
        return dict(zip(pos, rot, strict=True))

    def error_bound(self, state: np.ndarray) -> float:
        """Bound ``B`` on ``|approx - exact|`` of any fp16 score for ``state`` (any rotation of it).

        Storage and query rounding (``u`` each, plus the subnormal absolute error ``2^-25`` per element), output rounding
        (``u``), float32 accumulation (``d 2^-24``) and the float32 query rotation (``8 2^-24``), all bounded
        through Cauchy-Schwarz by ``||q|| max_j ||e_j||``; float16 accumulation would add ``d u``.
        """
        qn = float(np.linalg.norm(state.astype(np.float64)))
        acc = (self.dim + 8) * 2.0**-24 if self.acc32 else self.dim * _U16
        rel = 3 * _U16 + 3 * _U16**2 + acc
        sub = 2.0**-25 * np.sqrt(self.dim) * (qn + self.max_norm) + self.dim * 2.0**-50
        return 1.01 * (rel * qn * self.max_norm + sub) + 1e-30

    def _exact_scores(self, state: np.ndarray, ids: np.ndarray, runs) -> np.ndarray:
        rows = np.asarray(self.emb[np.sort(ids)], dtype=np.float32)  # sorted: sequential memmap reads
        ids_sorted = np.sort(ids)
        if self.position == "none":
            sc = rows @ state
        elif self.position == "absolute":
            sc = _rotate_np(rows, ids_sorted, self.theta) @ state
        else:
            starts = np.array([s for s, _, _ in runs])
            pos = np.array([p for _, _, p in runs], dtype=np.int64)[np.searchsorted(starts, ids_sorted, "right") - 1]
            sc = _rotate_np(rows, pos, self.theta) @ state
        back = np.empty_like(sc)
        back[np.searchsorted(ids_sorted, ids)] = sc
        return back

    def _search_fp16(self, state: np.ndarray, runs, queries: dict, k: int) -> tuple[np.ndarray, np.ndarray]:
        scale = float(np.abs(state).max()) or 1.0  # queries scaled to max-abs 1: no fp16 overflow/underflow
        approx = torch.full((self.n,), float("-inf"), dtype=torch.float32)
        q16 = {p: torch.from_numpy(q / scale).to(torch.float16) for p, q in queries.items()}
        for s, e, p in runs:
            if e - s >= _PARALLEL_ROWS and self._threads > 1:  # long runs: torch's thread pool
                torch.set_num_threads(self._threads)
                approx[s:e] = (self.half[s:e] @ q16[p]).float()
                torch.set_num_threads(1)
            else:
                approx[s:e] = (self.half[s:e] @ q16[p]).float()
        kk = min(k, sum(e - s for s, e, _ in runs))
        kth = float(torch.topk(approx, kk).values[-1])
        bound = self.error_bound(state / scale)
        cand = torch.nonzero(approx >= kth - 2 * bound).squeeze(1).numpy()
        exact = self._exact_scores(state, cand, runs)
        order = np.lexsort((cand, -exact))[:k]
        return exact[order], cand[order].astype(np.int64)

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
        if not np.isfinite(state).all():
            raise ValueError("state embedding has non-finite values")
        runs = self._runs(retrieved)
        if self.half is not None:
            # small tensor ops run on one thread: a parallel region per short op costs more than it saves (and
            # stalls badly on a loaded machine); runs of >= _PARALLEL_ROWS rows use the full thread pool
            self._threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return self._search_fp16(state, runs, self._queries(state, runs), k)
            finally:
                torch.set_num_threads(self._threads)
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
                    rows = np.asarray(self.scan[b : min(e, b + self.block)], dtype=np.float32)
                    sc = rows @ queries[p]
                    kk = min(k, len(sc))
                    top = np.argpartition(-sc, kk - 1)[:kk]
                    cand_s.append(sc[top]), cand_i.append(top + b)
        scores, ids = np.concatenate(cand_s), np.concatenate(cand_i).astype(np.int64)
        order = np.lexsort((ids, -scores))[:k]
        return scores[order], ids[order]
