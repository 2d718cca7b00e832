"""Decode throughput of rlcore's generators against plain eager ``model.generate``, in the same run.

Usage:
    uv run python tools/bench/rollout.py                     # CPU: small shape, quick
    uv run python tools/bench/rollout.py --shape qwen2.5-0.5b --device cuda --new-tokens 256 --batch-sizes 1 64
    uv run python tools/bench/rollout.py --backend vllm --shape qwen2.5-0.5b --device cuda --batch-sizes 1 64

Prints decode steps/s for each (method, batch) and the ratio ours / eager. Random-init weights from the shape's
config (no hub access); EOS is disabled so every row decodes exactly ``--new-tokens`` tokens. ``--backend vllm``
times vLLM itself (``vllm.LLM`` on the same random weights saved to a temp dir, token-id prompts, no detokenizing).
On CUDA it also prints the fraction of the memory-bandwidth bound: (bytes of weights + KV cache read per decode
step) / step time, over the card's peak bandwidth (``PEAK_BANDWIDTH``, keyed by device name).

A second table times shared prefill (E10): ``--prefill-n`` samples of one ``--prefill-len``-token prompt, prefilled
once and expanded vs prefilled once per sample (``HFGenerator(share_prefill=False)``); then ``--prefill-n / 2``
distinct prompts (a common head + 16-token tails) x 2 samples, head prefilled once vs not; then
``--cascade-new-tokens`` tokens for each of the ``--prefill-n`` samples, decoded with cascade attention (the
prompt KV read once per step) vs the KV copied to every row.

A third table times the decode-step mask: ragged prompts (``--prompt-len`` / 2 to ``--prompt-len`` tokens, so
left padding) decoded with the 4D mask built once per batch (the default) vs the 2D padding mask that
transformers turns into a 4D mask in every step (the previous path).

A fourth table times the sampling filters alone (``process_logits``, top-k 50 then top-p 0.95, temperature 0.8)
at 32K and 152K vocabularies: the nucleus over the k values ``torch.topk`` sorted vs a sort of the whole vocabulary
and a scatter back (the previous code, kept here as the baseline). ``--json PATH`` writes every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time

import torch
from rlcore.device import get_device, get_dtype
from rlcore.rollout import HFGenerator, SamplingParams
from transformers import Qwen2Config, Qwen2ForCausalLM

SHAPES = {
    # Qwen2.5-0.5B: 24 layers, hidden 896, 14 heads / 2 KV heads, MLP 4864, vocab 151936, tied embeddings
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    # Qwen2.5-1.5B: 28 layers, hidden 1536, 12 heads / 2 KV heads, MLP 8960, vocab 151936, tied embeddings
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "small": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=32000, tie_word_embeddings=True),
}

# peak HBM/GDDR bandwidth in bytes/s by device-name substring (first match wins; vendor datasheets)
PEAK_BANDWIDTH = [
    ("GH200", 4.0e12), ("H200", 4.8e12), ("H100 NVL", 3.9e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12),
    ("H800", 3.35e12), ("B200", 8.0e12), ("A100-SXM4-80GB", 2.039e12), ("A100 80GB PCIe", 1.935e12),
    ("A100", 1.555e12), ("L40S", 0.864e12), ("L40", 0.864e12), ("L4", 0.3e12), ("A10G", 0.6e12), ("A10", 0.6e12),
    ("RTX 4090", 1.008e12), ("RTX 3090", 0.936e12), ("V100", 0.9e12), ("T4", 0.32e12),
]


def peak_bandwidth(device_name: str) -> float | None:
    """Peak memory bandwidth (bytes/s) of a device name such as "NVIDIA H100 80GB HBM3", or None if unknown."""
    for key, bw in PEAK_BANDWIDTH:
        if key in device_name:
            return bw
    return None


def decode_bytes_per_step(cfg, n_params: int, dtype_bytes: int, batch: int, context: float) -> float:
    """Bytes one decode step must read: every weight once + the K and V of ``context`` tokens for each row."""
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    kv = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * head_dim * context * batch * dtype_bytes
    return n_params * dtype_bytes + kv


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


class VLLMTimer:
    """vLLM on the same random weights (saved to a temp dir; no tokenizer: token-id prompts, no detokenizing)."""

    def __init__(self, model, gpu_memory_utilization: float, max_len: int):
        from vllm import LLM

        self._dir = tempfile.TemporaryDirectory()
        model.save_pretrained(self._dir.name)
        self.llm = LLM(model=self._dir.name, skip_tokenizer_init=True, gpu_memory_utilization=gpu_memory_utilization,
                       max_model_len=max_len, dtype=str(model.dtype).removeprefix("torch."), seed=0)

    def __call__(self, ids, new_tokens, device):
        from vllm import SamplingParams as VSP

        reqs = [{"prompt_token_ids": row} for row in ids.tolist()]
        sp = VSP(max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True, detokenize=False, temperature=1.0)
        self.llm.generate(reqs, VSP(max_tokens=2, ignore_eos=True, detokenize=False), use_tqdm=False)  # warm
        t = time.perf_counter()
        self.llm.generate(reqs, sp, use_tqdm=False)
        return new_tokens / (time.perf_counter() - t)


def bench_shared_prefill(model, args, device) -> dict:
    """n samples of one long prompt: shared prefill (expand the KV) vs one prefill per sample."""
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(1, model.config.vocab_size, (args.prefill_len,), generator=g).tolist()
    params = SamplingParams(max_new_tokens=args.prefill_new_tokens, n=args.prefill_n, stop_token_ids=[])
    out = {}
    for share in (True, False):
        gen = HFGenerator(model, share_prefill=share, cache_implementation="dynamic", compile=False)
        gen.generate(prompt_ids=[prompt[:16]], params=SamplingParams(max_new_tokens=2, n=2, stop_token_ids=[]))
        sync(device)
        t = time.perf_counter()
        gen.generate(prompt_ids=[prompt], params=params, seeds=[0])
        sync(device)
        out["shared_s" if share else "unshared_s"] = time.perf_counter() - t
    out["speedup"] = out["unshared_s"] / out["shared_s"]
    # distinct prompts with a common head (an instruction + different tails): the head is prefilled once
    tails = [torch.randint(1, model.config.vocab_size, (16,), generator=g).tolist() for _ in range(args.prefill_n // 2)]
    prompts = [prompt[: args.prefill_len - 16] + t for t in tails]
    two = SamplingParams(max_new_tokens=args.prefill_new_tokens, n=2, stop_token_ids=[])
    for share in (True, False):
        gen = HFGenerator(model, share_prefill=share, cache_implementation="dynamic", compile=False)
        sync(device)
        t = time.perf_counter()
        gen.generate(prompt_ids=prompts, params=two, seeds=list(range(len(prompts))))
        sync(device)
        out["prefix_shared_s" if share else "prefix_unshared_s"] = time.perf_counter() - t
    out["prefix_speedup"] = out["prefix_unshared_s"] / out["prefix_shared_s"]
    # decoding over the shared prompt: cascade attention (the KV read once per step) vs the KV copied to every row
    dec = SamplingParams(max_new_tokens=args.cascade_new_tokens, n=args.prefill_n, stop_token_ids=[])
    for mode in ("cascade", "expand"):
        gen = HFGenerator(model, prefix_attention=mode, cache_implementation="dynamic", compile=False)
        sync(device)
        t = time.perf_counter()
        gen.generate(prompt_ids=[prompt], params=dec, seeds=[0])
        sync(device)
        out[f"decode_{mode}_s"] = time.perf_counter() - t
    out["cascade_speedup"] = out["decode_expand_s"] / out["decode_cascade_s"]
    return out


def bench_decode_mask(model, args, device, repeats: int = 5) -> list[dict]:
    """Decode steps/s with the once-built 4D mask vs the per-step 2D mask, ragged prompts, median of ``repeats``."""
    import statistics
    from unittest import mock

    import rlcore.hf_generator as hfg

    gen = HFGenerator(model, cache_implementation="dynamic", compile=False)
    g = torch.Generator().manual_seed(0)
    rows = []
    for bs in args.batch_sizes:
        lens = torch.randint(max(1, args.prompt_len // 2), args.prompt_len + 1, (bs,), generator=g).tolist()
        ids = [torch.randint(1, model.config.vocab_size, (n,), generator=g).tolist() for n in lens]
        p = SamplingParams(max_new_tokens=args.new_tokens, stop_token_ids=[], seed=0)

        def run(two_d: bool, ids=ids, p=p) -> float:
            plain = mock.patch.object(hfg, "_decode_attention_mask", lambda m, x: None)
            with plain if two_d else contextlib.nullcontext():
                sync(device)
                t = time.perf_counter()
                gen.generate(prompt_ids=ids, params=p)
                sync(device)
                return args.new_tokens / (time.perf_counter() - t)

        run(False), run(True)  # warm
        four, two = [], []
        for _ in range(repeats):  # alternate, so drift hits both alike
            four.append(run(False))
            two.append(run(True))
        rows.append(dict(batch=bs, mask4d_steps_s=statistics.median(four), mask2d_steps_s=statistics.median(two)))
    return rows


def sort_scatter_process_logits(logits, temperature=0.8, top_k=50, top_p=0.95):
    """Baseline: top-k masking, then top-p by a full-vocabulary sort and a scatter of the drop mask back."""
    x = logits.float() / temperature
    x = x.masked_fill(x < torch.topk(x, top_k, dim=-1).values[..., -1:], float("-inf"))
    sorted_x, order = torch.sort(x, dim=-1, descending=True)
    probs = torch.softmax(sorted_x, dim=-1)
    drop = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, probs.cumsum(-1) - probs > top_p)
    return x.masked_fill(drop, float("-inf"))


def bench_filters(device, repeats: int = 20) -> list[dict]:
    """Milliseconds per call of the sampling filters (median of ``repeats``), ours vs the sort-and-scatter baseline."""
    import statistics

    from rlcore.rollout import process_logits

    rows = []
    for vocab in (32_000, 151_936):
        for batch in (4, 16):
            x = torch.randn(batch, vocab, device=device, generator=torch.Generator(device).manual_seed(0))
            ours = lambda x=x: process_logits(x, 0.8, 50, 0.95)  # noqa: E731
            base = lambda x=x: sort_scatter_process_logits(x)  # noqa: E731
            assert torch.equal(torch.isinf(ours()), torch.isinf(base()))  # the same tokens survive
            times = {}
            for name, fn in (("ours", ours), ("base", base)):
                fn()
                ts = []
                for _ in range(repeats):
                    sync(device)
                    t = time.perf_counter()
                    fn()
                    sync(device)
                    ts.append(time.perf_counter() - t)
                times[name] = statistics.median(ts) * 1e3
            rows.append(dict(vocab=vocab, batch=batch, ours_ms=times["ours"], sort_scatter_ms=times["base"]))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="small")
    ap.add_argument("--device", default=None)
    ap.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="rlcore HFGenerator or vLLM itself")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.5, help="vllm backend")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    ap.add_argument("--prefill-len", type=int, default=1024, help="shared-prefill table: prompt tokens")
    ap.add_argument("--prefill-n", type=int, default=16, help="shared-prefill table: samples of the prompt")
    ap.add_argument("--prefill-new-tokens", type=int, default=4, help="shared-prefill table: tokens per sample")
    ap.add_argument("--skip-prefill", action="store_true", help="skip the shared-prefill table")
    ap.add_argument("--cascade-new-tokens", type=int, default=64,
                    help="shared-prefill table: tokens per sample for cascade vs copied-KV decoding")
    ap.add_argument("--skip-decode", action="store_true", help="skip the decode table")
    ap.add_argument("--skip-mask", action="store_true", help="skip the decode-mask table")
    ap.add_argument("--skip-filters", action="store_true", help="skip the sampling-filter table")
    ap.add_argument("--json", default="", help="also write every figure to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    dtype = get_dtype(device)
    torch.manual_seed(0)
    max_len = max(args.prompt_len + args.new_tokens,
                  args.prefill_len + max(args.prefill_new_tokens, args.cascade_new_tokens)) + 8
    cfg = Qwen2Config(max_position_embeddings=max_len, **SHAPES[args.shape])
    model = Qwen2ForCausalLM(cfg).to(device=device, dtype=dtype).eval()
    n_params = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_bandwidth(name) if device.type == "cuda" else None
    report = dict(device=name, dtype=str(dtype), shape=args.shape, backend=args.backend, params=n_params,
                  new_tokens=args.new_tokens, prompt_len=args.prompt_len, peak_bandwidth=peak, decode=[])
    if not args.skip_decode:
        if args.backend == "vllm":
            ours_fn = VLLMTimer(model, args.gpu_memory_utilization, max_len)
            label = "vllm"
        else:
            gen = HFGenerator(model)
            ours_fn = lambda ids, n, dev: time_ours(gen, ids, n, dev)  # noqa: E731
            label = f"rlcore(static={gen.static},compile={gen.compile})"
        print(f"device={name} dtype={dtype} shape={args.shape} params={n_params / 1e6:.1f}M "
              f"new_tokens={args.new_tokens} ours={label}")
        print(f"{'batch':>5} {'eager steps/s':>14} {'ours steps/s':>13} {'ratio':>7} {'GB/s':>8} {'of peak':>8}")
        for bs in args.batch_sizes:
            ids = torch.randint(1, cfg.vocab_size, (bs, args.prompt_len), device=device)
            eager = time_eager(model, ids, args.new_tokens, device)
            ours = ours_fn(ids, args.new_tokens, device)
            nbytes = decode_bytes_per_step(cfg, n_params, torch.finfo(dtype).bits // 8, bs,
                                           args.prompt_len + args.new_tokens / 2)
            bw = nbytes * ours
            frac = bw / peak if peak else None
            report["decode"].append(dict(batch=bs, eager_steps_s=eager, ours_steps_s=ours, ratio=ours / eager,
                                         bytes_per_step=nbytes, achieved_bw=bw, bw_fraction=frac))
            print(f"{bs:>5} {eager:>14.1f} {ours:>13.1f} {ours / eager:>6.2f}x {bw / 1e9:>8.1f} "
                  f"{'' if frac is None else f'{frac:.2f}':>8}")
    if not args.skip_prefill:
        sp = bench_shared_prefill(model, args, device)
        report["shared_prefill"] = dict(n=args.prefill_n, prompt_len=args.prefill_len,
                                        new_tokens=args.prefill_new_tokens, **sp)
        print(f"shared prefill: n={args.prefill_n} samples of a {args.prefill_len}-token prompt, "
              f"{args.prefill_new_tokens} new tokens: shared {sp['shared_s']:.2f}s, unshared {sp['unshared_s']:.2f}s, "
              f"ratio {sp['speedup']:.2f}x")
        print(f"shared head: {args.prefill_n // 2} distinct prompts x n=2 = {args.prefill_n} rows, common "
              f"{args.prefill_len - 16}-token head + 16-token tails: shared {sp['prefix_shared_s']:.2f}s, unshared "
              f"{sp['prefix_unshared_s']:.2f}s, ratio {sp['prefix_speedup']:.2f}x")
        print(f"decoding: n={args.prefill_n} samples x {args.cascade_new_tokens} tokens over the shared "
              f"{args.prefill_len}-token prompt: cascade {sp['decode_cascade_s']:.2f}s, KV copied to every row "
              f"{sp['decode_expand_s']:.2f}s, ratio {sp['cascade_speedup']:.2f}x")
    if not args.skip_mask and args.backend == "hf":
        report["decode_mask"] = bench_decode_mask(model, args, device)
        print(f"decode mask: ragged prompts of {max(1, args.prompt_len // 2)}-{args.prompt_len} tokens, "
              f"{args.new_tokens} new tokens, dynamic cache, no compile")
        print(f"{'batch':>5} {'4D mask steps/s':>16} {'2D mask steps/s':>16} {'ratio':>7}")
        for r in report["decode_mask"]:
            print(f"{r['batch']:>5} {r['mask4d_steps_s']:>16.1f} {r['mask2d_steps_s']:>16.1f} "
                  f"{r['mask4d_steps_s'] / r['mask2d_steps_s']:>6.2f}x")
    if not args.skip_filters:
        report["filters"] = bench_filters(device)
        print("sampling filters (process_logits: temperature 0.8, top-k 50, top-p 0.95), ms per call")
        print(f"{'vocab':>7} {'batch':>5} {'ours':>8} {'full sort':>10} {'ratio':>7}")
        for r in report["filters"]:
            print(f"{r['vocab']:>7} {r['batch']:>5} {r['ours_ms']:>8.2f} {r['sort_scatter_ms']:>10.2f} "
                  f"{r['sort_scatter_ms'] / r['ours_ms']:>6.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
