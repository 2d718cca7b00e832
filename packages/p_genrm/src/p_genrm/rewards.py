"""Stage-2/3 rewards in TRL's signature: rule-based outcome reward and a process reward with a pluggable judge.

Stage 2 (CRE) optimises ``alpha * R_process + beta * R_outcome``: pass both functions to ``GRPOTrainer`` with
``reward_weights=[alpha, beta]`` (TRL sums weighted rewards). The paper's process judge is an LLM that rates how
well the chain covers the user's stated criteria; any callable ``judge(query, stated_criteria, chain) -> [0, 1]``
plugs in, and :class:`CriteriaCoverageJudge` is a deterministic lexical default.
"""

from __future__ import annotations

import re
from typing import Any

from rlcore.rewards import completion_text

from .chain_parser import try_parse_chain

__all__ = ["compute_outcome_reward", "get_outcome_reward", "get_process_reward", "CriteriaCoverageJudge"]

_WORD = re.compile(r"[a-z][a-z\-]{2,}")
_STOP = frozenset("the and for are but not you your with that this from have has was were its they them what when "
                  "how who will would should could about into than then very more most less much some any all".split())


def compute_outcome_reward(chain: str, gold: int, strict_arithmetic: bool = False) -> float:
    """``R_outcome = 1`` if the chain parses and its final scores prefer displayed response ``gold`` (0/1), else 0.

    A tie or an unparsable chain earns 0 (it did not pick the user's response). Total: any text gives 0 or 1.

    Example:
        >>> from p_genrm.evaluation_chain import render_chain
        >>> compute_outcome_reward(render_chain("a", [("x", 100, 7, 3)]), gold=0)
        1.0
        >>> compute_outcome_reward("no chain", gold=0)
        0.0
    """
    p = try_parse_chain(chain, strict_arithmetic=strict_arithmetic)
    if p is None:
        return 0.0
    if p.final_1 == p.final_2:
        return 0.0
    return float((0 if p.final_1 > p.final_2 else 1) == gold)


class _OutcomeReward:
    __name__ = "outcome_reward"

    def __init__(self, strict_arithmetic: bool = False):
        self.strict_arithmetic = strict_arithmetic

    def __call__(self, prompts: list, completions: list, gold: list[int], **_: Any) -> list[float]:
        return [compute_outcome_reward(completion_text(c), int(g), self.strict_arithmetic)
                for c, g in zip(completions, gold)]


def get_outcome_reward(strict_arithmetic: bool = False) -> _OutcomeReward:
    """The rule-based outcome reward; needs dataset column ``gold`` (displayed index of the chosen response)."""
    return _OutcomeReward(strict_arithmetic)


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


class CriteriaCoverageJudge:
    """Lexical coverage judge: share of the stated criteria's content words that the chain mentions.

    A deterministic stand-in for the paper's LLM judge (which sees the query and stated criteria). ``query`` is
    unused here, kept for the judge signature.
    """

    def __call__(self, query: str, stated_criteria: str, chain: str) -> float | None:
        """Coverage in [0, 1]; None when the stated criteria have no content words (nothing to cover)."""
        want = _terms(stated_criteria)
        if not want:
            return None
        return len(want & _terms(chain)) / len(want)


class _ProcessReward:
    __name__ = "process_reward"

    def __init__(self, judge: Any):
        self.judge = judge

    def __call__(self, prompts: list, completions: list, stated_criteria: list[str], query: list[str] | None = None,
                 **_: Any) -> list[float | None]:
        queries = query if query is not None else [""] * len(completions)
        out: list[float | None] = []
        for c, s, q in zip(completions, stated_criteria, queries):
            if not s:
                out.append(None)  # no stated criteria for this user: not applicable
                continue
            v = self.judge(q, s, completion_text(c))
            if v is None:
                out.append(None)
                continue
            v = float(v)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"process judge returned {v}, outside [0, 1]")
            out.append(v)
        return out


def get_process_reward(judge: Any = None) -> _ProcessReward:
    """``R_process``: the judge's coverage of the user's stated criteria; None for users without stated criteria.

    Needs dataset column ``stated_criteria`` (and ``query`` if the judge reads it).
    """
    return _ProcessReward(judge if judge is not None else CriteriaCoverageJudge())
