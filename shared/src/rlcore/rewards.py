"""The reward-function protocol (TRL's GRPOTrainer signature) and parsing helpers shared by several papers.

A reward is ``fn(prompts, completions, **kwargs) -> list[float | None]``: one value per completion, ``None`` meaning
"not applicable to this sample" (TRL turns it into NaN and skips it), never "failed". Dataset columns arrive as
keyword lists of the same length. Completions are strings, or chat message lists (``[{"role", "content"}]``).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = [
    "RewardFunc",
    "completion_text",
    "extract_boxed",
    "extract_tag",
    "extract_think_answer",
    "normalize_answer",
    "check_rewards",
    "call_reward",
    "combine_rewards",
]


class RewardFunc(Protocol):
    """TRL's reward signature: ``fn(prompts, completions, **kwargs) -> list[float | None]``."""

    __name__: str

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]: ...


def completion_text(completion: str | list[dict[str, Any]]) -> str:
    """Return the text of a completion given as a string or as a chat message list (last message's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, list):  # multimodal content parts
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content)
    raise TypeError(f"completion must be a string or a list of chat messages, got {type(completion).__name__}")


def extract_tag(text: str, tag: str, allow_unclosed: bool = True) -> str | None:
    """Content of the first ``<tag>...</tag>``; with ``allow_unclosed`` an opened, never-closed tag runs to the end.

    Example:
        >>> extract_tag("<answer>Paris</answer>", "answer")
        'Paris'
        >>> extract_tag("<answer>Paris and", "answer")
        'Paris and'
        >>> extract_tag("no tags", "answer") is None
        True

    """
    open_t, close_t = f"<{tag}>", f"</{tag}>"
    start = text.find(open_t)
    if start < 0:
        return None
    start += len(open_t)
    end = text.find(close_t, start)
    if end < 0:
        return text[start:] if allow_unclosed else None
    return text[start:end]


def extract_think_answer(text: str) -> tuple[str | None, str | None]:
    """Split a ``<think>...</think>`` / ``<answer>...</answer>`` completion, tolerating a missing closing tag.

    Returns ``(think, answer)``; ``answer`` falls back to the text after ``</think>`` when there is no answer tag.

    Example:
        >>> extract_think_answer("<think>a</think><answer>b")
        ('a', 'b')
        >>> extract_think_answer("<think>a</think> b")
        ('a', 'b')

    """
    think = extract_tag(text, "think")
    answer = extract_tag(text, "answer")
    if answer is None and "</think>" in text:
        answer = text.rsplit("</think>", 1)[1].strip() or None
    return think, answer


def extract_boxed(text: str, after: str | None = None) -> str | None:
    r"""Content of the *last* ``\boxed{...}`` with brace matching (nested braces kept); ``None`` if none closes.

    ``after``: only search the text after the last occurrence of this marker (e.g. ``"</think>"``); when the
    marker is absent the whole text is searched.

    Example:
        >>> extract_boxed(r"so \boxed{1} then \boxed{\frac{1}{2}}")
        '\\frac{1}{2}'
        >>> extract_boxed(r"\boxed{unclosed") is None
        True

    """
    if after is not None and after in text:
        text = text.rsplit(after, 1)[1]
    for key in (r"\boxed{", r"\fbox{"):
        idx = text.rfind(key)
        if idx >= 0:
            break
    else:
        return None
    i, depth, start = idx + len(key), 1, idx + len(key)
    while i < len(text):
        c = text[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """SQuAD answer normalisation: lower-case, drop punctuation and articles (a/an/the), collapse whitespace.

    Example:
        >>> normalize_answer("The  Eiffel Tower!")
        'eiffel tower'

    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def check_rewards(name: str, values: Sequence[float | None], n: int) -> list[float | None]:
    """Validate a reward function's output: exactly ``n`` values, each a finite float or ``None``.

    Raises:
        ValueError: naming the reward function, on a wrong count or a NaN/inf value (a NaN is a bug in the
            reward, not "skip": use ``None`` for that).

    """
    values = list(values)
    if len(values) != n:
        raise ValueError(f"reward function {name!r} returned {len(values)} values for {n} completions")
    out: list[float | None] = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"reward function {name!r} returned a non-finite value {v!r} at index {i}")
        out.append(f)
    return out


def call_reward(fn: Callable[..., Sequence[float | None]], prompts: list, completions: list, **columns: Any):
    """Call ``fn`` with TRL's signature and validate the result with :func:`check_rewards`."""
    name = getattr(fn, "__name__", type(fn).__name__)
    return check_rewards(name, fn(prompts=prompts, completions=completions, **columns), len(completions))


def combine_rewards(
    values: Sequence[Sequence[float | None]], weights: Sequence[float] | None = None
) -> list[float]:
    """Weighted sum over reward functions per completion, skipping ``None`` (TRL's ``reward_weights`` + nansum).

    ``values[k][i]`` is reward function ``k``'s value for completion ``i`` (each inner list is what one reward
    function returned, e.g. via :func:`call_reward`). A ``None`` is left out of the sum; a completion where every
    function returned ``None`` gets ``nan`` (the advantage functions then give it 0, as TRL does).

    Example:
        >>> combine_rewards([[1.0, None, None], [0.5, 2.0, None]], weights=[1.0, 0.5])
        [1.25, 1.0, nan]

    Raises:
        ValueError: the lists differ in length, the weights do not match the number of functions, or a value or
            weight is not finite.

    """
    cols = [list(v) for v in values]
    if not cols:
        raise ValueError("combine_rewards needs at least one reward function's values")
    n = len(cols[0])
    bad = [k for k, c in enumerate(cols) if len(c) != n]
    if bad:
        raise ValueError(f"reward function(s) {bad} returned {[len(cols[k]) for k in bad]} values, expected {n}")
    w = [1.0] * len(cols) if weights is None else [float(x) for x in weights]
    if len(w) != len(cols):
        raise ValueError(f"{len(w)} reward weights for {len(cols)} reward functions")
    if not all(math.isfinite(x) for x in w):
        raise ValueError(f"reward weights must be finite, got {w}")
    out: list[float] = []
    for i in range(n):
        total, seen = 0.0, False
        for k, c in enumerate(cols):
            v = c[i]
            if v is None:
                continue
            f = float(v)
            if math.isnan(f):  # TRL turns None into NaN before the nansum: treat both alike
                continue
            if not math.isfinite(f):
                raise ValueError(f"reward function {k} returned a non-finite value {v!r} at index {i}")
            total += w[k] * f
            seen = True
        out.append(total if seen else math.nan)
    return out
