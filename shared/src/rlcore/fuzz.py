r"""A fuzz harness for rewards, graders and parsers: they must be total (never raise) and linear-time.

``fuzz_total(fn)`` calls ``fn(s)`` on a fixed set of adversarial strings (:data:`ADVERSARIAL_STRINGS`, including
about 1 MB inputs) and on ``n_cases`` hypothesis-generated ones (nested braces and tags, unclosed tags, deep JSON,
4300+-digit integers, lone surrogates, control characters, ``\boxed{`` chains), and fails with one message naming
the input when a call raises, runs past ``max_seconds``, or returns something ``check`` rejects.

A call is interrupted (``SIGALRM``, main thread only) once it has run ``3 * max_seconds``, so a quadratic regex
on 1 MB fails in seconds instead of hanging the suite. A call over ``max_seconds`` but under the hard limit is
retried once, and fails only if the retry is slow too (timings on a shared CI machine are noisy).
``hypothesis`` is a dev dependency, imported only when ``fuzz_total`` runs.

Example:
    >>> from rlcore.fuzz import fuzz_total
    >>> report = fuzz_total(lambda s: len(s) % 2, n_cases=50, check=lambda r: r in (0, 1))
    >>> report.n_fixed == len(ADVERSARIAL_STRINGS) and report.n_generated >= 1
    True

"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["fuzz_total", "ADVERSARIAL_STRINGS", "FuzzReport", "FuzzTimeout"]

MB = 1_000_000

# Syntax fragments the generated strings are built from: what parsers of model output look for.
_TOKENS = [
    "{", "}", "[", "]", "(", ")", "<", ">", "</", "/>", "\\", "\\boxed{", "\\boxed", "\\fbox{", "\\frac{", "}{",
    "<think>", "</think>", "<answer>", "</answer>", "<tool_call>", "</tool_call>", "<|im_end|>", "<|endoftext|>",
    '"', "'", ":", ",", ".", "-", "+", "e", "E", "0", "1", "9", "nan", "inf", "-inf", "null", "true", "1e309",
    "\n", "\r", "\t", " ", "\x00", "\x1b", "\x7f", "\u202e", "\ufeff", "\u200b", "\U0001f600", "$", "$$",
    "```", "```json", "Answer:", "The answer is", "the answer is", "Score:", "Rating:", "#", "*", "**", "%",
    "\\(", "\\)", "\\[", "\\]", "\\text{", "\\sqrt{", "^", "_", "=", "/", "|", "A", "B", "Response A",
]


def _fixed() -> list[str]:
    surrogates = "\ud800 \udfff a\ud83d b\ude00 \udc00\ud800"
    ctrl = "".join(chr(c) for c in range(32)) + "\x7f\x80\x9f"
    deep = 100_000
    return [
        "", " ", "\n", "\x00", ctrl, surrogates, "\ud800", "\ufeff\u202e\u200b\u2028\u2029",
        "{}", "}", "{", "}{", "\\boxed{}", "\\boxed{", "\\boxed", "\\boxed{{{", "\\boxed{}}}", "<think>",
        "</think>", "<answer></answer>", "<answer>", "</answer><answer>", "<think><answer></think></answer>",
        "nan", "inf", "-inf", "NaN", "1e309", "-1e309", "1e-400", "0x" + "f" * 5000, "9" * 4301, "-" + "9" * 5000,
        "1/" + "9" * 5000, "9" * 4301 + "." + "9" * 4301, "1e" + "9" * 5000, "[" + "9" * 4301 + "]",
        '{"score": ' + "9" * 4301 + "}", '{"a": NaN}', '{"a": Infinity}', "\\frac{1}{0}", "1/0", "0/0",
        "[" * deep + "]" * deep,  # valid JSON that is too deep for a recursive parser
        '{"a":' * deep + "1" + "}" * deep,
        "[" * deep,
        "{" * deep + "}" * deep,
        "\\boxed{" * deep,
        "\\boxed{" * deep + "}" * deep,
        "<think>" * deep,
        "</think>" * deep,
        "<answer>" * deep + "</answer>" * deep,
        "\\frac{" * deep,
        "(" * deep + ")" * deep,
        "'" * deep,
        '"' * deep,
        # ~1 MB inputs: linear parsers take milliseconds, quadratic ones take minutes.
        "a" * MB,
        "a " * (MB // 2),
        "ab" * (MB // 2),
        "a" * MB + "!",
        "\n" * MB,
        " " * MB + "x",
        "9" * MB,
        "{" * MB,
        "<" * MB,
        "\\boxed{" + "1" * MB,
        "<think>" + "x" * MB,
        "<think>" + "x " * (MB // 2) + "</think><answer>" + "y" * 1000,
        "<answer>" * (MB // 8),
        "The answer is 42. " * (MB // 18),
        "word, " * (MB // 6),
        "ü" * (MB // 2),
        "\U0001f600" * (MB // 4),
    ]


#: The fixed adversarial inputs every reward/parser/grader must survive (about 20 of them ~1 MB).
ADVERSARIAL_STRINGS: list[str] = _fixed()


class FuzzTimeout(BaseException):  # noqa: N818 - a BaseException so that ``except Exception`` cannot swallow it
    """Raised inside a fuzzed call that ran past the hard time limit."""


@dataclasses.dataclass
class FuzzReport:
    """What :func:`fuzz_total` ran: counts and the slowest call."""

    n_fixed: int
    n_generated: int
    slowest_seconds: float
    slowest_input: str  # repr of the first 60 characters, and the length


def _describe(s: str) -> str:
    return f"{s[:60]!r}{'...' if len(s) > 60 else ''} (len {len(s)})"


def _strategy():
    from hypothesis import strategies as st

    tok = st.sampled_from(_TOKENS)
    surrogate = st.characters(categories=["Cs"])
    pieces = st.lists(st.one_of(tok, tok, st.text(max_size=4), surrogate), max_size=120).map("".join)
    nested = st.recursive(
        st.sampled_from(["", "x", "1", '"a"', "-9.5e3"]),
        lambda inner: st.builds(
            lambda o, mid, c: o + mid + c,
            st.sampled_from(["{", "[", "(", "<think>", "<answer>", "\\boxed{", '{"a": ', "\\frac{"]),
            inner,
            st.sampled_from(["}", "]", ")", "</think>", "</answer>", "", "}{2}"]),
        ),
        max_leaves=40,
    )
    deep = st.builds(lambda o, c, n: o * n + c * n, st.sampled_from(["[", "{", "(", "\\boxed{", '{"a":']),
                     st.sampled_from(["]", "}", ")", ""]), st.integers(1, 5000))
    big_int = st.integers(4300, 12000).map(lambda n: "9" * n) | st.integers().map(str)
    repeat = st.builds(lambda t, n: t * n, tok, st.integers(100, 20000))
    framed = st.builds(lambda a, b, c: a + b + c, pieces, st.one_of(nested, deep, big_int, repeat), pieces)
    return st.one_of(st.text(), pieces, nested, deep, big_int, repeat, framed)


def fuzz_total(
    fn: Callable[[str], Any],
    *,
    n_cases: int = 1000,
    max_seconds: float = 1.0,
    check: Callable[[Any], bool] | None = None,
    fixed: bool = True,
    seed: int = 0,
) -> FuzzReport:
    """Assert that ``fn(s)`` never raises and returns within ``max_seconds`` for adversarial strings ``s``.

    Args:
        fn: the function under test, one string in (wrap rewards: ``lambda s: reward([""], [s])``).
        n_cases: number of hypothesis-generated inputs (on top of the fixed set).
        max_seconds: per-call wall-time budget; calls are interrupted at 3x the budget (main thread only).
        check: optional predicate on the result (e.g. ``lambda r: r is None or isinstance(r, float)``).
        fixed: also run :data:`ADVERSARIAL_STRINGS` (the ~1 MB inputs included).
        seed: hypothesis seed (the run is reproducible).

    Returns:
        A :class:`FuzzReport`.

    Raises:
        AssertionError: one message naming ``fn``, the input (prefix and length) and the exception, the time
            taken, or the result ``check`` rejected.

    """
    name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
    hard = 3.0 * max_seconds
    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    stats = {"slowest": 0.0, "slowest_input": "", "generated": 0}

    def timed(s: str) -> tuple[Any, float, bool]:
        def on_alarm(signum, frame):
            raise FuzzTimeout

        old = signal.signal(signal.SIGALRM, on_alarm) if use_alarm else None
        t0 = time.perf_counter()
        try:
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, hard)
            try:
                return fn(s), time.perf_counter() - t0, False
            except FuzzTimeout:
                return None, time.perf_counter() - t0, True
            finally:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            if use_alarm:
                signal.signal(signal.SIGALRM, old)

    def one(s: str) -> None:
        try:
            _one(s)
        except AssertionError as e:
            stats.setdefault("failure", str(e))
            raise

    def _one(s: str) -> None:
        try:
            result, dt, aborted = timed(s)
            if dt > max_seconds and not aborted:  # noise? one retry
                result, dt2, aborted = timed(s)
                dt = min(dt, dt2) if not aborted else dt2
        except Exception as e:
            raise AssertionError(f"{name} raised {type(e).__name__}: {str(e)[:200]} on input {_describe(s)}") from e
        if aborted:
            raise AssertionError(f"{name} ran past {hard:.1f} s (budget {max_seconds} s per call; interrupted) "
                                 f"on input {_describe(s)}: super-linear time?")
        if dt > max_seconds:
            raise AssertionError(f"{name} took {dt:.2f} s (budget {max_seconds} s per call) on input {_describe(s)}")
        if dt > stats["slowest"]:
            stats["slowest"], stats["slowest_input"] = dt, _describe(s)
        if check is not None:
            try:
                ok = check(result)
            except Exception as e:
                raise AssertionError(f"{name}: check raised {type(e).__name__}: {e} on result {result!r:.100} "
                                     f"for input {_describe(s)}") from e
            if not ok:
                raise AssertionError(f"{name} returned {result!r:.100}, rejected by check, on input {_describe(s)}")

    n_fixed = 0
    if fixed:
        for s in ADVERSARIAL_STRINGS:
            one(s)
            n_fixed += 1
    if n_cases > 0:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import seed as hyp_seed

        # no shrinking: the first failing input is reported as is (shrinking a 1 MB input takes minutes)
        @hyp_seed(seed)
        @settings(max_examples=n_cases, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                  print_blob=False, phases=(Phase.generate,))
        @given(_strategy())
        def run(s: str) -> None:
            stats["generated"] += 1
            one(s)

        try:
            run()
        except AssertionError:
            if "failure" not in stats:
                raise
            raise AssertionError(stats["failure"]) from None
    return FuzzReport(n_fixed, stats["generated"], stats["slowest"], stats["slowest_input"])
