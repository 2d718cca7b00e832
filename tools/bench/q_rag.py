"""Q-RAG at 10M tokens: per-step exact search (new fp16 scan + exact fp32 re-rank vs the old fp32 numpy path),
recall against a full rotate-every-chunk fp32 brute force, chunk encoding (new length-sorted / threaded vs the old
input-order batches) and the bounded embedding cache. Both sides of every ratio run in this process with the same
pinned thread count.

Usage: uv run --no-sync python tools/bench/q_rag.py [--tokens 10000000] [--threads 2] [--steps 5] [--questions 4]
       [--encoder minilm|small|PATH] [--sample 4096] [--encode-chunks 512] [--out bench_q_rag.json]

Document: a BabiLong-style synthetic "before" story in built-in ~24-token filler sentences (10M tokens ~ 350k
chunks). Vectors: the first ``--sample`` chunks are encoded with the real encoder (default MiniLM-L6, d=384); the
rest of the document reuses them cyclically with 0.1% Gaussian noise, so the search sees the encoder's real score
distribution, including thousands of near-duplicates (the hard case for a re-rank). Queries are real state
encodings of the question plus the chunks retrieved so far (relative positions, 5 steps, half of the steps take a
random chunk like an exploring policy).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

# this file is named like the package: drop its folder from sys.path so `import q_rag` finds the package
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def pin_threads(n: int):
    """Same thread count for torch, faiss and numpy's BLAS (both sides of every ratio)."""
    import faiss
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    return threadpool_limits(n)


def load_qf(name: str):
    import torch
    from q_rag.q_function import QFunction
    from rlcore.builtins import default_encoder_path

    if name == "small":  # random-init 1-layer BERT at d=384 (pipeline timing only)
        from rlcore.testing import tiny_tokenizer
        from transformers import BertConfig, BertModel

        tok = tiny_tokenizer()
        torch.manual_seed(0)
        cfg = BertConfig(vocab_size=len(tok), hidden_size=384, intermediate_size=768, num_hidden_layers=1,
                         num_attention_heads=6, max_position_embeddings=512, pad_token_id=tok.pad_token_id)
        return QFunction.from_encoder(BertModel(cfg).eval(), tok)
    return QFunction.from_pretrained(default_encoder_path() if name == "minilm" else name)


def old_encode(qf, chunks, batch_size):
    """The previous encode path: input-order batches padded to their longest chunk, one thread pool."""
    import numpy as np
    import torch

    out = np.empty((len(chunks), qf.dim), np.float32)
    with torch.no_grad():
        for i in range(0, len(chunks), batch_size):
            out[i : i + batch_size] = qf.embed_actions(list(chunks[i : i + batch_size]), batch_size=batch_size).numpy()
    return out


def bench_encoding(qf, chunks, batch_size: int) -> dict:
    import numpy as np
    from q_rag.index import encode_chunks

    old_encode(qf, chunks[:32], batch_size)  # warm-up
    t = time.perf_counter()
    ref = old_encode(qf, chunks, batch_size)
    old_s = time.perf_counter() - t
    row = {"encode_chunks": len(chunks), "encode_old_chunks_per_s": round(len(chunks) / old_s, 1)}
    for workers in (1, 2):
        t = time.perf_counter()
        new = encode_chunks(qf, chunks, batch_size=batch_size, workers=workers)
        dt = time.perf_counter() - t
        row[f"encode_new_w{workers}_chunks_per_s"] = round(len(chunks) / dt, 1)
        row[f"encode_new_w{workers}_speedup"] = round(old_s / dt, 2)
        row[f"encode_new_w{workers}_max_abs_diff"] = float(np.abs(new - ref).max())
    return row


def build_vectors(qf, chunks, sample: int, seed: int = 0):
    import numpy as np
    from q_rag.index import encode_chunks

    base = encode_chunks(qf, chunks[:sample], batch_size=128)
    n = len(chunks)
    rng = np.random.default_rng(seed)
    emb = np.empty((n, qf.dim), np.float32)
    scale = 1e-3 * float(np.abs(base).mean())
    for i in range(0, n, sample):
        m = min(sample, n - i)
        emb[i : i + m] = base[:m] + scale * rng.standard_normal((m, qf.dim), dtype=np.float32)
    return emb


