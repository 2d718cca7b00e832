"""Decode throughput of rlcore's HFGenerator against plain eager ``model.generate``, in the same run.

Usage:
    uv run python tools/bench/rollout.py                     # CPU: tiny shape, quick
    uv run python tools/bench/rollout.py --shape qwen2.5-0.5b --device cuda --new-tokens 256 --batch-sizes 1 64

Prints decode steps/s for each (method, batch) and the ratio ours / eager. Random-init weights (no hub access);
EOS is disabled so every row decodes exactly ``--new-tokens`` tokens.
"""

from __future__ import annotations

import argparse
import time

import torch
from rlcore.device import get_device, get_dtype
from rlcore.rollout import HFGenerator, SamplingParams
from transformers import Qwen2Config, Qwen2ForCausalLM

SHAPES = {
    # Qwen2.5-0.5B: 24 layers, hidden 896, 14 heads / 2 KV heads, MLP 4864, vocab 151936, tied embeddings
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "small": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=32000, tie_word_embeddings=True),
}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_eager(model, ids, new_tokens, device):
    mask = torch.ones_like(ids)
    model.generate(ids, attention_mask=mask, max_new_tokens=2, do_sample=True, eos_token_id=None, pad_token_id=0)
    sync(device)
    t = time.perf_counter()
    model.generate(ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=True,
                   eos_token_id=None, pad_token_id=0)
    sync(device)
    return new_tokens / (time.perf_counter() - t)


def time_ours(gen, ids, new_tokens, device):
    p = SamplingParams(max_new_tokens=new_tokens, stop_token_ids=[], seed=0)
    gen.generate(prompt_ids=ids.tolist(), params=SamplingParams(max_new_tokens=new_tokens, stop_token_ids=[]))  # warm/compile
    sync(device)
    t = time.perf_counter()
    gen.generate(prompt_ids=ids.tolist(), params=p)
    sync(device)
    return new_tokens / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="small")
    ap.add_argument("--device", default=None)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    args = ap.parse_args()
    device = get_device(args.device)
    dtype = get_dtype(device)
    torch.manual_seed(0)
    cfg = Qwen2Config(max_position_embeddings=args.prompt_len + args.new_tokens + 8, **SHAPES[args.shape])
    model = Qwen2ForCausalLM(cfg).to(device=device, dtype=dtype).eval()
    gen = HFGenerator(model)
    print(f"device={device} dtype={dtype} shape={args.shape} new_tokens={args.new_tokens} "
          f"static_cache={gen.static} compile={gen.compile}")
    print(f"{'batch':>5} {'eager steps/s':>14} {'rlcore steps/s':>15} {'ratio':>7}")
    for bs in args.batch_sizes:
        ids = torch.randint(1, cfg.vocab_size, (bs, args.prompt_len), device=device)
        eager = time_eager(model, ids, args.new_tokens, device)
        ours = time_ours(gen, ids, args.new_tokens, device)
        print(f"{bs:>5} {eager:>14.1f} {ours:>15.1f} {ours / eager:>7.2f}x")


if __name__ == "__main__":
    main()
