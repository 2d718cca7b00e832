"""Length-range predictor: the word range ``[L_lower, L_upper]`` a query asks for (paper §RQ1, Length RM).

Two paths, tried in order:

1. :func:`rule_based_range` for explicit counts ("2,000 words" -> ``[1800, 2200]``, "no more than 2,000" ->
   ``[1800, 2000]``, "at least 2,000" -> ``[2000, 2200]``, "500-800 words" -> ``[500, 800]``, "3000字").
2. The assessor prompt (:data:`ASSESSOR_PROMPT`, the rules of the paper's QwQ-32B prompt) run through any causal
   LM, its JSON ``{"range": [lo, hi]}`` parsed by :func:`parse_range_json`. Unparsable output falls back to
   ``fallback_range`` (default ``[0, 0]``, i.e. "no length reward for this query") and is *counted*: every
   prediction carries its ``source`` (``rule`` / ``model`` / ``fallback`` / ``cached``).

Predictions are memoised per query and written into the dataset (``length_range`` column) by
``longwriter-zero predict-length``, so training never re-predicts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ASSESSOR_PROMPT", "RangePrediction", "rule_based_range", "parse_range_json", "LengthRangePredictor"]

MAX_WORDS = 12_000

ASSESSOR_PROMPT = """You are an expert at judging how long the answer to a user request should be.
For the request below:
1. Work out what the user really needs delivered (an essay, blog post, summary, outline, plan, story, ...). Infer
   the real deliverable: "how do I start my thesis" needs advice of [400, 800] words, not a whole thesis.
2. Give a word range [lower, upper]; both bounds are multiples of 100, lower >= 0 and upper <= 12000.
3. Output [0, 0] if the range would exceed these limits or the request cannot be fulfilled (e.g. material is missing).
4. Ignore the most extreme 10% of cases, and keep upper - lower <= 3000.
5. An explicit count N becomes N +/- 10%: "2,000 words" -> [1800, 2200]; "no more than 2,000 words" ->
   [1800, 2000]; "at least 2,000 words" -> [2000, 2200].
Examples: "Write a high school essay" -> [800, 1000]; "Complete an academic paper on green cities" -> [6000, 10000].
Reply with JSON only, in the form {{"range": [lower, upper]}}.

