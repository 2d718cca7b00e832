r"""GRPO-PTR rewards in TRL's signature: ``fn(prompts, completions, **columns) -> list[float | None]``.

``format_reward`` + ``accuracy_reward`` + ``get_ptr_reasoning_reward(...)`` summed with weight 1 each give the
PTR total :math:`r^{fmt} + r^{out} + w_t \tau r^{rsn}`. The reasoning reward is group-aware: it assumes TRL's
layout (each prompt's ``group_size`` completions contiguous) and reads the step from ``trainer_state``.
"""

from __future__ import annotations

from typing import Any

import torch
from rlcore.rewards import completion_text, extract_think_answer

from .config import PTRConfig
from .judge import Judge, check_judge_score, get_judge
from .policy import normalize_label, parse_answer
from .ptr import compute_judge_mask, compute_ptr_rewards, compute_ptr_weight

__all__ = ["is_think_answer_format", "format_reward", "accuracy_reward", "PTRReasoningReward", "get_ptr_reasoning_reward"]

def is_think_answer_format(text: str) -> bool:
    r"""Whether ``text`` is ``<think>A</think>\s*<answer>B</answer>`` with whitespace around (any A, B).

    The R1 regex ``^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$`` (DOTALL) backtracks quadratically on long
    inputs; this is the same language decided in linear time: after stripping, the text opens with ``<think>``,
    closes with ``</answer>``, and somewhere between them a ``</think>`` is followed (after optional whitespace)
    by ``<answer>``. Whitespace runs after different ``</think>`` occurrences are disjoint, so the scan is linear.

    Example:
        >>> is_think_answer_format(" <think>a</think>\n<answer>b</answer> "), is_think_answer_format("<answer>b</answer>")
        (True, False)
    """
    s = text.strip()
    if not (s.startswith(_THINK) and s.endswith(_ANSWER_END)) or len(s) < len(_THINK) + len(_ANSWER_END):
        return False
    core = s[len(_THINK): len(s) - len(_ANSWER_END)]
    i = core.find(_THINK_END)
    while i >= 0:
        j = i + len(_THINK_END)
        while j < len(core) and core[j].isspace():
            j += 1
        if core.startswith(_ANSWER, j):
            return True
        i = core.find(_THINK_END, i + 1)
    return False


_THINK, _THINK_END, _ANSWER, _ANSWER_END = "<think>", "</think>", "<answer>", "</answer>"


def format_reward(prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
    """1.0 when the completion is exactly ``<think>...</think><answer>...</answer>`` (whitespace around), else 0.

    Total and linear: any string (or chat message list) gives 0.0 or 1.0.

    Example:
        >>> format_reward(None, ["<think>low energy</think> <answer>sad</answer>", "sad"])
        [1.0, 0.0]
    """
    return [1.0 if is_think_answer_format(completion_text(c)) else 0.0 for c in completions]


def accuracy_reward(prompts: list, completions: list, emotion: list[str], **kwargs: Any) -> list[float | None]:
    """1.0 when the last ``<answer>`` label equals the ``emotion`` column (both normalised), else 0.

    Raises:
        ValueError: a ground-truth ``emotion`` that is not one of the nine labels (index named).

    Example:
        >>> accuracy_reward(None, ["<answer>Contempt or disgust</answer>", "<answer>sad"], ["disgust", "happy"])
        [1.0, 0.0]
    """
    out: list[float | None] = []
    for i, (c, gold) in enumerate(zip(completions, emotion, strict=True)):
        g = normalize_label(gold)
        if g is None:
            raise ValueError(f"accuracy_reward: emotion {gold!r} at index {i} is not one of the nine labels")
        out.append(1.0 if parse_answer(completion_text(c)) == g else 0.0)
    return out


class PTRReasoningReward:
    r"""The gated, trust-weighted, scheduled reasoning term :math:`w_t \tau_g r^{rsn}_i` (picklable).

    After each call, ``last_stats`` holds ``weight``, ``tau_mean``, ``judge_calls`` and ``judged_mean``.
    """

    def __init__(self, judge: Judge | str, config: PTRConfig | None = None, group_size: int = 4):
        self.config = config or PTRConfig()
        self.judge_name = judge if isinstance(judge, str) else getattr(judge, "__name__", type(judge).__name__)
        self.judge = get_judge(judge) if isinstance(judge, str) else judge
        self.group_size = group_size
        self.__name__ = "ptr_reasoning_reward"
        self.last_stats: dict[str, float] = {}
        self.total_judge_calls = 0

    def __call__(self, prompts: list, completions: list, emotion: list[str], trainer_state: Any = None,
                 **columns: Any) -> list[float | None]:
        c = self.config
        n = len(completions)
        if n % self.group_size:
            raise ValueError(f"{self.__name__}: {n} completions is not a multiple of group_size={self.group_size}")
        step = int(getattr(trainer_state, "global_step", 0) or 0)
        weight = compute_ptr_weight(step, c.schedule, c.w_max, c.t0, c.t1, c.anneal_alpha, c.anneal_T)
        answer = torch.tensor(accuracy_reward(prompts, completions, emotion))  # (B,)
        mask = compute_judge_mask(answer, self.group_size, weight, c.gate_uniform_groups, c.uniform_high,
                                  c.uniform_low, c.judge_min_answer)  # (B,)
        reason = torch.zeros(n)
        for i in torch.nonzero(mask).flatten().tolist():
            text = completion_text(completions[i])
            think, ans = extract_think_answer(text)
            if think is None:  # no <think> tag: the trace is whatever precedes the answer
                think = text.split("<answer>", 1)[0]
            record = {k: v[i] for k, v in columns.items() if isinstance(v, list) and len(v) == n}
            record["emotion"] = emotion[i]
            score = self.judge(think, parse_answer(text) or ans, record)
            reason[i] = check_judge_score(self.judge_name, score)
        zeros = torch.zeros(n)
        term, tau = compute_ptr_rewards(zeros, answer, reason, mask, self.group_size, weight, c.use_trust,
                                        c.correct_threshold, format_weight=0.0, outcome_weight=0.0)
        calls = int(mask.sum())
        self.total_judge_calls += calls
        self.last_stats = {"weight": weight, "tau_mean": float(tau.mean()), "judge_calls": calls,
                           "judged_mean": float(reason[mask].mean()) if calls else 0.0}
        return term.tolist()


def get_ptr_reasoning_reward(judge: Judge | str = "prosody-rubric", config: PTRConfig | None = None,
                             group_size: int = 4) -> PTRReasoningReward:
    """Factory for :class:`PTRReasoningReward` (TRL style: a picklable callable with ``__name__``)."""
    return PTRReasoningReward(judge, config, group_size)