def bench_search(qf, sample, emb, steps: int, questions: int, k: int, seed: int = 0) -> dict:
    import numpy as np
    import torch
    from q_rag.index import ChunkIndex, brute_force_scores
    from q_rag.positions import get_position_processor

    n = len(sample.chunks)
    rng = np.random.default_rng(seed)
    pos_fn = get_position_processor("relative")
    # one fixed workload (states + retrieved sets) replayed on both backends
    work, recall_ref = [], []
    for _ in range(questions):
        retrieved: list[int] = []
        for _ in range(steps):
            with torch.no_grad():
                s = qf.embed_states([sample.question], [[sample.chunks[i] for i in sorted(retrieved)]])[0].numpy()
            avail = np.ones(n, bool)
            avail[retrieved] = False
            ref = brute_force_scores(emb, s, pos_fn(n, retrieved), avail, qf.rope_theta)
            top = np.argsort(-ref, kind="stable")[:k]
            work.append((s, list(retrieved)))
            recall_ref.append(top)
            nxt = int(top[0]) if rng.random() < 0.5 else int(rng.integers(n))
            while nxt in retrieved:
                nxt = int(rng.integers(n))
            retrieved.append(nxt)
    row = {}
    for backend in ("numpy", "fp16"):
        t = time.perf_counter()
        index = ChunkIndex(emb, "relative", qf.rope_theta, backend=backend)
        row[f"{backend}_build_s"] = round(time.perf_counter() - t, 2)
        index.search(work[0][0], work[0][1], k=k)  # warm-up
        lat, hits = [], 0
        for (s, ret), top in zip(work, recall_ref, strict=True):
            t = time.perf_counter()
            _, ids = index.search(s, ret, k=k)
            lat.append(time.perf_counter() - t)
            hits += len(set(ids.tolist()) & set(top.tolist()))
        row[f"{backend}_ms_per_step"] = round(1000 * float(np.median(lat)), 2)
        row[f"{backend}_ms_per_step_max"] = round(1000 * float(np.max(lat)), 2)
        row[f"{backend}_recall_at_{k}"] = hits / (k * len(work))
        del index
    row["speedup_fp16_vs_numpy"] = round(row["numpy_ms_per_step"] / row["fp16_ms_per_step"], 2)
    row["steps_measured"] = len(work)
    return row


def bench_cache(qf, chunks, cache_dir: str) -> dict:
    from q_rag.index import encode_chunks

    docs = [chunks[i * 64 : (i + 1) * 64] for i in range(4)]
    one = 64 * qf.dim * 4 + 128
    for d in docs:
        encode_chunks(qf, d, cache_dir=cache_dir, cache_max_gb=2.5 * one / 2**30)
    files = list(Path(cache_dir).glob("*.npy"))
    return {"cache_bytes_per_1M_tokens_d384": int(40_000 * 384 * 4), "cache_cap_entries_kept": len(files),
            "cache_dir_bytes": sum(f.stat().st_size for f in files), "cache_cap_bytes": int(2.5 * one)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=10_000_000)
    ap.add_argument("--encoder", default="minilm", help="minilm | small | HF path")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--sample", type=int, default=4096, help="chunks encoded for the search vectors")
    ap.add_argument("--encode-chunks", type=int, default=512, help="chunks in the encoding comparison")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench_q_rag.json")
    args = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from q_rag.babilong import build_synthetic_dataset

    with pin_threads(args.threads):
        qf = load_qf(args.encoder)
        t = time.perf_counter()
        (sample,) = build_synthetic_dataset("before", 1, args.tokens, seed=0, n_facts=12)
        result = {"machine": f"{os.cpu_count()}-core CPU", "threads": args.threads, "encoder": args.encoder,
                  "dim": qf.dim, "tokens": args.tokens, "chunks": len(sample.chunks),
                  "build_doc_s": round(time.perf_counter() - t, 1)}
        result.update(bench_encoding(qf, sample.chunks[: args.encode_chunks], args.batch_size))
        print(json.dumps(result), flush=True)
        t = time.perf_counter()
        emb = build_vectors(qf, sample.chunks, args.sample)
        result["vectors_s"] = round(time.perf_counter() - t, 1)
        result.update(bench_search(qf, sample, emb, args.steps, args.questions, args.k))
        with tempfile.TemporaryDirectory() as cache:
            result.update(bench_cache(qf, sample.chunks, cache))
        result["peak_rss_gb"] = round(peak_rss_gb(), 2)
    print(json.dumps(result), flush=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
