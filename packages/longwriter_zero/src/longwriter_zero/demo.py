"""Demo: LongWriter-Zero GRPO on a tiny model, the paper's advantage averaging beside verifier-gated rewards.

Uses a random-init ``rlcore.testing`` tiny Qwen2 (free text; ``builtin:tiny-reasoner`` writes arithmetic with
``</think>`` tags). The tiny model never learned the ``<answer>`` tags, so the demo counts the whole completion as the answer
(``untagged="whole"``), uses the bare ``<|user|>: … <|assistant|>:`` markers without the long preamble (a 500-token
preamble would dominate CPU time), and the verifier checks the length range only (``gate_format=False``).

Rewards: the Length RM, the Format RM, and a *verbosity-biased* stand-in for the writing RM (its score is the
answer's word count: the failure the verifier is there for, an RM that prefers longer text whatever was asked).
Two runs from the same initial policy, same seed and budget: ``reward_mode="average"`` (paper) and
``reward_mode="gated"`` (RLMR-style). Reported: the share of 64 fresh samples whose length lies in the requested
range, and their mean length reward, before and after each run. Every figure is computed by the run.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["run_demo", "VerbosityReward"]

_TEMPLATE = "<|user|>: {question} <|assistant|>:"
_RANGE = [4, 8]
LR = 2e-2
_QUESTIONS = [
    ("Write a short line about the sea.", _RANGE),
    ("Write a short line about a quick brown fox.", _RANGE),
    ("写一句关于大海的话。", _RANGE),
    ("Describe the kitchen and the garden briefly.", _RANGE),
]


class VerbosityReward:
    """A stand-in writing RM biased to length: the answer's word count (demo only)."""

    __name__ = "writing_reward"

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        from rlcore.rewards import completion_text

        from .length_reward import count_words

        return [float(count_words(completion_text(c))) for c in completions]


def _policy_path(tmp: Path) -> tuple[str, str]:
    # Not builtin:tiny-reasoner: it writes arithmetic with </think> tags, and a closed </think> makes the text after
    # it the answer, so its length says nothing about the writing. A random-init tiny Qwen2 writes free text.
    from rlcore.testing import save_tiny_causal_lm

    return save_tiny_causal_lm(tmp / "policy"), "a random-init rlcore.testing tiny Qwen2"


def _sample_stats(model_path: str, n_samples: int, max_new_tokens: int, seed: int) -> dict[str, float]:
    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.rollout import SamplingParams, make_generator

    from .length_reward import get_length_reward
    from .verifier import check_constraints

    model, tok = load_model_and_tokenizer(model_path, device="cpu")
    prompts = [_TEMPLATE.replace("{question}", q) for q, _ in _QUESTIONS]
    per_prompt = max(1, n_samples // len(prompts))
    outs = make_generator(model, tok).generate(
        prompts=prompts, params=SamplingParams(max_new_tokens=max_new_tokens, temperature=1.0, n=per_prompt),
        seeds=[seed + i for i in range(len(prompts))])
    texts = [c.text for group in outs for c in group]
    ranges = [rng for _, rng in _QUESTIONS for _ in range(per_prompt)]
    rewards = get_length_reward(untagged="whole")(prompts=[""] * len(texts), completions=texts, length_range=ranges)
    in_range = [check_constraints(t, r, untagged="whole", check_format_=False) for t, r in zip(texts, ranges)]
    return {"in_range": sum(in_range) / len(texts), "length_reward": sum(rewards) / len(rewards)}


def run_demo(quick: bool = False) -> dict[str, Any]:
    """Run both reward modes for a few GRPO steps; report in-range share and length reward before and after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a sub-million-parameter model runs fastest on one thread; more threads only contend
    try:
        return _run(quick)
    finally:
        torch.set_num_threads(threads)


def _train_one(policy: str, data: Path, out: Path, mode: str, steps: int, max_new: int) -> tuple[str, float, list]:
    from .config import TrainConfig
    from .format_reward import get_format_reward
    from .length_reward import get_length_reward
    from .train import train
    from .verifier import get_constraint_reward

    cfg = TrainConfig(model=policy, input=str(data), output_dir=str(out), template=_TEMPLATE, untagged="whole",
                      num_generations=8, per_device_train_batch_size=16, max_steps=steps, max_completion_length=max_new,
                      temperature=1.0, learning_rate=LR, beta=0.0, save_steps=0, device="cpu", seed=0,
                      reward_mode=mode, gate_format=False)
    funcs = [get_length_reward(untagged="whole"), VerbosityReward(), get_format_reward(think=True)]
    weights = [1.0, 1.0, 1.0]
    if mode == "gated":
        funcs.append(get_constraint_reward(untagged="whole", check_format_=False))
        weights.append(0.0)
    t0 = time.perf_counter()
    res = train(cfg, reward_funcs=funcs, reward_weights=weights)
    logged = [h["rewards/length_reward/mean"] for h in res["log_history"] if "rewards/length_reward/mean" in h]
    return res["final_model"], time.perf_counter() - t0, logged


def _run(quick: bool) -> dict[str, Any]:
    steps = 4 if quick else 12
    max_new = 16
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        policy, policy_name = _policy_path(tmp)
        data = tmp / "prompts.jsonl"
        data.write_text("".join(json.dumps({"question": q, "length_range": r}, ensure_ascii=False) + "\n"
                                for q, r in _QUESTIONS), encoding="utf-8")
        before = _sample_stats(policy, 64, max_new, seed=1)
        rows: dict[str, dict[str, Any]] = {}
        for mode in ("average", "gated"):
            final, secs, logged = _train_one(policy, data, tmp / mode, mode, steps, max_new)
            after = _sample_stats(final, 64, max_new, seed=1)
            rows[mode] = {"in_range_after": after["in_range"], "length_reward_after": after["length_reward"],
                          "train_seconds": secs, "logged_length_reward_per_step": logged}
    avg, gated = rows["average"], rows["gated"]
    return {
        "what": (f"LongWriter-Zero GRPO ({steps} steps, G=8; Length + Format RMs + a verbosity-biased writing RM) on "
                 f"{policy_name}: advantage averaging (paper) vs verifier-gated"),
        "headline": (f"in-range share {before['in_range']:.2f} -> averaging {avg['in_range_after']:.2f}, "
                     f"gated {gated['in_range_after']:.2f} after {steps} steps"),
        "metrics": {"steps": steps, "range": _RANGE, "in_range_before": before["in_range"],
                    "length_reward_before": before["length_reward"], "average": avg, "gated": gated},
    }
