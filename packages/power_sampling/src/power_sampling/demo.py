"""End-to-end demo: power sampling vs low-temperature vs standard sampling.

With ``builtin:tiny-reasoner`` installed: accuracy of the three methods on held-out problems of the built-in
arithmetic set (``builtin:arithmetic`` test split), through :func:`power_sampling.evaluation.run_eval`. Without
it: the distribution-level check on an enumerable toy LM (:class:`rlcore.testing.TableLM`), i.e. how close each
method's samples come to the exact normalised p^alpha.
"""

from __future__ import annotations

import collections
import time
from typing import Any

__all__ = ["run_demo"]


def _tiny_reasoner_demo(quick: bool, model_ref: str = "builtin:tiny-reasoner") -> dict[str, Any]:
    import torch
    from rlcore.builtins import load_model_and_tokenizer, resolve

    from .evaluation import load_problems, run_eval, summarize
    from .power_sampler import PowerSampler

    model, tok = load_model_and_tokenizer(model_ref, device="cpu", dtype="fp32")
    data = f"{resolve('builtin:arithmetic')}/test.jsonl"
    problems = [p for p in load_problems("arith", data) if int(p.get("steps", 1)) >= 2]  # multi-step: harder
    problems = problems[: 6 if quick else 16]
    kw = dict(alpha=4.0, block_size=16, mcmc_steps=2 if quick else 4, max_new_tokens=64, seed=0)
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny model: one thread is fastest on a shared CPU
    try:
        t0 = time.perf_counter()
        rows = run_eval(lambda o: PowerSampler(model, tok, **{**kw, **o}), "arith", problems,
                        ["power", "smc", "low_temp", "base"], tok, num_samples=2, batch_size=len(problems))
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(n_threads)
    s = summarize(rows)
    acc = {m: round(v["accuracy"], 3) for m, v in s.items()}
    return {
        "what": f"power sampling by MH (alpha=4, B=16, N_MCMC={kw['mcmc_steps']}, T=64) and by SMC (8 particles) vs "
                f"low-temperature (tau=1/4) vs "
                f"standard sampling on {len(problems)} held-out multi-step builtin:arithmetic problems x 2 samples, "
                f"{model_ref}",
        "headline": f"accuracy power MH {acc['power']:.3f} / SMC {acc['smc']:.3f} / low-temp {acc['low_temp']:.3f} / "
                    f"base {acc['base']:.3f}; "
                    f"power used {s['power']['mean_tokens_generated'] / max(s['base']['mean_tokens_generated'], 1):.1f}x "
                    "the tokens of standard sampling",
        "metrics": {"accuracy": acc, "summary": s, "seconds": round(seconds, 1)},
    }


def _toy_demo(quick: bool) -> dict[str, Any]:
    import torch
    from rlcore.testing import TableLM

    from .power_distribution import compute_power_distribution, compute_total_variation, enumerate_sequences
    from .power_sampler import PowerSampler

    alpha, T = 4.0, 4
    lm = TableLM(vocab_size=3, max_len=8, seed=0, sharpness=1.5)
    en = enumerate_sequences(lm, [0], T, None, temperature=1 / alpha)
    seqs = list(en)
    pi = dict(zip(seqs, compute_power_distribution(torch.tensor([en[s][0] for s in seqs]), alpha).tolist()))
    chains = 1000 if quick else 4000
    tv, loglik = {}, {}
    for name, kw in {"power": dict(mcmc_steps=16), "low_temp": dict(mcmc_steps=0),
                     "base": dict(mcmc_steps=0, alpha=1.0, proposal_temperature=1.0)}.items():
        kw = {"alpha": alpha, "block_size": 2, "max_new_tokens": T, "eos_token_id": None, "seed": 0, **kw}
        out = PowerSampler(lm, **kw).sample(input_ids=[[0]], num_chains=chains)
        counts = collections.Counter(tuple(o.token_ids) for o in out)
        tv[name] = round(compute_total_variation({k: v / chains for k, v in counts.items()}, pi), 4)
        loglik[name] = round(sum(o.logprob for o in out) / chains, 3)
    return {
        "what": f"toy check on an enumerable TableLM ({len(seqs)} sequences, alpha=4, B=2, T=4, {chains} chains); "
                "builtin:tiny-reasoner not installed, so no accuracy comparison",
        "headline": f"TV to exact p^alpha: power {tv['power']} vs low-temp {tv['low_temp']} vs base {tv['base']}",
        "metrics": {"tv_to_power_distribution": tv, "mean_logprob": loglik},
    }


def run_demo(quick: bool = False) -> dict[str, Any]:
    """Run the demo (about 60 s; ``quick``: about 15 s) and return ``{"what", "headline", "metrics"}``."""
    from rlcore.builtins import list_builtins

    if "tiny-reasoner" in list_builtins():
        return _tiny_reasoner_demo(quick)
    return _toy_demo(quick)