Request: {query}
"""

# Bounded repetitions keep every pattern linear on adversarial text (a 1 MB digit run): no count of words needs more
# than 7 digits, and a run of more digits is not a count (the lookahead refuses to match inside it).
_NUM = r"(\d{1,3}(?:,\d{3}){1,2}(?![\d,])|\d{1,7}(?:\.\d{1,3})?(?![\d.]))\s*(k|K|千|万)?"
_UNIT = r"\s*(?:-|\s)?\s*(?:words?|字|个字|词)"
_AT_LEAST = re.compile(r"(?:at\s+least|no\s+less\s+than|not\s+less\s+than|minimum\s+of|more\s+than|over|至少|不少于|不低于|超过)\s*" + _NUM + _UNIT, re.I)
_AT_MOST = re.compile(r"(?:no\s+more\s+than|not\s+more\s+than|at\s+most|up\s+to|maximum\s+of|less\s+than|under|within|fewer\s+than|不超过|不多于|最多|(?<!不)少于)\s*" + _NUM + _UNIT, re.I)
_AT_MOST_SUFFIX = re.compile(_NUM + r"\s*(?:字|个字|词)\s*(?:以内|以下|之内)", re.I)
_AT_LEAST_SUFFIX = re.compile(_NUM + r"\s*(?:字|个字|词)\s*(?:以上)", re.I)
_RANGE = re.compile(_NUM + r"\s*(?:-|–|to|~|至|到)\s*" + _NUM + _UNIT, re.I)
_EXACT = re.compile(r"(?<![\d,.])" + _NUM + r"(?:\s*\+)?" + _UNIT, re.I)


@dataclass(frozen=True)
class RangePrediction:
    """A predicted range and where it came from (``rule``, ``model``, ``fallback`` or ``cached``)."""

    lower: int
    upper: int
    source: str
    raw: str = ""

    @property
    def range(self) -> list[int]:
        """``[lower, upper]``."""
        return [self.lower, self.upper]


def _to_int(num: str, mult: str | None) -> int:
    value = float(num.replace(",", ""))
    scale = {"k": 1000, "K": 1000, "千": 1000, "万": 10000}.get(mult or "", 1)
    return int(round(value * scale))


def _checked(lo: int, hi: int) -> tuple[int, int]:
    if hi > MAX_WORDS or hi <= 0:
        return 0, 0  # beyond the assessor's limits: the paper's [0, 0]
    return max(0, lo), hi


def rule_based_range(query: str) -> tuple[int, int] | None:
    """The range for a query with one explicit word count, or ``None`` when it has none or several.

    Several different counts ("Summarize this 5,000-word article in 200 words") are ambiguous for rules, so they
    are left to the assessor LM.

    Example:
        >>> rule_based_range("Write a 2,000-word essay on rivers.")
        (1800, 2200)
        >>> rule_based_range("no more than 2,000 words please"), rule_based_range("at least 2000 words")
        ((1800, 2000), (2000, 2200))
        >>> rule_based_range("写一篇3000字的文章"), rule_based_range("Write a poem") is None
        ((2700, 3300), True)
        >>> rule_based_range("Summarize this 5,000-word article in 200 words") is None
        True
    """
    exact = [(m.start(), _to_int(m.group(1), m.group(2))) for m in _EXACT.finditer(query)]
    if not exact:  # every rule below needs a number with a word unit: no count, no rule (one pass over the text)
        return None
    rng = _RANGE.search(query)
    counts = {n for start, n in exact if rng is None or not rng.start() <= start < rng.end()}
    if len(counts) > 1:  # "Summarize this 5,000-word article in 200 words": which count is the output's? ask the LM
        return None
    if rng is not None:
        lo, hi = _to_int(rng.group(1), rng.group(2)), _to_int(rng.group(3), rng.group(4) or rng.group(2))
        if lo <= hi:
            return _checked(lo, hi)
    for pat in (_AT_MOST, _AT_MOST_SUFFIX):
        if m := pat.search(query):
            n = _to_int(m.group(1), m.group(2))
            return _checked(round(0.9 * n), n)
    for pat in (_AT_LEAST, _AT_LEAST_SUFFIX):
        if m := pat.search(query):
            n = _to_int(m.group(1), m.group(2))
            return _checked(n, round(1.1 * n))
    n = exact[0][1]
    return _checked(round(0.9 * n), round(1.1 * n))


def parse_range_json(text: str) -> tuple[int, int] | None:
    """Parse the assessor's ``{"range": [lo, hi]}`` (the last such object in ``text``); ``None`` if invalid.

    Valid: two integers with ``0 <= lo <= hi <= 12000`` (``[0, 0]`` included).

    Example:
        >>> parse_range_json('Sure. {"range": [800, 1000]}'), parse_range_json("about 900 words")
        ((800, 1000), None)
    """
    for m in reversed(list(re.finditer(r"\{[^{}]*\}", text))):
        try:
            obj = json.loads(m.group(0))
        except (ValueError, RecursionError):  # bad JSON, or an integer past Python's 4300-digit limit
            continue
        rng = obj.get("range") if isinstance(obj, dict) else None
        if (isinstance(rng, list) and len(rng) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in rng)
                and 0 <= rng[0] <= rng[1] <= MAX_WORDS):
            return rng[0], rng[1]
    return None


class LengthRangePredictor:
    """Predict ``[L_lower, L_upper]`` per query: rules first, then an LM assessor, with a per-query memo.

    Args:
        model: a causal LM (HF) or ``None`` for rules + fallback only (sampled through ``rlcore.rollout``).
        tokenizer: its tokenizer.
        fallback_range: used when neither path yields a range (default ``(0, 0)``: no length reward).
        max_new_tokens: assessor generation budget (greedy).
        use_rules: try :func:`rule_based_range` before the model.
        generator: an ``rlcore.rollout`` Generator to use instead of ``model`` (e.g. the vLLM backend).
    """

    def __init__(self, model: Any = None, tokenizer: Any = None, fallback_range: tuple[int, int] = (0, 0),
                 max_new_tokens: int = 64, use_rules: bool = True, batch_size: int = 8, generator: Any = None):
        if model is not None and tokenizer is None:
            raise ValueError("an assessor model needs its tokenizer")
        lo, hi = fallback_range
        if not 0 <= lo <= hi <= MAX_WORDS:
            raise ValueError(f"fallback_range must satisfy 0 <= lower <= upper <= {MAX_WORDS}, got {fallback_range}")
        if generator is None and model is not None:
            from rlcore.rollout import make_generator

            generator = make_generator(model, tokenizer)
        self.generator = generator
        self.tokenizer = tokenizer if tokenizer is not None else getattr(generator, "tokenizer", None)
        self.fallback_range, self.max_new_tokens = (lo, hi), max_new_tokens
        self.use_rules, self.batch_size = use_rules, batch_size
        self.cache: dict[str, RangePrediction] = {}

    def _generate(self, queries: list[str]) -> list[str]:
        from rlcore.rollout import SamplingParams

        texts = [ASSESSOR_PROMPT.format(query=q) for q in queries]
        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=0.0)
        if getattr(self.tokenizer, "chat_template", None):
            outs = self.generator.generate(messages=[[{"role": "user", "content": t}] for t in texts], params=params)
        else:
            outs = self.generator.generate(prompts=texts, params=params)
        return [o[0].text for o in outs]

    def predict(self, queries: list[str]) -> list[RangePrediction]:
        """Predict a range for each query (memoised; repeated queries report ``source="cached"``)."""
        results: dict[int, RangePrediction] = {}
        todo: list[int] = []
        for i, q in enumerate(queries):
            if q in self.cache:
                p = self.cache[q]
                results[i] = RangePrediction(p.lower, p.upper, "cached", p.raw)
            elif self.use_rules and (r := rule_based_range(q)) is not None:
                results[i] = self.cache[q] = RangePrediction(*r, "rule")
            else:
                todo.append(i)
        unique = list(dict.fromkeys(queries[i] for i in todo))  # each distinct query is assessed once
        for start in range(0, len(unique), self.batch_size):
            chunk = unique[start : start + self.batch_size]
            raws = self._generate(chunk) if self.generator is not None else [""] * len(chunk)
            for q, raw in zip(chunk, raws, strict=True):
                parsed = parse_range_json(raw) if raw else None
                self.cache[q] = (RangePrediction(*parsed, "model", raw) if parsed
                                 else RangePrediction(*self.fallback_range, "fallback", raw))
        for i in todo:
            results[i] = self.cache[queries[i]]
        return [results[i] for i in range(len(queries))]


def predict_length_file(cfg: Any) -> dict[str, int]:
    """``predict-length``: read ``cfg.input``, add ``length_range``/``length_source``, write ``cfg.output``.

    Records that already carry ``cfg.length_column`` are kept as they are (``source: cached``). Returns the count
    per source, so fallbacks (unparsable assessor output) are visible, never silent.

    Raises:
        DataError: a malformed line or a record without the question (file:line named).
    """
    from rlcore.io import DataError, read_jsonl, write_jsonl

    records = read_jsonl(cfg.input)
    for i, rec in enumerate(records, 1):
        q = rec.get(cfg.question_column)
        if not isinstance(q, str) or not q.strip():
            raise DataError(f"{cfg.input}: record {i}: field {cfg.question_column!r} must be a non-empty string")
    generator = None
    if cfg.model:
        from rlcore.rollout import make_generator

        if cfg.backend == "vllm":
            from rlcore.builtins import resolve

            generator = make_generator(resolve(cfg.model), backend="vllm", tensor_parallel_size=cfg.tensor_parallel_size,
                                       gpu_memory_utilization=cfg.gpu_memory_utilization)
        else:
            from rlcore.builtins import load_model_and_tokenizer

            model, tok = load_model_and_tokenizer(cfg.model, device=None if cfg.device == "auto" else cfg.device)
            generator = make_generator(model, tok)
    predictor = LengthRangePredictor(fallback_range=(cfg.fallback_lower, cfg.fallback_upper),
                                     max_new_tokens=cfg.max_new_tokens, use_rules=cfg.length_rules == "on",
                                     batch_size=cfg.batch_size, generator=generator)
    todo = [r for r in records if cfg.length_column not in r]
    preds = predictor.predict([r[cfg.question_column] for r in todo])
    for rec, p in zip(todo, preds, strict=True):
        rec[cfg.length_column], rec["length_source"] = p.range, p.source
    counts = {"cached": len(records) - len(todo)}
    for p in preds:
        counts[p.source] = counts.get(p.source, 0) + 1
    write_jsonl(cfg.output, records)
    return counts
