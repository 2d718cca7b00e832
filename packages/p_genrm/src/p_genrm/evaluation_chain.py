"""The evaluation chain: the P-GenRM prompt, the chain parser (released format; strict option), un-shuffling.

An evaluation chain has two parts (paper Fig. "evaluation chain"):

* PART 1 "Chain-of-Thought Analysis" = preference modeling P_t^(u): the user's persona (style, content &
  structure, core values) and the scenario-specific criteria derived from it;
* PART 2 "Final Scoring and JSON Output" = final scoring scheme S_t^(u): a JSON object between ``<JSON_START>`` and
  ``<JSON_END>``. Released checkpoints write ``{"rationale": <free text: criteria, weights, per-criterion 1-10
  scores, Final_i = sum_k (w_k / 100) * s_{k,i}>, "better_response": {"response_1": x, "response_2": y}}`` (parsed
  by default, stated scores as written); ``strict_arithmetic`` asks for and checks our structured ``criteria``.

This module writes the chain's format (prompt, templates, renderers); :mod:`p_genrm.chain_parser` reads it. The
candidate responses are shown in a shuffled order; :func:`unshuffle_scores` maps the displayed scores back to the
caller's order.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

__all__ = [
    "PART1_HEADER",
    "PART2_HEADER",
    "JSON_START",
    "JSON_END",
    "PARSE_ERROR_REASONS",
    "HistoryPair",
    "ScoreRequest",
    "Criterion",
    "ParsedChain",
    "ChainParseError",
    "build_messages",
    "render_history",
    "render_released_chain",
    "render_chain",
    "compute_final_score",
    "shuffle_order",
    "unshuffle_scores",
]

PART1_HEADER = "PART 1: Chain-of-Thought Analysis"
PART2_HEADER = "PART 2: Final Scoring and JSON Output"
JSON_START = "<JSON_START>"
JSON_END = "<JSON_END>"
HISTORY_START = "[The Start of User's preference history]"
HISTORY_END = "[The End of User's preference history]"
PARSE_ERROR_REASONS = (
    "not_text",
    "missing_part1",
    "missing_part2",
    "missing_markers",
    "bad_json",
    "schema",
    "weights_sum",
    "score_range",
    "arithmetic",
    "preference_mismatch",
)

SYSTEM_PROMPT = """You are a personalized reward model. Judge two candidate responses the way THIS user would, using
the evidence about the user given at the end of this message{evidence_note}.

Write your evaluation in exactly two parts.

{part1}
1. User persona and preference synthesis: from the evidence, describe the user's Style, Content & Structure and Core
   Values, and give a personality snapshot for this scenario. State only conclusions the evidence supports.
2. Personalized scoring model: derive the criteria that matter for this query, and say why each matters to this user.

{part2}
{output_spec}

{history}{criteria}"""

# The released checkpoints' output (spec "Evaluation chain"): free-text rationale + final scores.
RELEASED_OUTPUT_SPEC = """Output one JSON object between {js} and {je} with keys:
- "rationale": A. Evaluation Criteria & Weights (percent weights summing to 100%); B. Scoring Breakdown: score each
  response 1-10 on each criterion with a one-line justification, then Final Score = sum of weight x score;
- "better_response": {{"response_1": final score, "response_2": final score}}."""

# Our structured output (--strict-arithmetic): the criteria as JSON so the weighted sums can be checked.
STRICT_OUTPUT_SPEC = """Output one JSON object between {js} and {je} with keys:
- "criteria": a list of {{"name": str, "weight": percent, "response_1": score, "response_2": score}}; the weights
  sum to 100 and every score is between 1 and 10;
- "better_response": {{"response_1": final score, "response_2": final score}} where each final score is
  sum(weight / 100 * score) over the criteria, e.g. 4x0.35 + 6x0.30 + 7x0.20 + 7x0.15 = 5.65;
- "rationale": a short justification."""

USER_PROMPT = """[The Start of User Input]
{query}
[The End of User Input]

[The Start of Response 1]
{response_1}
[The End of Response 1]

