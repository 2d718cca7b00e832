"""Reading an evaluation chain: the parser (released format by default; ``strict_arithmetic`` option).

The parser never guesses and is total: a chain that breaks a rule raises :class:`ChainParseError` with a reason code
(counted and retried by the scorer), and nothing else ever escapes it. Time is linear in the text's length. The
format it reads (headers, markers, templates) is defined in :mod:`p_genrm.evaluation_chain`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from .evaluation_chain import (
    JSON_END,
    JSON_START,
    PART1_HEADER,
    PART2_HEADER,
    ChainParseError,
    Criterion,
    ParsedChain,
    compute_final_score,
    unshuffle_scores,
)

__all__ = ["ChainSample", "extract_analysis", "parse_chain", "try_parse_chain"]


def extract_analysis(text: str) -> str | None:
    """PART 1's text (between the two part headers), or None when either header is missing (or not a string)."""
    if not isinstance(text, str):
        return None
    i = text.find(PART1_HEADER)
    j = text.find(PART2_HEADER, i + 1) if i >= 0 else -1
    if i < 0 or j < 0:
        return None
    return text[i + len(PART1_HEADER):j].strip()


_MAX_NUMBER_CHARS = 64  # a numeric string longer than this is not a score (keeps float() cheap)


def _number(value: Any, where: str, allow_string: bool = False) -> float:
    """A finite float from a JSON value; numeric strings only when ``allow_string`` (the released format)."""
    if isinstance(value, str) and allow_string and len(value) <= _MAX_NUMBER_CHARS:
        try:
            value = float(value.strip())
        except ValueError:
            raise ChainParseError("schema", f"{where} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ChainParseError("schema", f"{where} must be a finite number, got {str(value)[:40]!r}")
    try:
        out = float(value)
    except OverflowError:  # an int too large for a float
        raise ChainParseError("schema", f"{where} is too large") from None
    if not math.isfinite(out):
        raise ChainParseError("schema", f"{where} must be a finite number, got {out}")
    return out


def _parse_criteria(items: Any, score_min: float, score_max: float) -> list[Criterion]:
    if not isinstance(items, list) or not items:
        raise ChainParseError("schema", "'criteria' must be a non-empty list")
    out = []
    for k, c in enumerate(items):
        if not isinstance(c, dict):
            raise ChainParseError("schema", f"criteria[{k}] must be an object")
        missing = [key for key in ("name", "weight", "response_1", "response_2") if key not in c]
        if missing:
            raise ChainParseError("schema", f"criteria[{k}] lacks {missing}")
        w = _number(c["weight"], f"criteria[{k}].weight")
        if w <= 0:
            raise ChainParseError("weights_sum", f"criteria[{k}].weight must be > 0, got {w}")
        s1, s2 = _number(c["response_1"], f"criteria[{k}].response_1"), _number(c["response_2"], f"criteria[{k}].response_2")
        for s, key in ((s1, "response_1"), (s2, "response_2")):
            if not score_min <= s <= score_max:
                raise ChainParseError("score_range", f"criteria[{k}].{key}={s} outside [{score_min}, {score_max}]")
        name = c["name"] if isinstance(c["name"], str) else json.dumps(c["name"])[:200]
        out.append(Criterion(name, w, s1, s2))
    return out


def _json_block(text: str, strict: bool) -> tuple[int, int]:
    """Character span of the JSON between the markers.

    Strict: exactly one ``<JSON_START>...<JSON_END>``. Lenient (released): the last ``<JSON_END>`` and the last
    ``<JSON_START>`` before it, so a marker echoed in PART 1 ("... between <JSON_START> and <JSON_END>") is harmless.
    """
    if strict:
        if text.count(JSON_START) != 1 or text.count(JSON_END) != 1:
            raise ChainParseError("missing_markers", f"need exactly one {JSON_START} ... {JSON_END} after PART 2")
        a, b = text.find(JSON_START) + len(JSON_START), text.find(JSON_END)
        if b < a:
            raise ChainParseError("missing_markers", f"{JSON_END} comes before {JSON_START}")
        return a, b
    b = text.rfind(JSON_END)
    a = text.rfind(JSON_START, 0, b) if b >= 0 else -1
    if a < 0:
        raise ChainParseError("missing_markers", f"no {JSON_START} ... {JSON_END} block")
    return a + len(JSON_START), b


def _load_json(body: str) -> Any:
    """``json.loads`` that turns every failure (deep nesting, 4300+-digit ints, ...) into ``bad_json``."""
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        raise ChainParseError("bad_json", f"{e.msg} at column {e.colno}") from None
    except (ValueError, RecursionError, OverflowError, MemoryError) as e:
        raise ChainParseError("bad_json", f"{type(e).__name__}: {str(e)[:80]}") from None


def parse_chain(text: str, strict_arithmetic: bool = False, weight_tol: float = 0.5, arithmetic_tol: float = 0.06,
                score_min: float = 1.0, score_max: float = 10.0) -> ParsedChain:
    """Parse one evaluation chain; never repairs or guesses, and raises nothing but :class:`ChainParseError`.

    Lenient (default, the released checkpoints' format): the text holds ``<JSON_START>{...}<JSON_END>`` whose
    object has ``better_response: {"response_1": x, "response_2": y}`` (finite numbers, numeric strings
    accepted) and a free-text ``rationale``; the PART headers are optional (PART 1 = the analysis when present,
    else the text before the JSON block). The stated final scores are taken as written: a weighted-sum slip such
    as the paper's "4x0.35 + 6x0.30 + 7x0.20 + 7x0.15 = 5.4" (really 5.65) is accepted.

    Strict (``strict_arithmetic=True``, our structured format): PART 1 and PART 2 headers in order, exactly one
    JSON block after PART 2, a ``criteria`` list (``name``, ``weight``, ``response_1``, ``response_2``), weights
    > 0 summing to 100 (``weight_tol``), scores in ``[score_min, score_max]``, each stated final score within
    ``arithmetic_tol`` of :func:`compute_final_score` (one-decimal rounding passes), and an optional
    ``"preferred"`` consistent with the scores.

    Time is linear in ``len(text)``; any input (non-strings included) gives a result or a ChainParseError.

    Raises:
        ChainParseError: the first rule broken; ``.reason`` is one of :data:`PARSE_ERROR_REASONS`.
    """
    try:
        return _parse_chain(text, strict_arithmetic, weight_tol, arithmetic_tol, score_min, score_max)
    except ChainParseError:
        raise
    except Exception as e:  # noqa: BLE001 - totality: nothing but ChainParseError leaves the parser
        raise ChainParseError("bad_json", f"unparsable chain ({type(e).__name__})") from None


def _parse_chain(text: Any, strict: bool, weight_tol: float, arithmetic_tol: float, score_min: float,
                 score_max: float) -> ParsedChain:
    if not isinstance(text, str):
        raise ChainParseError("not_text", f"a chain must be a string, got {type(text).__name__}")
    p1 = text.find(PART1_HEADER)
    p2 = text.find(PART2_HEADER, p1 + 1) if p1 >= 0 else -1
    if strict:
        if p1 < 0:
            raise ChainParseError("missing_part1", f"no '{PART1_HEADER}' header")
        if p2 < 0:
            raise ChainParseError("missing_part2", f"no '{PART2_HEADER}' header after PART 1")
        if text.count(JSON_START) != 1:
            raise ChainParseError("missing_markers", f"need exactly one {JSON_START} ... {JSON_END} after PART 2")
        a, b = _json_block(text[p2:], strict=True)
        a, b = a + p2, b + p2
    else:
        a, b = _json_block(text, strict=False)
    obj = _load_json(text[a:b])
    if not isinstance(obj, dict):
        raise ChainParseError("schema", "the JSON must be an object")
    br = obj.get("better_response")
    if not isinstance(br, dict) or "response_1" not in br or "response_2" not in br:
        raise ChainParseError("schema", "'better_response' must hold 'response_1' and 'response_2'")
    finals = [_number(br[k], f"better_response.{k}", allow_string=not strict) for k in ("response_1", "response_2")]
    criteria: list[Criterion] = []
    if strict:
        criteria = _parse_criteria(obj.get("criteria"), score_min, score_max)
        total = sum(c.weight for c in criteria)
        if abs(total - 100.0) > weight_tol:
            raise ChainParseError("weights_sum", f"criteria weights sum to {total:g}, not 100")
        for j, key in enumerate(("response_1", "response_2")):
            expected = compute_final_score([c.weight for c in criteria], [(c.score_1, c.score_2)[j] for c in criteria])
            if abs(finals[j] - expected) > arithmetic_tol:
                raise ChainParseError("arithmetic",
                                      f"better_response.{key}={finals[j]:g} but the weighted sum is {expected:.4g}")
        pref = obj.get("preferred")
        if pref is not None:
            if pref not in ("response_1", "response_2"):
                raise ChainParseError("schema", f"'preferred' must be 'response_1' or 'response_2', got {pref!r}")
            winner = 0 if pref == "response_1" else 1
            if finals[winner] < finals[1 - winner]:
                raise ChainParseError("preference_mismatch", f"'preferred' is {pref} but its final score is lower")
    if p1 >= 0 and 0 <= p2 < a:
        analysis = text[p1 + len(PART1_HEADER):p2].strip()
    else:  # released chains without headers: everything before the JSON block
        analysis = text[:a - len(JSON_START)].strip()
    rationale = obj.get("rationale", "")
    return ParsedChain(
        analysis=analysis, criteria=tuple(criteria), final_1=finals[0], final_2=finals[1],
        rationale=rationale if isinstance(rationale, str) else json.dumps(rationale)[:10_000],
    )


def try_parse_chain(text: Any, **parse_kw: Any) -> ParsedChain | None:
    """:func:`parse_chain` as a total function: the parsed chain, or None for anything that does not parse."""
    try:
        return parse_chain(text, **parse_kw)
    except ChainParseError:
        return None


@dataclass
class ChainSample:
    """One generated chain: raw text, the display order used, and the parse outcome (in original order)."""

    text: str
    order: tuple[int, int]
    parsed: ParsedChain | None = None
    error: str | None = None
    scores: tuple[float, float] | None = field(default=None)

    @classmethod
    def from_text(cls, text: str, order: tuple[int, int], **parse_kw: Any) -> ChainSample:
        """Parse ``text``; on failure keep the reason code in ``error`` (the sample is then skipped)."""
        try:
            parsed = parse_chain(text, **parse_kw)
        except ChainParseError as e:
            return cls(text=text, order=order, error=e.reason)
        return cls(text=text, order=order, parsed=parsed,
                   scores=unshuffle_scores((parsed.final_1, parsed.final_2), order))
