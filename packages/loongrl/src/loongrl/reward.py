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

__all__ = ["extract_final_answer", "compute_sub_em", "compute_f1", "compute_exact_match", "compute_math_match",
           "reward_kind", "score_response", "get_sub_em_reward", "SubEMReward", "LoongRLReward", "get_loongrl_reward",
           "REWARD_KINDS"]

REWARD_KINDS = ("qa", "needle", "math")
MAX_ANSWER_CHARS = 512  # longer predictions / golds are not parsed as math (they still get an exact-string check)

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
    if not isinstance(response, str) or "</think>" not in response:
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
    if not isinstance(prediction, str):
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
    if not isinstance(prediction, str):
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

def compute_exact_match(prediction: str | None, golds: Sequence[str]) -> float:
    """1 if the SQuAD-normalised prediction equals some normalised gold (needle retrieval, NIAH), else 0.

    Example:
        >>> compute_exact_match("1", ["1234567"]), compute_exact_match(" 1234567.", ["1234567"])
        (0.0, 1.0)
    """
    if not isinstance(prediction, str):
        return 0.0
    pred = normalize_answer(prediction)
    return float(bool(pred) and any(pred == normalize_answer(g) for g in golds if isinstance(g, str)))


def _math_parse(text: str) -> list:
    from math_verify import parse

    # LaTeX extraction only: math-verify's plain-expression extractor goes through sympy's parse_expr (an eval)
    return parse("\\boxed{" + text + "}", extraction_config=[_LATEX], parsing_timeout=None)


_LATEX = None


def compute_math_match(prediction: str | None, golds: Sequence[str]) -> float:
    r"""Math verifier for math rows.

    math-verify equivalence of ``\boxed{pred}`` and ``\boxed{gold}`` (LaTeX parser only, never an eval), after
    an exact normalised-string check. Never raises; long inputs skip the parser.

    Example:
        >>> compute_math_match("0.5", [r"\frac{1}{2}"]), compute_math_match("2", [r"\frac{1}{2}"])
        (1.0, 0.0)
    """
    global _LATEX
    if not isinstance(prediction, str) or not prediction.strip():
        return 0.0
    golds = [g for g in golds if isinstance(g, str)]
    p = "".join(prediction.split())
    if any(p and p == "".join(g.split()) for g in golds):
        return 1.0
    if len(prediction) > MAX_ANSWER_CHARS:
        return 0.0
    try:
        import logging

        from math_verify import LatexExtractionConfig, verify

        logging.getLogger("math_verify").setLevel(logging.ERROR)
        if _LATEX is None:
            _LATEX = LatexExtractionConfig(boxed_match_priority=0)
        target = _math_parse(prediction)
        if not target:
            return 0.0
        for g in golds:
            if len(g) <= MAX_ANSWER_CHARS:
                gold = _math_parse(g)
                if gold and verify(gold, target, timeout_seconds=None):
                    return 1.0
    except Exception:  # noqa: BLE001 - a grader is total: any parser failure is a wrong answer
        return 0.0
    return 0.0


def reward_kind(data_source: str | None) -> str:
    """Which verifier a row's ``data_source`` gets.

    ``"qa"`` (two-way sub-EM), ``"needle"`` (exact match) or ``"math"`` (math-verify).

    Our kinds are accepted as is; official verl names are routed by pattern: ``custom_longcontext*`` (KeyChain and
    plain multi-hop QA) -> qa; names with ``math``/``dapo``/``gsm8k``/``aime`` -> math; ``needle``/``niah``
    without ``_qa`` -> needle; anything else (or none) -> qa.

    Example:
        >>> [reward_kind(s) for s in ("custom_longcontext_needle_qa_x", "math_dapo", "needle", None)]
        ['qa', 'math', 'needle', 'qa']
    """
    if not isinstance(data_source, str) or not data_source:
        return "qa"
    s = data_source.lower()
    if s in REWARD_KINDS:
        return s
    if s.startswith("custom_longcontext"):
        return "qa"
    if any(k in s for k in ("math", "dapo", "gsm8k", "aime")):
        return "math"
    if ("needle" in s or "niah" in s) and "_qa" not in s:
        return "needle"
    return "qa"


def score_response(response: str, golds: Sequence[str], kind: str = "qa", credit_empty_prediction: bool = False) -> float:
    r"""Reward of one response: the final ``\boxed{}`` after ``</think>`` scored by the verifier of ``kind``.

    Example:
        >>> r = r"<think>t</think>\boxed{2024}"
        >>> score_response(r, ["2"], "qa"), score_response(r, ["2"], "math"), score_response(r, ["2"], "needle")
        (1.0, 0.0, 0.0)
    """
    pred = extract_final_answer(response)
    if kind == "math":
        return compute_math_match(pred, golds)
    if kind == "needle":
        return compute_exact_match(pred, golds)
    return compute_sub_em(pred, golds, credit_empty_prediction)


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


def _golds(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [g for g in value if isinstance(g, str)]
    return []


class LoongRLReward:
    """TRL reward routed by data source.

    math-verify for math rows, exact match for needle rows, two-way sub-EM for QA rows (KeyChain and plain
    multi-hop). Reads the ``answers`` and ``data_source`` columns.
    """

    __name__ = "loongrl"

    def __init__(self, credit_empty_prediction: bool = False):
        self.credit_empty_prediction = credit_empty_prediction

    def __call__(self, prompts: list, completions: list, answers: list | None = None,
                 data_source: list | None = None, **kwargs: Any) -> list[float | None]:
        if answers is None:
            raise ValueError("loongrl reward needs an 'answers' column (a list of gold strings per row)")
        if len(answers) != len(completions):
            raise ValueError(f"loongrl reward: {len(answers)} answers for {len(completions)} completions")
        sources = data_source if data_source is not None else [None] * len(completions)
        return [score_response(completion_text(c), _golds(g), reward_kind(s), self.credit_empty_prediction)
                for c, g, s in zip(completions, answers, sources)]


def get_loongrl_reward(credit_empty_prediction: bool = False) -> LoongRLReward:
    r"""The data-source-routed reward for ``GRPOTrainer`` (picklable, ``__name__ == "loongrl"``).

    Example:
        >>> r = get_loongrl_reward()
        >>> r([""] * 2, [r"<think>t</think>\boxed{2024}"] * 2, answers=[["2"]] * 2, data_source=["qa", "math"])
        [1.0, 0.0]
    """
    return LoongRLReward(credit_empty_prediction)