[The Start of Response 2]
{response_2}
[The End of Response 2]"""


@dataclass(frozen=True)
class HistoryPair:
    """One past preference of a user: the user turn, the response they chose and the one they rejected."""

    user: str
    chosen: str
    rejected: str

    def to_dict(self) -> dict[str, str]:
        """JSON-friendly form (for saved prototype members)."""
        return {"user": self.user, "chosen": self.chosen, "rejected": self.rejected}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HistoryPair:
        """Inverse of :meth:`to_dict`."""
        return cls(user=str(d["user"]), chosen=str(d["chosen"]), rejected=str(d["rejected"]))


@dataclass(frozen=True)
class ScoreRequest:
    """One pair to judge for one user, responses in the caller's ("original") order."""

    query: str
    response_1: str
    response_2: str
    history: tuple[HistoryPair, ...] = ()
    stated_criteria: str | None = None
    user_id: str | None = None
    profile: tuple[str, ...] = ()  # the user's own past texts (Personalized RewardBench ``profile``), if any
    prototype_criteria: str | None = None  # cached criteria of the user's nearest prototype (``+cproK`` budgets)


@dataclass(frozen=True)
class Criterion:
    """One weighted criterion of PART 2 with the scores of the two displayed responses."""

    name: str
    weight: float
    score_1: float
    score_2: float


@dataclass(frozen=True)
class ParsedChain:
    """A validated evaluation chain; scores are in the *displayed* order (see :func:`unshuffle_scores`)."""

    analysis: str
    criteria: tuple[Criterion, ...]
    final_1: float
    final_2: float
    rationale: str = ""


