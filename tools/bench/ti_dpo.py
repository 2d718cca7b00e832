"""Seconds per training step: TIDPOTrainer vs trl's DPOTrainer on the same model, data and batch, in one run.

Variants: plain DPO (sigmoid); TI-DPO weights only (alpha_KL 0, gamma 0: the cost of the attribution pass);
TI-DPO with the TDPO2 KL (alpha_KL 0.5, gamma 0: no triplet); full TI-DPO (alpha_KL 0.5, gamma 0.1: + anchor
sampling and scoring). Each round runs one step (forward, backward, AdamW update, same batch contents) of every variant in turn;
the first `--warmup` rounds are not timed; the median over rounds is reported.

    uv run --no-sync python tools/bench/ti_dpo.py --steps 6 --hidden 128 --layers 4
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


def _model(tok, hidden: int, layers: int):
    from rlcore.testing import tiny_causal_lm

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
    t = time.perf_counter()
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=1, help="untimed first steps per variant")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4, help="pairs per step")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--anchor-tokens", type=int, default=32, help="anchor_max_new_tokens for the triplet variant")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: leave as is)")
    ap.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    ap.add_argument("--json-out", default="", help="also write the results here")
    a = ap.parse_args()

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
    common = dict(use_cpu=device.type == "cpu", bf16=False, report_to="none", per_device_train_batch_size=a.batch,
                  save_strategy="no", activation_checkpointing=False, max_length=a.max_length, logging_steps=10**6,
                  learning_rate=1e-5, seed=0, disable_tqdm=True)
    variants = {
        "dpo (trl DPOTrainer, sigmoid)": None,
        "ti-dpo weights only (alpha_kl 0, gamma 0)": dict(alpha_kl=0.0, gamma=0.0),
        "ti-dpo + TDPO2 KL, no triplet (alpha_kl 0.5, gamma 0)": dict(alpha_kl=0.5, gamma=0.0),
        "ti-dpo full, with triplet (alpha_kl 0.5, gamma 0.1)": dict(alpha_kl=0.5, gamma=0.1,
                                                                     anchor_max_new_tokens=a.anchor_tokens),
    }
    trainers, batches, opts = {}, {}, {}
    with tempfile.TemporaryDirectory() as out:
        for name, ti in variants.items():
            model, ref = _model(tok, a.hidden, a.layers).to(device), _model(tok, a.hidden, a.layers).to(device)
            if ti is None:
                tr = DPOTrainer(model=model, ref_model=ref, processing_class=tok, train_dataset=ds,
                                args=DPOConfig(output_dir=out, **common))
            else:
                tr = TIDPOTrainer(model=model, ref_model=ref, processing_class=tok, train_dataset=ds,
                                  args=TIDPOConfig(output_dir=out, **common, **ti))
            trainers[name] = tr
            opts[name] = torch.optim.AdamW(tr.model.parameters(), lr=1e-5)
            rows = [tr.train_dataset[i] for i in range(len(tr.train_dataset))]
            batches[name] = [
                {k: v.to(device) for k, v in tr.data_collator(rows[i * a.batch:(i + 1) * a.batch]).items()}
                for i in range(a.steps + a.warmup)
            ]
        # Rounds interleave the variants, so load drift on a shared machine hits all of them alike.
        times: dict[str, list[float]] = {name: [] for name in variants}
        for r in range(a.steps + a.warmup):
            for name, tr in trainers.items():
                dt = _step(tr, batches[name][r], opts[name])
                if r >= a.warmup:
                    times[name].append(dt)
    results = {name: {"sec_per_step": statistics.median(t), "steps": len(t)} for name, t in times.items()}
    base = results["dpo (trl DPOTrainer, sigmoid)"]["sec_per_step"]
    n_params = sum(p.numel() for p in _model(tok, a.hidden, a.layers).parameters())
    print(f"device={device} threads={torch.get_num_threads()} params={n_params / 1e6:.2f}M data={data_name} "
          f"batch={a.batch} pairs, max_length={a.max_length}")
    print(f"{'variant':58s} {'s/step':>8s} {'x DPO':>7s}")
    for name, r in results.items():
        r["x_dpo"] = r["sec_per_step"] / base
        print(f"{name:58s} {r['sec_per_step']:8.3f} {r['x_dpo']:7.2f}")
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"device": str(device), "params": n_params, "args": vars(a), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
