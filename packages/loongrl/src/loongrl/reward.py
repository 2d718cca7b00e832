r"""The two-way substring exact-match reward ("sub_em") on the last ``\boxed{}`` after the last ``</think>``.

Decision on the empty-prediction case: the official check ``pred in gold`` is true for a prediction that normalises
to ``""`` (e.g. ``\boxed{The}``), so it scores 1. We score it 0 by default, since a policy could otherwise learn to
box an article; ``credit_empty_prediction=True`` restores the official behaviour.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rlcore.rewards import completion_text, extract_boxed, normalize_answer

__all__ = ["extract_final_answer", "compute_sub_em", "compute_f1", "get_sub_em_reward", "SubEMReward"]

_BOXED_SPACE = re.compile(r"\\boxed ([^$\n]*)")


def extract_final_answer(response: str) -> str | None:
    r"""The prediction: the last ``\boxed{...}``/``\fbox{...}`` (brace matched) after the last ``</think>``.

    ``*`` characters are stripped first; the ``\boxed answer`` form (no braces, up to ``$`` or end of line) is
    also accepted. Returns ``None`` without ``</think>`` or without a box.

    Example:
        >>> extract_final_answer(r"<think>\boxed{x}</think> so \boxed{**Paris**}")
        'Paris'
        >>> extract_final_answer(r"\boxed{Paris}") is None
        True
    """
    if "</think>" not in response:
        return None
    tail = response.rsplit("</think>", 1)[1].replace("*", "")
    braced_at = max(tail.rfind("\\boxed{"), tail.rfind("\\fbox{"))
    spaced = list(_BOXED_SPACE.finditer(tail))
    if spaced and spaced[-1].start() > braced_at:
        return spaced[-1].group(1).strip()
    if braced_at < 0:
        return None
    return extract_boxed(tail[braced_at:])


def compute_sub_em(prediction: str | None, golds: Sequence[str], credit_empty_prediction: bool = False) -> float:
    r"""Two-way substring match: :math:`r = \max_g \mathbb{1}[\bar g \subseteq \bar p \lor \bar p \subseteq \bar g]`.

    :math:`\bar x` is the SQuAD-normalised text. A missing prediction scores 0; one that normalises to ``""``
    scores 0 unless ``credit_empty_prediction`` (the official code scores it 1).

    Example:
        >>> compute_sub_em("the Eiffel Tower", ["Eiffel Tower in Paris"])
        1.0
        >>> compute_sub_em("Tower of London", ["Eiffel Tower"])
        0.0
    """
    if prediction is None:
        return 0.0
    pred = normalize_answer(prediction)
    if not pred and not credit_empty_prediction:
        return 0.0
    for gold in golds:
        g = normalize_answer(gold)
        if g in pred or pred in g:
            return 1.0
    return 0.0


def compute_f1(prediction: str | None, golds: Sequence[str]) -> float:
    """SQuAD token F1 between normalised prediction and gold, max over golds (0 for a missing prediction).

    Example:
        >>> round(compute_f1("new york city", ["new york"]), 4)  # P=2/3, R=1 -> F1=0.8
        0.8
    """
    if prediction is None:
        return 0.0
    p = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        g = normalize_answer(gold).split()
        common = sum((Counter(p) & Counter(g)).values())
        if common:
            prec, rec = common / len(p), common / len(g)
            best = max(best, 2 * prec * rec / (prec + rec))
    return best


class SubEMReward:
    """TRL reward: ``fn(prompts, completions, answers, **kw) -> list[float]`` (one sub-EM value per completion)."""

    __name__ = "sub_em"

    def __init__(self, credit_empty_prediction: bool = False):
        self.credit_empty_prediction = credit_empty_prediction

    def __call__(self, prompts: list, completions: list, answers: list[Sequence[str]] | None = None,
                 **kwargs: Any) -> list[float | None]:
        if answers is None:
            raise ValueError("sub_em reward needs an 'answers' column (a list of gold strings per row)")
        if len(answers) != len(completions):
            raise ValueError(f"sub_em reward: {len(answers)} answers for {len(completions)} completions")
        out: list[float | None] = []
        for c, golds in zip(completions, answers):
            golds = [golds] if isinstance(golds, str) else list(golds)
            out.append(compute_sub_em(extract_final_answer(completion_text(c)), golds, self.credit_empty_prediction))
        return out


def get_sub_em_reward(credit_empty_prediction: bool = False) -> SubEMReward:
    r"""The sub-EM reward for ``GRPOTrainer`` (picklable, ``__name__ == "sub_em"``).

    Example:
        >>> r = get_sub_em_reward()
        >>> r(prompts=["q"], completions=[r"<think>t</think>\boxed{Paris}"], answers=[["paris"]])
        [1.0]
    """
    return SubEMReward(credit_empty_prediction)
