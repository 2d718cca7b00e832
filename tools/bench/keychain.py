"""KeyChain synthesis throughput: incremental token counting vs a naive re-tokenising filler, at 16K and 128K.

Usage: uv run --no-sync python tools/bench/keychain.py [--lengths 16384 131072] [--examples 3] [--naive-examples 1]

Both fillers grow the context in steps of 10 documents and then insert the KeyChain; the naive one re-renders and
re-tokenises the whole context at every step (as the official script does), ours sums cached per-document counts
and tokenises the final text once. One CPU core (RAYON_NUM_THREADS=1). Tokenizer: the offline all-MiniLM-L6-v2
WordPiece tokenizer (a real 30K vocabulary; no Qwen tokenizer is available offline). Prints one JSON line per length.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def naive_fill(item, pool, tok, max_seq_length, seed, reserve=128, step=10):
    """The official growth loop: render and tokenise the full context after every step of 10 documents."""
    from loongrl.context_filling import _arrange, render_context

    rng = random.Random(f"{seed}:{item.id}")
    core = pool.ids(item)
    others = [i for i in range(len(pool)) if i not in set(core)]
    rng.shuffle(others)
    n, best = step, None
    while True:
        fillers = others[: max(0, n - len(core))]
        order, _ = _arrange(core, fillers, random.Random(f"{seed}:{item.id}:place"), 0.3)
        text = render_context([pool.docs[d] for d in order])
        if len(tok(text + " " + item.answers[0], add_special_tokens=False)["input_ids"]) + reserve >= max_seq_length:
            break
        best = text
        if n - len(core) >= len(others):
            break
        n += step
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", type=int, nargs="+", default=[16384, 131072])
    ap.add_argument("--examples", type=int, default=3)
    ap.add_argument("--naive-examples", type=int, default=1)
    args = ap.parse_args()

    import torch
    from loongrl.context_filling import TokenCounter
    from loongrl.data import DocPool, make_synthetic_qa
    from loongrl.keychain import KeyChain, compute_num_chains
    from loongrl.synthesis import sample_distract_questions, synthesize_one
    from rlcore.builtins import default_encoder_path
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(default_encoder_path())
    tok.model_max_length = 10**9
    items = make_synthetic_qa(1500, seed=0)
    pool = DocPool(items)
    for L in args.lengths:
        counter = TokenCounter(tok)  # fresh cache: the first example pays for tokenising its documents
        times, cpu, recs = [], [], []
        for i in range(args.examples):
            t, c = time.perf_counter(), time.process_time()
            recs.append(synthesize_one(items, i, pool, counter, max_seq_length=L))
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        ours = sum(times) / len(times)
        t = time.perf_counter()
        for i in range(args.naive_examples):
            text = naive_fill(items[i], pool, tok, L, 42)
            rng = random.Random(i)
            nc = compute_num_chains(L)
            KeyChain.build(text, items[i].question, sample_distract_questions(items, i, 16 * L // 1024, rng), nc, 4, rng)
        naive = (time.perf_counter() - t) / max(args.naive_examples, 1) if args.naive_examples else None
        print(json.dumps({
            "max_seq_length": L, "tokens_per_example": recs[0]["length"], "chains": recs[0]["num_chains"],
            "ours_first_example_s": round(times[0], 3), "ours_s_per_example": round(ours, 3),
            "ours_cpu_s_per_example": round(sum(cpu) / len(cpu), 3), "ours_examples_per_s": round(1 / ours, 2),
            "naive_s_per_example": round(naive, 3) if naive else None, "speedup": round(naive / ours, 1) if naive else None,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }), flush=True)


if __name__ == "__main__":
    main()
