"""Seconds and peak memory per training step: TIDPOTrainer vs trl's DPOTrainer on the same model, data and batch.

Variants: plain DPO (sigmoid); DPO's loss computed by TIDPOTrainer (uniform weights: its own forward, the
apples-to-apples base for the TI-DPO terms); TI-DPO weights only (alpha_KL 0, gamma 0: the cost of the attribution);
TI-DPO with the TDPO2 KL (alpha_KL 0.5, gamma 0); the paper default (alpha_KL 0.5, gamma 0.1: + anchor sampling
and the anchor rows in the same forward), with the default shared-prompt layout (one packed row per pair) and
with TRL's padded layout (one row each); confidence weights (--importance confidence, alpha_KL 0, gamma 0).
Time: each round runs one step (forward, backward, AdamW update) of every variant in turn, threads pinned for all;
the first `--warmup` rounds are not timed. "x DPO": the median step over DPO's median step; "total": the time of
all timed steps over DPO's, on the same batches (the throughput ratio: batches differ in length, and the anchor
sampling costs nearly the same on a short batch as on a long one). Memory (`--memory`): each variant
in its own subprocess, the rise of peak memory during its first step over the memory held just before it (CPU:
peak RSS, VmHWM reset through /proc/self/clear_refs; CUDA: torch.cuda.max_memory_allocated), same method for all.

    uv run --no-sync python tools/bench/ti_dpo.py --steps 6 --memory                   # 1M-param tiny shape
    uv run --no-sync python tools/bench/ti_dpo.py --shape 12m --steps 4 --memory        # 12M params, 32k vocab
    python tools/bench/ti_dpo.py --shape qwen2.5-0.5b --device cuda --batch 8 --max-length 512 --memory
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

# This file is named like the package: drop its own folder from sys.path so `import ti_dpo` finds the package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


#: Model shapes (random init; token ids come from the tiny tokenizer, so any vocab >= 384 works).
SHAPES = {
    "tiny": None,  # --hidden / --layers, the tokenizer's 384-token vocab
    "12m": dict(hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=32_000),
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151_936, tie_word_embeddings=True,
                         max_position_embeddings=32_768),
}


def _model(tok, hidden: int, layers: int, shape: str = "tiny"):
    from rlcore.testing import tiny_causal_lm

    if SHAPES.get(shape):
        return tiny_causal_lm(tok, seed=0, **SHAPES[shape])
    heads = max(2, hidden // 64)
    return tiny_causal_lm(tok, seed=0, hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                          num_attention_heads=heads, num_key_value_heads=max(1, heads // 2))


def _pairs():
    from rlcore.builtins import list_builtins
    from ti_dpo.data import load_preference_pairs

    if "preference_pairs" in list_builtins():
        return load_preference_pairs("builtin:preference_pairs", "train"), "builtin:preference_pairs"
    return load_preference_pairs("tiny"), "ti_dpo tiny pairs"


def _step(trainer, batch, opt) -> float:
    """One optimizer step (forward, backward, AdamW update) on ``batch``; wall seconds."""
    import torch

    t = time.perf_counter()
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    if torch.cuda.is_available() and loss.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t


VARIANTS = {
    "dpo (trl DPOTrainer, sigmoid)": None,
    "ti-dpo uniform weights = DPO via the TI-DPO head": dict(alpha_kl=0.0, gamma=0.0, token_weighting="uniform"),
    "ti-dpo weights only (alpha_kl 0, gamma 0)": dict(alpha_kl=0.0, gamma=0.0),
    "ti-dpo + TDPO2 KL, no triplet (alpha_kl 0.5, gamma 0)": dict(alpha_kl=0.5, gamma=0.0),
    "ti-dpo paper default (weights + KL + triplet)": dict(alpha_kl=0.5, gamma=0.1),
    "ti-dpo paper default, padded layout (--batch-layout padded)": dict(alpha_kl=0.5, gamma=0.1, batch_layout="padded"),
    "ti-dpo --importance confidence (alpha_kl 0, gamma 0)": dict(alpha_kl=0.0, gamma=0.0, importance="confidence"),
}
BASE = "dpo (trl DPOTrainer, sigmoid)"


def _args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=1, help="untimed first steps per variant")
    ap.add_argument("--shape", default="tiny", choices=sorted(SHAPES), help="model shape (tiny: --hidden/--layers)")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4, help="pairs per step")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--anchor-tokens", type=int, default=32, help="anchor_max_new_tokens for the triplet variant")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: leave as is)")
    ap.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    ap.add_argument("--memory", action="store_true", help="also measure peak memory per step (one subprocess each)")
    ap.add_argument("--accuracy", action="store_true",
                    help="instead of timing: train builtin:tiny-reasoner with each importance source on "
                         "builtin:preference_pairs and report held-out preference accuracy (--seeds runs each)")
    ap.add_argument("--seeds", type=int, default=3, help="--accuracy: runs (seeds) per importance source")
    ap.add_argument("--train-steps", type=int, default=20, help="--accuracy: optimizer steps per run")
    ap.add_argument("--only", default="", help=argparse.SUPPRESS)  # internal: the memory child's variant
    ap.add_argument("--json-out", default="", help="also write the results here")
    return ap.parse_args()


def _setup(a, names):
    import torch
    from rlcore.device import get_device
    from rlcore.testing import tiny_tokenizer
    from ti_dpo.trainer import TIDPOConfig, TIDPOTrainer
    from trl import DPOConfig, DPOTrainer

    # TRL 1.16 reads model.is_gradient_checkpointing, deprecated in transformers 5.x; noise for a benchmark.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = get_device(a.device)
    tok = tiny_tokenizer()
    ds, data_name = _pairs()
    ds = ds.select(range(min(len(ds), a.batch * (a.steps + a.warmup))))
    common = dict(use_cpu=device.type == "cpu", bf16=device.type == "cuda", report_to="none",
                  per_device_train_batch_size=a.batch, save_strategy="no", activation_checkpointing=False,
                  max_length=a.max_length, logging_steps=10**6, learning_rate=1e-5, seed=0, disable_tqdm=True)
    trainers, batches, opts = {}, {}, {}
    out = tempfile.mkdtemp()
    for name in names:
        ti = VARIANTS[name]
        model = _model(tok, a.hidden, a.layers, a.shape).to(device)
        ref = _model(tok, a.hidden, a.layers, a.shape).to(device)
        if device.type == "cuda":
            model, ref = model.to(torch.bfloat16), ref.to(torch.bfloat16)
        if ti is None:
            tr = DPOTrainer(model=model, ref_model=ref, processing_class=tok, train_dataset=ds,
                            args=DPOConfig(output_dir=out, **common))
        else:
            tr = TIDPOTrainer(model=model, ref_model=ref, processing_class=tok, train_dataset=ds,
                              args=TIDPOConfig(output_dir=out, **common, **ti, anchor_max_new_tokens=a.anchor_tokens))
        trainers[name] = tr
        opts[name] = torch.optim.AdamW(tr.model.parameters(), lr=1e-5)
        rows = [tr.train_dataset[i] for i in range(len(tr.train_dataset))]
        batches[name] = [
            {k: v.to(device) for k, v in tr.data_collator(rows[i * a.batch:(i + 1) * a.batch]).items()}
            for i in range(a.steps + a.warmup)
        ]
    return device, tok, data_name, trainers, batches, opts


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _memory_child(a) -> None:
    """One variant, one step: peak memory rise over what was held just before the step (MB), printed as JSON."""
    import gc

    import torch

    device, _, _, trainers, batches, opts = _setup(a, [a.only])
    tr = trainers[a.only]
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        _step(tr, batches[a.only][0], opts[a.only])
        torch.cuda.synchronize()
        peak_mb = (torch.cuda.max_memory_allocated() - before) / 2**20
        method = "cuda max_memory_allocated rise"
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (peak RSS) to the current RSS
        before = _rss_kb("VmRSS")
        _step(tr, batches[a.only][0], opts[a.only])
        peak_mb = (_rss_kb("VmHWM") - before) / 1024
        method = "peak RSS rise (VmHWM reset via /proc/self/clear_refs)"
    print(json.dumps({"peak_mb": peak_mb, "method": method}))


def _memory(a) -> dict[str, dict]:
    import subprocess

    out = {}
    for name in VARIANTS:
        argv = [sys.executable, __file__, "--only", name, "--shape", a.shape, "--hidden", str(a.hidden), "--layers",
                str(a.layers), "--batch", str(a.batch), "--max-length", str(a.max_length), "--anchor-tokens",
                str(a.anchor_tokens), "--threads", str(a.threads), "--device", a.device, "--steps", "1",
                "--warmup", "0"]
        r = subprocess.run(argv, capture_output=True, text=True, check=False)
        line = [x for x in r.stdout.splitlines() if x.startswith("{")]
        if r.returncode != 0 or not line:
            raise RuntimeError(f"memory run of {name!r} failed:\n{r.stderr[-2000:]}")
        out[name] = json.loads(line[-1])
    return out


def _accuracy(a) -> None:
    """Held-out preference accuracy of each importance source (paper preset otherwise; the demo's lr/steps)."""
    import copy

    import torch
    from rlcore.builtins import load_model_and_tokenizer
    from ti_dpo.config import TrainConfig
    from ti_dpo.data import load_preference_pairs
    from ti_dpo.evaluation import evaluate_preferences
    from ti_dpo.runner import build_trainer

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    if a.threads:
        torch.set_num_threads(a.threads)
    train = load_preference_pairs("builtin:preference_pairs", "train")
    test = [dict(r) for r in load_preference_pairs("builtin:preference_pairs", "test")]
    rows = {}
    for source in ("gradient", "confidence", "random", "uniform"):
        accs, likes, secs = [], [], []
        for seed in range(a.seeds):
            model, tok = load_model_and_tokenizer("builtin:tiny-reasoner", device="cpu", dtype="float32")
            ref = copy.deepcopy(model).eval()
            ds = train.shuffle(seed=seed).select(range(a.train_steps * a.batch))
            extra = {"token_weighting": "uniform"} if source == "uniform" else {"importance": source}
            with tempfile.TemporaryDirectory() as out:
                cfg = TrainConfig(model="builtin:tiny-reasoner", output_dir=out, max_steps=a.train_steps,
                                  learning_rate=5e-5, preset="paper", per_device_train_batch_size=a.batch,
                                  max_length=a.max_length, anchor_max_new_tokens=8, seed=seed, device="cpu",
                                  **extra)
                tr = build_trainer(cfg, model=model, tokenizer=tok, train_dataset=ds)
                tr.args.disable_tqdm = True
                t = time.perf_counter()
                tr.train()
                secs.append((time.perf_counter() - t) / a.train_steps)
            m = evaluate_preferences(model, tok, test, ref_model=ref)
            accs.append(m["reward_accuracy"])
            likes.append(m["likelihood_accuracy"])
        rows[source] = {"reward_accuracy": accs, "likelihood_accuracy": likes, "sec_per_step": secs}
    n = len(test)
    print(f"held-out builtin:preference_pairs test ({n} pairs), builtin:tiny-reasoner, paper preset (KL + triplet), "
          f"{a.train_steps} steps x {a.batch} pairs, lr 5e-5, seeds 0..{a.seeds - 1}, 1 thread")
    print(f"{'importance':12s} {'reward acc (mean ± sd over seeds)':36s} {'likelihood acc':16s} {'s/step':>7s}")
    for source, r in rows.items():
        acc = r["reward_accuracy"]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(f"{source:12s} {statistics.mean(acc):.3f} ± {sd:.3f} {str([round(x, 2) for x in acc]):22s} "
              f"{statistics.mean(r['likelihood_accuracy']):.3f}{'':10s} {statistics.mean(r['sec_per_step']):7.3f}")
    p = statistics.mean(rows["gradient"]["reward_accuracy"])
    print(f"binomial s.e. of one accuracy on {n} pairs at p={p:.2f}: {((p * (1 - p)) / n) ** 0.5:.3f}")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"args": vars(a), "results": rows}, f, indent=1)


