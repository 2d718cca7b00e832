"""Demo: a short LongWriter-Zero GRPO run on a tiny model; the mean Length-RM reward before and after.

Uses ``builtin:tiny-reasoner`` when it is installed, else a random-init ``rlcore.testing`` tiny Qwen2. The tiny
model never learned the ``<answer>`` tags, so the demo counts the whole completion as the answer
(``untagged="whole"``) and uses the bare ``<|user|>: … <|assistant|>:`` markers without the long preamble (a 500-token
preamble would dominate CPU time). Rewards: Length RM + Format RM (no Writing RM: none is shipped), combined by
advantage averaging. "Before"/"after" are the mean length reward of fresh samples from the initial and the trained
policy on the same prompts (64 samples each, same seed).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["run_demo"]

_TEMPLATE = "<|user|>: {question} <|assistant|>:"
_QUESTIONS = [
    ("Write a long story about the sea.", [12, 16]),
    ("Write an essay about a quick brown fox.", [12, 16]),
    ("写一篇关于大海的文章。", [12, 16]),
    ("Describe the kitchen and the garden.", [12, 16]),
]


def _policy_path(tmp: Path) -> tuple[str, str]:
    from rlcore.builtins import list_builtins

    if "tiny-reasoner" in list_builtins():
        return "builtin:tiny-reasoner", "builtin:tiny-reasoner"
    from rlcore.testing import save_tiny_causal_lm

    return save_tiny_causal_lm(tmp / "policy"), "rlcore.testing tiny Qwen2 (random init; tiny-reasoner not installed)"


def _mean_length_reward(model_path: str, n_samples: int, max_new_tokens: int, seed: int) -> float:
    import torch
    from rlcore.builtins import load_model_and_tokenizer

    from .length_reward import get_length_reward
    from .prompts import build_prompt

    model, tok = load_model_and_tokenizer(model_path, device="cpu")
    reward = get_length_reward(untagged="whole")
    prompts = [build_prompt(q, template=_TEMPLATE) for q, _ in _QUESTIONS]
    per_prompt = max(1, n_samples // len(prompts))
    enc = tok(prompts, return_tensors="pt", padding=True)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=True, temperature=1.0, top_k=0,
                             num_return_sequences=per_prompt, pad_token_id=tok.pad_token_id)
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    ranges = [rng for _, rng in _QUESTIONS for _ in range(per_prompt)]
    values = reward(prompts=[""] * len(texts), completions=texts, length_range=ranges)
    return float(sum(values) / len(values))


def run_demo(quick: bool = False) -> dict[str, Any]:
    """Run GRPO for a few steps and report the mean length reward before and after (computed)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 100k-parameter model runs fastest on one thread; more threads only contend
    try:
        return _run(quick)
    finally:
        torch.set_num_threads(threads)


def _run(quick: bool) -> dict[str, Any]:
    from .config import TrainConfig
    from .train import train

    steps = 4 if quick else 12
    max_new = 16
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        policy, policy_name = _policy_path(tmp)
        data = tmp / "prompts.jsonl"
        data.write_text("".join(json.dumps({"question": q, "length_range": r}, ensure_ascii=False) + "\n"
                                for q, r in _QUESTIONS), encoding="utf-8")
        before = _mean_length_reward(policy, 64, max_new, seed=1)
        t0 = time.perf_counter()
        cfg = TrainConfig(model=policy, dataset=str(data), output_dir=str(tmp / "run"), template=_TEMPLATE,
                          untagged="whole", num_generations=8, per_device_train_batch_size=16, max_steps=steps,
                          max_completion_length=max_new, temperature=1.0, learning_rate=2e-2, beta=0.0,
                          save_steps=0, device="cpu", seed=0)
        res = train(cfg)
        train_s = time.perf_counter() - t0
        after = _mean_length_reward(res["final_model"], 64, max_new, seed=1)
    logged = [h["rewards/length_reward/mean"] for h in res["log_history"] if "rewards/length_reward/mean" in h]
    return {
        "what": f"LongWriter-Zero GRPO ({steps} steps, G=8, Length+Format RMs, advantage averaging) on {policy_name}",
        "headline": f"mean length reward {before:.3f} -> {after:.3f} after {steps} GRPO steps ({train_s:.0f} s on CPU)",
        "metrics": {"length_reward_before": before, "length_reward_after": after, "steps": steps,
                    "train_seconds": train_s, "logged_length_reward_per_step": logged},
    }
