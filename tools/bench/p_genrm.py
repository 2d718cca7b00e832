"""P-GenRM throughput: Ind-16+Pro-8 pairs/s batched vs sequential, and faiss prototype search over 100k members.

Usage: uv run --no-sync python tools/bench/p_genrm.py [--pairs 4] [--max-new-tokens 32] [--members 100000]

1. Scoring. The rlcore tiny Qwen2 (random init) generates every chain for real through ``HFGenerator``. A random
   tiny model cannot write the evaluation-chain format, so each generated text is replaced, after generation, by a
   valid chain (``FormattedGenerator``) so the Pro-k path (anchor embedding, neighbour search, neighbour
   re-scoring) runs as it would with a trained model; all generation cost is real. Batched = TestTimeScaler's
   path (all Ind chains of all pairs in one generate call, then all neighbour re-scorings in one; rlcore's
   HFGenerator prefills each distinct prompt once, and its cascade attention reads that KV once per prompt at each
   decode step instead of once per sample; ``batched_expand`` copies the KV to every sample instead, and
   ``batched_unshared`` prefills every sample); sequential = one
   chain per generate call. Same pairs, same run, torch pinned to one thread for both. Embedder: the offline
   all-MiniLM-L6-v2. ``--cached`` adds the ``ind2+cpro2`` cached-prototype mode (4 chains per pair).
2. Search. ``PrototypeIndex.search`` (faiss IVF, lists = prototype members, nprobe 1) over ``--members`` random
   unit vectors (d=384, K=100 spherical K-means prototypes), one query at a time.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

# this file is named like the package: drop its folder from the import path so `import p_genrm` finds the package
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


class FormattedGenerator:
    """Runs the real generator, then swaps each text for a valid chain (see the module docstring)."""

    def __init__(self, inner):
        from p_genrm.evaluation_chain import render_chain

        self.inner, self.tokenizer, self.device = inner, inner.tokenizer, inner.device
        self.chain = render_chain("Style: concise. Values: honesty.", [("brevity", 60, 7, 4), ("honesty", 40, 6, 6)])

    def generate(self, prompts=None, params=None, generator=None, prompt_ids=None):
        out = self.inner.generate(prompts=prompts, prompt_ids=prompt_ids, params=params, generator=generator)
        return [[SimpleNamespace(prompt_index=c.prompt_index, text=self.chain, token_ids=c.token_ids) for c in comps]
                for comps in out]


def bench_scoring(n_pairs: int, max_new_tokens: int, cached: bool = False, repeats: int = 1) -> dict:
    import torch
    from p_genrm.evaluation_chain import HistoryPair, ScoreRequest, build_messages
    from p_genrm.prototypes import Member, PrototypeIndex, SentenceEmbedder, compute_kmeans_prototypes
    from p_genrm.scaling import TestTimeScaler
    from p_genrm.scoring import GenRMScorer
    from rlcore.rollout import HFGenerator
    from rlcore.testing import tiny_causal_lm, tiny_tokenizer

    torch.set_num_threads(1)  # both paths pinned to one thread (issue 18)
    tok = tiny_tokenizer()
    lm = tiny_causal_lm(tok)
    gen = FormattedGenerator(HFGenerator(lm, tok))
    # the same batched path without rlcore's prompt / prefix KV sharing (what the sharing buys)
    unshared = FormattedGenerator(HFGenerator(lm, tok, share_prefill=False))
    # shared prefill, but the prompt KV copied to every row for decoding (no cascade attention)
    expanded = FormattedGenerator(HFGenerator(lm, tok, prefix_attention="expand"))
    embedder = SentenceEmbedder()
    styles = ["concise", "detailed", "formal", "playful"]
    texts = [f"Style: {styles[i % 4]}. Values: {['honesty', 'kindness'][i % 2]}. Case {i}." for i in range(64)]
    members = [Member(f"m{i}", f"r{i}", (HistoryPair("Hi", f"short answer {i}", f"long answer {i}"),) * 3, texts[i])
               for i in range(64)]
    E = embedder(texts)
    A, _ = compute_kmeans_prototypes(E, 4, seed=0)
    index = PrototypeIndex(A, E, members)
    hist = (HistoryPair("How do I boil an egg?", "Boil 9 minutes.", "Eggs are ..."),) * 3
    reqs = [ScoreRequest(f"Question {i}: how to learn Python?", "Use the tutorial.", "Read a long book about it.",
                         hist, user_id=f"u{i}") for i in range(n_pairs)]
    out = {}
    embedder(texts[:1])  # load the encoder before timing
    modes = ("batched", "sequential", "batched_unshared", "batched_expand") + (("cached",) if cached else ())
    times: dict[str, list[float]] = {m: [] for m in modes}
    calls: dict[str, int] = {}
    for _ in range(repeats):  # a shared machine: modes interleaved, the best of `repeats` runs of each reported
        for mode in modes:
            n, k = (2, 2) if mode == "cached" else (16, 8)
            g = {"batched_unshared": unshared, "batched_expand": expanded}.get(mode, gen)
            scorer = GenRMScorer(g, max_new_tokens=max_new_tokens,
                                 max_retries=0, seed=0)
            scaler = TestTimeScaler(scorer, index, embedder, ind_n=n, pro_k=k,
                                    pro_mode="cached" if mode == "cached" else "neighbours")
            t0 = time.perf_counter()
            res = scaler.score(reqs, batched=mode != "sequential")
            times[mode].append(time.perf_counter() - t0)
            assert all(r.n_self == n and r.n_neighbors == k for r in res), f"every pair must use {n} + {k} chains"
            calls[mode] = scorer.stats.generate_calls
    for mode in modes:
        dt = min(times[mode])
        out[mode] = {"seconds": round(dt, 3), "all_seconds": [round(t, 3) for t in times[mode]],
                     "pairs_per_s": round(n_pairs / dt, 4), "generate_calls": calls[mode]}
    out["speedup"] = round(out["batched"]["pairs_per_s"] / out["sequential"]["pairs_per_s"], 2)
    out["unshared_speedup"] = round(out["batched_unshared"]["pairs_per_s"] / out["sequential"]["pairs_per_s"], 2)
    out["expand_speedup"] = round(out["batched_expand"]["pairs_per_s"] / out["sequential"]["pairs_per_s"], 2)
    if cached:
        out["cached_speedup_vs_sequential"] = round(out["cached"]["pairs_per_s"] / out["sequential"]["pairs_per_s"], 2)
    out["threads"] = torch.get_num_threads()
    out.update({"pairs": n_pairs, "chains_per_pair": 24, "max_new_tokens": max_new_tokens,
                "prompt_tokens": len(tok(tok.apply_chat_template(build_messages(reqs[0]), tokenize=False)).input_ids)})
    return out


def bench_search(n_members: int, dim: int = 384, k_protos: int = 100, k: int = 8, n_queries: int = 500) -> dict:
    import numpy as np
    from p_genrm.prototypes import Member, PrototypeIndex, compute_kmeans_prototypes

    rng = np.random.default_rng(0)
    E = rng.normal(size=(n_members, dim)).astype(np.float32)
    t0 = time.perf_counter()
    A, _ = compute_kmeans_prototypes(E, k_protos, n_iter=10, n_init=1, seed=0)
    t_kmeans = time.perf_counter() - t0
    members = [Member(f"u{i % 5000}", str(i), ()) for i in range(n_members)]
    index = PrototypeIndex(A, E, members)
    Q = rng.normal(size=(n_queries, dim)).astype(np.float32)
    index.search(Q[:1], k)  # warm-up
    t0 = time.perf_counter()
    for q in Q:
        index.search(q[None], k, exclude_users=["u1"])
    per_query = (time.perf_counter() - t0) / n_queries
    t0 = time.perf_counter()
    index.search(Q, k)
    batched = (time.perf_counter() - t0) / n_queries
    return {"members": n_members, "dim": dim, "prototypes": k_protos, "k": k, "kmeans_s": round(t_kmeans, 2),
            "ms_per_query": round(per_query * 1e3, 3), "ms_per_query_batched": round(batched * 1e3, 4),
            "target_ms": 5.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--cached", action="store_true", help="also time the ind2+cpro2 cached-prototype mode")
    ap.add_argument("--skip-search", action="store_true", help="only the scoring benchmark")
    ap.add_argument("--repeats", type=int, default=3, help="runs per scoring mode; the fastest is reported")
    args = ap.parse_args()
    out = {"scoring_ind16_pro8": bench_scoring(args.pairs, args.max_new_tokens, args.cached, args.repeats)}
    if not args.skip_search:
        out["prototype_search"] = bench_search(args.members)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