def main() -> None:
    a = _args()
    if a.only:
        _memory_child(a)
        return
    if a.accuracy:
        _accuracy(a)
        return
    import torch

    device, tok, data_name, trainers, batches, opts = _setup(a, list(VARIANTS))
    # Rounds interleave the variants, so load drift on a shared machine hits all of them alike.
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for r in range(a.steps + a.warmup):
        for name, tr in trainers.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = _step(tr, batches[name][r], opts[name])
            if r >= a.warmup:
                times[name].append(dt)
    # "total": time to run the same batches (throughput); batches differ in length and the anchor sampling has a
    # near-fixed cost, so a median step compares less well than the total over all of them
    results = {name: {"sec_per_step": statistics.median(t), "steps": len(t), "times": t,
                      "x_dpo_total": sum(t) / sum(times[BASE])}
               for name, t in times.items()}
    del trainers, batches, opts
    mem = _memory(a) if a.memory else {}
    base = results[BASE]["sec_per_step"]
    n_params = sum(p.numel() for p in _model(tok, a.hidden, a.layers, a.shape).parameters())
    print(f"device={device} threads={torch.get_num_threads()} shape={a.shape} params={n_params / 1e6:.2f}M "
          f"data={data_name} batch={a.batch} pairs, max_length={a.max_length}, anchor tokens={a.anchor_tokens}")
    head = f"{'variant':56s} {'s/step':>8s} {'x DPO':>7s} {'total':>7s}"
    if mem:
        head += f" {'peak MB':>9s} {'mem x DPO':>9s}"
    print(head)
    for name, r in results.items():
        r["x_dpo"] = r["sec_per_step"] / base
        line = f"{name:56s} {r['sec_per_step']:8.3f} {r['x_dpo']:7.2f} {r['x_dpo_total']:7.2f}"
        if mem:
            r["peak_mb"] = mem[name]["peak_mb"]
            r["mem_x_dpo"] = mem[name]["peak_mb"] / max(mem[BASE]["peak_mb"], 1e-9)
            line += f" {r['peak_mb']:9.1f} {r['mem_x_dpo']:9.2f}"
        print(line)
    if mem:
        print(f"memory: {mem[BASE]['method']}, first step of each variant in its own process")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"device": str(device), "params": n_params, "args": vars(a), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