class ChainParseError(ValueError):
    """A chain that breaks the format; ``reason`` is one of :data:`PARSE_ERROR_REASONS`."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def render_history(history: tuple[HistoryPair, ...] | list[HistoryPair]) -> str:
    """The preference-history block, ``User/Chosen/Rejected`` per pair, between the start/end markers."""
    body = "".join(f"User: {h.user}\nChosen: {h.chosen}\nRejected: {h.rejected}\n\n" for h in history)
    return f"{HISTORY_START}\n{body}{HISTORY_END}\n\n"


PROFILE_START = "[The Start of User's profile]"
PROFILE_END = "[The End of User's profile]"
PROTOTYPE_START = "[The Start of Similar users' analysis]"
PROTOTYPE_END = "[The End of Similar users' analysis]"


def build_messages(request: ScoreRequest, order: tuple[int, int] = (0, 1),
                   strict_arithmetic: bool = False) -> list[dict[str, str]]:
    """Chat messages (system + user) for ``request`` with the responses displayed in ``order``.

    The instructions come first and the user evidence (history, profile, stated criteria, similar users'
    analysis) ends the system prompt, so all prompts share the instruction head (one shared prefill in rlcore's
    generator).

    ``order[j]`` is the original index (0 or 1) of the response displayed as "Response j+1". The output
    instructions ask for the released format (free-text rationale + ``better_response``), or for our structured
    ``criteria`` format when ``strict_arithmetic``.

    Raises:
        ValueError: ``order`` is not a permutation of (0, 1), or the query/responses are empty.
    """
    if tuple(sorted(order)) != (0, 1):
        raise ValueError(f"order must be (0, 1) or (1, 0), got {order}")
    for name in ("query", "response_1", "response_2"):
        if not str(getattr(request, name)).strip():
            raise ValueError(f"ScoreRequest.{name} is empty (user {request.user_id!r})")
    if request.history:
        history = render_history(request.history)
    elif request.profile:
        history = ""
    else:
        history = f"{HISTORY_START}\n(no preference history is available for this user)\n{HISTORY_END}\n\n"
    if request.profile:
        history += PROFILE_START + "\n" + "".join(f"- {t}\n" for t in request.profile) + PROFILE_END + "\n\n"
    criteria = ""
    if request.stated_criteria:
        criteria = f"[The Start of User's stated criteria]\n{request.stated_criteria}\n[The End of User's stated criteria]\n\n"
    if request.prototype_criteria:
        criteria += (f"{PROTOTYPE_START}\n{request.prototype_criteria}\n{PROTOTYPE_END}\n\n")
    notes = ["pairs of responses the user preferred (Chosen) or not (Rejected)" if request.history or not request.profile
             else "", "texts the user wrote before (profile)" if request.profile else "",
             "the criteria the user stated" if request.stated_criteria else "",
             "an analysis of users with similar preferences" if request.prototype_criteria else ""]
    spec = STRICT_OUTPUT_SPEC if strict_arithmetic else RELEASED_OUTPUT_SPEC
    system = SYSTEM_PROMPT.format(
        evidence_note=" (" + "; ".join(n for n in notes if n) + ")", history=history, criteria=criteria,
        part1=PART1_HEADER, part2=PART2_HEADER, output_spec=spec.format(js=JSON_START, je=JSON_END),
    ).rstrip()
    responses = (request.response_1, request.response_2)
    user = USER_PROMPT.format(query=request.query, response_1=responses[order[0]], response_2=responses[order[1]])
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def compute_final_score(weights: list[float], scores: list[float]) -> float:
    """Final score of one response (PART 2): ``Final = sum_k (w_k / 100) * s_k``.

    Args:
        weights: percent weights ``(K,)`` summing to 100.
        scores: 1-10 scores ``(K,)`` of one response on the K criteria.

    Example:
        >>> round(compute_final_score([35, 30, 20, 15], [4, 6, 7, 7]), 2)  # 1.4 + 1.8 + 1.4 + 1.05
        5.65
    """
    if len(weights) != len(scores):
        raise ValueError(f"{len(weights)} weights but {len(scores)} scores")
    return float(sum(w / 100.0 * s for w, s in zip(weights, scores)))


def render_chain(analysis: str, criteria: list[tuple[str, float, float, float]], rationale: str = "",
                 decimals: int = 2, finals: tuple[float, float] | None = None) -> str:
    """Write a chain in our structured format from ``(name, weight, score_1, score_2)`` criteria.

    The final scores are :func:`compute_final_score` rounded to ``decimals``, unless ``finals`` states others (to
    write an arithmetic slip). The text is also a valid released-format chain (it has ``better_response`` and a
    ``rationale``), so both parsing modes read it.
    """
    weights = [c[1] for c in criteria]
    if finals is None:
        finals = (round(compute_final_score(weights, [c[2] for c in criteria]), decimals),
                  round(compute_final_score(weights, [c[3] for c in criteria]), decimals))
    obj = {
        "criteria": [{"name": n, "weight": w, "response_1": s1, "response_2": s2} for n, w, s1, s2 in criteria],
        "better_response": {"response_1": finals[0], "response_2": finals[1]},
        "rationale": rationale,
    }
    return f"{PART1_HEADER}\n{analysis}\n\n{PART2_HEADER}\n{JSON_START}{json.dumps(obj)}{JSON_END}"


def render_released_chain(analysis: str, criteria: list[tuple[str, float, float, float]],
                          finals: tuple[float, float] | None = None) -> str:
    """Write a chain in the released checkpoints' format: free-text rationale + ``better_response``.

    The rationale lists "A. Evaluation Criteria & Weights" and "B. Scoring Breakdown" with each response's
    weighted sum written out; ``finals`` (default: the exact sums rounded to 2 decimals) are the stated scores.
    """
    weights = [c[1] for c in criteria]
    exact = [compute_final_score(weights, [c[2 + j] for c in criteria]) for j in (0, 1)]
    finals = finals if finals is not None else (round(exact[0], 2), round(exact[1], 2))
    part_a = "; ".join(f"{n} ({w:g}%)" for n, w, _, _ in criteria)
    part_b = " ".join(
        f"Response {j + 1}: " + ", ".join(f"{n} {c[2 + j]:g}" for c in criteria for n in [c[0]])
        + " -> Final Score = " + " + ".join(f"{c[2 + j]:g}x{c[1] / 100:.2f}" for c in criteria) + f" = {finals[j]:g}."
        for j in (0, 1))
    obj = {"rationale": f"A. Evaluation Criteria & Weights: {part_a}. B. Scoring Breakdown: {part_b}",
           "better_response": {"response_1": finals[0], "response_2": finals[1]}}
    return f"{PART1_HEADER}\n{analysis}\n\n{PART2_HEADER}\n{JSON_START}{json.dumps(obj)}{JSON_END}"


def shuffle_order(rng: random.Random) -> tuple[int, int]:
    """A random display order of the two responses (the paper shuffles to avoid position bias)."""
    return (0, 1) if rng.random() < 0.5 else (1, 0)


def unshuffle_scores(displayed: tuple[float, float], order: tuple[int, int]) -> tuple[float, float]:
    """Map displayed ``(score of Response 1, score of Response 2)`` back to the original order.

    Example:
        >>> unshuffle_scores((3.0, 8.0), (1, 0))  # original response 2 was shown first
        (8.0, 3.0)
    """
    out = [0.0, 0.0]
    out[order[0]], out[order[1]] = displayed[0], displayed[1]
    return out[0], out[1]
