"""Every reward, grader and parser of longwriter_zero is total and linear-time (rlcore.testing.fuzz_total)."""

import math

import pytest
from longwriter_zero.arena import parse_verdict
from longwriter_zero.format_reward import check_format, get_format_reward
from longwriter_zero.length_predictor import parse_range_json, rule_based_range
from longwriter_zero.length_reward import count_words, get_length_reward
from longwriter_zero.prompts import extract_answer
from longwriter_zero.verifier import check_constraints, get_constraint_reward
from rlcore.testing import fuzz_total


def _score(v):
    return v is None or (isinstance(v, float) and math.isfinite(v))


CASES = {
    "length_reward": (lambda s: get_length_reward(untagged="whole")(prompts=[""], completions=[s],
                                                                     length_range=[[100, 200]])[0], _score),
    "format_reward": (lambda s: get_format_reward()(prompts=[""], completions=[s])[0], _score),
    "constraint_reward": (lambda s: get_constraint_reward()(prompts=[""], completions=[s],
                                                            length_range=[[1, 5]])[0], lambda v: v in (0.0, 1.0)),
    "count_words": (count_words, lambda v: isinstance(v, int) and v >= 0),
    "extract_answer": (extract_answer, lambda v: v is None or isinstance(v, str)),
    "check_format": (check_format, lambda v: isinstance(v, bool)),
    "check_constraints": (lambda s: check_constraints(s, [1, 5]), lambda v: isinstance(v, bool)),
    "rule_based_range": (rule_based_range, lambda v: v is None or len(v) == 2),
    "parse_range_json": (parse_range_json, lambda v: v is None or len(v) == 2),
    "parse_verdict": (parse_verdict, lambda v: v in (None, "A", "B", "C")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_total_and_linear(name):
    fn, check = CASES[name]
    fuzz_total(fn, check=check)


def test_lone_surrogates_in_the_length_reward():
    f = get_length_reward(untagged="whole")
    assert f(prompts=[""], completions=["word \ud800 word"], length_range=[[1, 3]]) == [1.0]
