"""rlcore's own parsers are total and linear: 1000 generated cases + the fixed ~1 MB inputs each."""

import pytest
from rlcore.rewards import completion_text, extract_boxed, extract_tag, extract_think_answer, normalize_answer
from rlcore.testing import fuzz_total


def _str_or_none(r):
    return r is None or isinstance(r, str)


@pytest.mark.parametrize("fn,check", [
    (extract_boxed, _str_or_none),
    (lambda s: extract_tag(s, "answer"), _str_or_none),
    (lambda s: extract_boxed(s, after="</think>"), _str_or_none),
    (extract_think_answer, lambda r: isinstance(r, tuple) and all(map(_str_or_none, r))),
    (normalize_answer, lambda r: isinstance(r, str)),
    (lambda s: completion_text([{"role": "assistant", "content": s}]), lambda r: isinstance(r, str)),
], ids=["extract_boxed", "extract_tag", "extract_boxed_after", "extract_think_answer", "normalize_answer",
        "completion_text"])
def test_parsers_are_total_and_linear(fn, check):
    report = fuzz_total(fn, n_cases=1000, max_seconds=1.0, check=check)
    assert report.n_generated >= 1000 and report.slowest_seconds < 1.0
