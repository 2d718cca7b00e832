import json
import re
import time

import pytest
from rlcore.fuzz import ADVERSARIAL_STRINGS, FuzzReport, fuzz_total
from rlcore.rewards import extract_boxed, extract_tag


def test_fixed_set_has_the_promised_inputs():
    lengths = [len(s) for s in ADVERSARIAL_STRINGS]
    assert sum(n >= 990_000 for n in lengths) >= 15
    assert any("\ud800" in s for s in ADVERSARIAL_STRINGS)  # lone surrogate
    assert "9" * 4301 in ADVERSARIAL_STRINGS  # past int()'s 4300-digit limit
    with pytest.raises(ValueError):
        int("9" * 4301)
    deep = "[" * 100_000 + "]" * 100_000
    assert deep in ADVERSARIAL_STRINGS
    with pytest.raises(RecursionError):
        json.loads(deep)


def test_passes_a_total_linear_function():
    def parse(s):
        return extract_boxed(s), extract_tag(s, "answer")

    r = fuzz_total(parse, n_cases=300, max_seconds=1.0, check=lambda r: all(x is None or isinstance(x, str) for x in r))
    assert isinstance(r, FuzzReport)
    assert r.n_fixed == len(ADVERSARIAL_STRINGS) and r.n_generated >= 300
    assert r.slowest_seconds < 1.0


def test_catches_a_raising_function():
    def to_int(s):  # raises on almost everything
        return int(s)

    with pytest.raises(AssertionError, match=r"to_int raised ValueError: .* on input ''"):
        fuzz_total(to_int, n_cases=10)


def test_catches_a_deep_json_crash_only_hypothesis_finds():
    def parse_json(s):
        try:
            return json.loads(s)
        except ValueError:  # malformed JSON and 4300+-digit ints are handled; deep nesting is not
            return None

    with pytest.raises(AssertionError, match="parse_json raised RecursionError"):
        fuzz_total(parse_json, n_cases=200, fixed=False)  # generated deep nesting reaches it


def test_catches_quadratic_regex_on_1mb_and_interrupts_it():
    pat = re.compile(r"a*b")  # each start position scans to the end: O(n^2) on "aaaa..."

    def quadratic(s):
        try:  # a total-looking function: the interruption must not be swallowed by `except Exception`
            return pat.search(s) is not None
        except Exception:
            return False

    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=r"quadratic ran past 0\.9 s .*len 1000000\): super-linear"):
        fuzz_total(quadratic, n_cases=0, max_seconds=0.3)
    assert time.monotonic() - t0 < 20  # interrupted, not run to completion (minutes)


def test_check_rejection_is_reported():
    with pytest.raises(AssertionError, match=r"returned -1, rejected by check"):
        fuzz_total(lambda s: -1, n_cases=5, check=lambda r: r >= 0)


def test_reexported_from_rlcore_testing():
    import rlcore.testing as T

    assert T.fuzz_total is fuzz_total and T.ADVERSARIAL_STRINGS is ADVERSARIAL_STRINGS
    assert callable(T.accelerate_launch) and callable(T.run_and_kill)
