"""Constraint verifier for verifier-gated writing rewards (beyond the paper; RLMR, arXiv 2508.18642).

A writing RM alone is gamed by length and padding. RLMR pairs the quality reward with a hard verifier of the
request's constraints: an output that violates them is ranked below every compliant member of its group, whatever
its RM score. Here the constraints are the two LongWriter-Zero already checks:

- *length*: the answer's word count lies in the row's ``length_range`` (rows with ``[0, 0]``, no range, pass);
- *format*: one ``<think>`` block then one ``<answer>`` block (:func:`longwriter_zero.format_reward.check_format`).

:class:`ConstraintReward` exposes the verdict as a TRL reward (1.0 compliant, 0.0 violating), so TRL logs the
compliance rate; ``LongWriterGRPOTrainer(reward_mode="gated")`` reads that column to gate the advantages
(:func:`longwriter_zero.advantage.compute_gated_advantages`) and gives it no weight in the average.
"""

from __future__ import annotations

from typing import Any

from rlcore.rewards import completion_text

from .format_reward import check_format
from .length_reward import count_words, parse_length_range
from .prompts import extract_answer

__all__ = ["check_constraints", "ConstraintReward", "get_constraint_reward"]


def check_constraints(text: str, length_range: Any = None, think: bool = True, untagged: str = "none",
                      check_format_: bool = True) -> bool:
    """Whether a completion satisfies the length range (if any) and, if ``check_format_``, the format.

    Total: any string gives a bool; an unusable ``length_range`` (not ``[lower, upper]``) counts as no range.

    Example:
        >>> check_constraints("<think>p</think><answer>one two three", [2, 4])
        True
        >>> check_constraints("<think>p</think><answer>one", [2, 4]), check_constraints("one two three", [2, 4])
        (False, False)
    """
    if check_format_ and not check_format(text, think):
        return False
    try:
        lo, hi = parse_length_range(length_range) if length_range is not None else (0, 0)
    except ValueError:
        lo, hi = 0, 0
    if hi == 0:
        return True
    answer = extract_answer(text, untagged)
    return answer is not None and lo <= count_words(answer) <= hi


class ConstraintReward:
    """TRL reward: 1.0 when :func:`check_constraints` holds, else 0.0 (``__name__ == "constraint_reward"``)."""

    def __init__(self, column: str = "length_range", think: bool = True, untagged: str = "none",
                 check_format_: bool = True):
        extract_answer("", untagged)  # validates ``untagged``
        self.column, self.think, self.untagged, self.check_format_ = column, think, untagged, check_format_
        self.__name__ = "constraint_reward"

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        ranges = kwargs.get(self.column) or [None] * len(completions)
        return [float(check_constraints(completion_text(c), r, self.think, self.untagged, self.check_format_))
                for c, r in zip(completions, ranges, strict=True)]


def get_constraint_reward(column: str = "length_range", think: bool = True, untagged: str = "none",
                          check_format_: bool = True) -> ConstraintReward:
    """Factory for :class:`ConstraintReward` (picklable).

    Example:
        >>> f = get_constraint_reward()
        >>> f(prompts=["q", "q"], completions=["<think>t</think><answer>a b", "a b"], length_range=[[1, 3], [1, 3]])
        [1.0, 0.0]
    """
    return ConstraintReward(column, think, untagged, check_format_)
