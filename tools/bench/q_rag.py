"""Q-RAG retrieval at scale: chunk encoding throughput, per-question latency (faiss vs numpy brute force),
exactness of the range-restricted search against a full rotate-and-dot brute force, and peak memory.

Usage: uv run --no-sync python tools/bench/q_rag.py [--tokens 1000000,10000000] [--encoder small|minilm|PATH]
       [--steps 5] [--questions 3] [--out bench_q_rag.json]

Documents are BabiLong-style (a synthetic "before" story in built-in ~24-token filler sentences). The "small"
encoder is a random-init 1-layer BERT (d=64, rlcore tiny tokenizer): allowed by the issue for 10M tokens, it times
the pipeline, not retrieval quality. MiniLM (d=384) throughput is measured on a --minilm-sample of chunks.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

# this file is named like the package: drop its folder from sys.path so `import q_rag` finds the package
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def small_q_function(position: str):
    import torch
    from q_rag.q_function import QFunction
    from rlcore.testing import tiny_tokenizer
    from transformers import BertConfig, BertModel

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                     num_attention_heads=2, max_position_embeddings=512, pad_token_id=tok.pad_token_id)
    return QFunction.from_encoder(BertModel(cfg).eval(), tok, position=position)


def load_qf(name: str, position: str):
    from q_rag.q_function import QFunction
    from rlcore.builtins import default_encoder_path

    if name == "small":
        return small_q_function(position)
    return QFunction.from_pretrained(default_encoder_path() if name == "minilm" else name, position=position)


def bench_document(qf, tokens: int, steps: int, questions: int, cache_dir: str, seed: int = 0) -> dict:
    import numpy as np
    import torch
    from q_rag.babilong import build_synthetic_dataset
    from q_rag.index import ChunkIndex, brute_force_scores, encode_chunks
    from q_rag.positions import get_position_processor

    t = time.time()
    (sample,) = build_synthetic_dataset("before", 1, tokens, seed=seed, n_facts=12)
    build_s = time.time() - t
    n = len(sample.chunks)
    t = time.time()
    emb = encode_chunks(qf, sample.chunks, cache_dir=cache_dir, batch_size=1024, show_progress=True)
    enc_s = time.time() - t
    t = time.time()
    encode_chunks(qf, sample.chunks, cache_dir=cache_dir)  # cache hit: memmap, no encoder run
    hit_s = time.time() - t
    row = {"tokens": tokens, "chunks": n, "dim": qf.dim, "build_s": round(build_s, 1), "encode_s": round(enc_s, 1),
           "encode_chunks_per_s": round(n / enc_s, 1), "cache_hit_s": round(hit_s, 3)}
    rng = np.random.default_rng(seed)
    pos_fn = get_position_processor(qf.position)
    for backend in ("faiss", "numpy"):
        t = time.time()
        index = ChunkIndex(emb, qf.position, qf.rope_theta, backend=backend)
        row[f"{backend}_index_build_s"] = round(time.time() - t, 2)
        lat, search_lat, exact, max_err = [], [], True, 0.0
        for _ in range(questions):
            retrieved: list[int] = []
            t0 = time.time()
            for _ in range(steps):
                with torch.no_grad():
                    s = qf.embed_states([sample.question], [[sample.chunks[i] for i in sorted(retrieved)]])[0].numpy()
                t1 = time.time()
                scores, ids = index.search(s, retrieved, k=5)
                search_lat.append(time.time() - t1)
                t2 = time.time()
                if backend == "faiss":  # exactness against a full rotate-every-chunk brute force
                    avail = np.ones(n, bool)
                    avail[retrieved] = False
                    ref = brute_force_scores(emb, s, pos_fn(n, retrieved), avail, qf.rope_theta)
                    top = np.argsort(-ref, kind="stable")[:5]
                    exact &= ids.tolist() == top.tolist()
                    max_err = max(max_err, float(np.abs(scores - ref[top]).max()))
                t0 += time.time() - t2  # the reference check is not part of the latency
                # explore like an untrained policy would: random available chunk (same positions workload)
                nxt = int(ids[0]) if rng.random() < 0.5 else int(rng.integers(n))
                while nxt in retrieved:
                    nxt = int(rng.integers(n))
                retrieved.append(nxt)
            lat.append(time.time() - t0)
        row[f"{backend}_question_latency_s"] = round(float(np.mean(lat)), 3)
        row[f"{backend}_search_ms_per_step"] = round(1000 * float(np.mean(search_lat)), 2)
        if backend == "faiss":
            row["faiss_exact_top5"] = bool(exact)
            row["faiss_max_abs_score_err"] = max_err
        del index
    row["peak_rss_gb"] = round(peak_rss_gb(), 2)
    return row


def minilm_throughput(sample_chunks: int) -> dict:
    import torch
    from q_rag.babilong import build_synthetic_dataset
    from q_rag.q_function import QFunction
    from rlcore.builtins import default_encoder_path

    qf = QFunction.from_pretrained(default_encoder_path(), position="relative")
    (s,) = build_synthetic_dataset("before", 1, sample_chunks * 24, seed=1)
    chunks = s.chunks[:sample_chunks]
    t = time.time()
    with torch.no_grad():
        qf.embed_actions(chunks, batch_size=128)
    dt = time.time() - t
    return {"minilm_chunks": len(chunks), "minilm_chunks_per_s": round(len(chunks) / dt, 1),
            "minilm_1M_tokens_est_s": round(40_000 / (len(chunks) / dt), 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", default="1000000,10000000")
    ap.add_argument("--encoder", default="small", help="small | minilm | HF path")
    ap.add_argument("--position", default="relative")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--questions", type=int, default=3)
    ap.add_argument("--minilm-sample", type=int, default=1024, help="0 to skip the MiniLM throughput probe")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench_q_rag.json")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    qf = load_qf(args.encoder, args.position)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for tok in [int(float(x)) for x in args.tokens.split(",")]:
            rows.append(bench_document(qf, tok, args.steps, args.questions, cache))
            print(json.dumps(rows[-1]), flush=True)
    result = {"encoder": args.encoder, "position": args.position, "steps": args.steps, "rows": rows}
    if args.minilm_sample:
        result.update(minilm_throughput(args.minilm_sample))
        print(json.dumps({k: v for k, v in result.items() if k.startswith("minilm")}))
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
