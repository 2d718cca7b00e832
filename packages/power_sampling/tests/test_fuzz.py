"""Totality (PACKAGE_COMMON C): every grader and parser returns for any string, never raises, 1 MB < 1 s."""

import time

import pytest
from power_sampling.grading import (
    GradeResult,
    extract_choice,
    extract_code,
    extract_number,
    grade_choice,
    grade_math,
    grade_number,
    normalize_math,
    truncate_at_stop,
)
from rlcore.testing import fuzz_total

GRADERS = {
    "grade_math(completion)": lambda s: grade_math(s, "\\frac{1}{2}"),
    "grade_math(answer)": lambda s: grade_math("so \\boxed{2}", s),
    "grade_math(boxed)": lambda s: grade_math("\\boxed{" + s + "}", "2"),
    "grade_choice": lambda s: grade_choice(s, "B"),
    "grade_number": lambda s: grade_number(s, "7"),
    "extract_choice": extract_choice,
    "extract_number": extract_number,
    "extract_code": lambda s: extract_code("def f():\n", s),
    "truncate_at_stop": truncate_at_stop,
    "normalize_math": normalize_math,
}


def _ok(result):
    return result is None or isinstance(result, str | GradeResult)


@pytest.mark.parametrize("name", sorted(GRADERS))
def test_fuzz_graders_total(name):
    """rlcore's harness: >= 1000 generated adversarial strings + its fixed ~1 MB inputs, < 1 s per call."""
    report = fuzz_total(GRADERS[name], n_cases=1000, max_seconds=1.0, check=_ok)
    assert report.n_generated >= 1000


BIG = ["\\boxed{" * 200_000, "{" * 1_000_000, "\\boxed{" + "1" * 1_000_000 + "}", "\\text{" * 150_000,
       "answer is " + " " * 1_000_000, "```python\n" * 90_000, "\n#" * 500_000, "9" * 1_000_000,
       "\\boxed{" + "\\frac{1}{" * 100_000 + "}" * 100_000 + "}", "\udc80" * 1_000_000]


@pytest.mark.parametrize("name", sorted(GRADERS))
def test_megabyte_inputs_under_a_second(name):
    fn = GRADERS[name]
    for s in BIG:
        t0 = time.perf_counter()
        assert _ok(fn(s))
        assert time.perf_counter() - t0 < 1.0, (name, s[:20])
