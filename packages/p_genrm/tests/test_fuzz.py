"""Totality: every parser and reward of the package returns a value for any string, fast (PACKAGE_COMMON C)."""

import json
import time

import pytest
from p_genrm.chain_parser import ChainSample, extract_analysis, try_parse_chain
from p_genrm.curriculum import compute_hardness
from p_genrm.data import select_profile
from p_genrm.evaluation_chain import render_chain
from p_genrm.rewards import CriteriaCoverageJudge, compute_outcome_reward, get_process_reward
from rlcore.testing import fuzz_total

HEAD = "PART 1: Chain-of-Thought Analysis\nx\nPART 2: Final Scoring and JSON Output\n"
MB = 1_000_000
# chain-shaped hostile inputs on top of rlcore's adversarial set: markers around deep JSON, huge numbers, 1 MB
CHAIN_CASES = [HEAD + "<JSON_START>" + "[" * MB + "<JSON_END>", HEAD + "<JSON_START>" * (MB // 12),
               "<JSON_START>" + '{"a": ' * (MB // 6) + "<JSON_END>", "x" * MB + "<JSON_END>",
               '<JSON_START>{"better_response": {"response_1": ' + "9" * 5000 + ', "response_2": 1}}<JSON_END>',
               HEAD + "<JSON_START>" + json.dumps({"better_response": {"response_1": 1, "response_2": 2},
                                                   "rationale": "r" * MB}) + "<JSON_END>"]


def fuzz(fn, check=None):
    fuzz_total(fn, n_cases=1000, max_seconds=1.0, check=check)
    for s in CHAIN_CASES:
        t0 = time.perf_counter()
        out = fn(s)
        assert time.perf_counter() - t0 < 1.0 and (check is None or check(out))


def is_score_or_none(x):
    return x is None or isinstance(x, float)


@pytest.mark.parametrize("strict", [False, True])
def test_chain_parser_total(strict):
    fuzz(lambda s: try_parse_chain(s, strict_arithmetic=strict), check=lambda p: p is None or p.final_1 == p.final_1)
    fuzz(lambda s: ChainSample.from_text(s, (1, 0), strict_arithmetic=strict),
         check=lambda c: (c.scores is None) == (c.error is not None))


def test_analysis_extractor_total():
    fuzz(extract_analysis, check=lambda a: a is None or isinstance(a, str))


@pytest.mark.parametrize("strict", [False, True])
def test_outcome_reward_total(strict):
    fuzz(lambda s: compute_outcome_reward(s, 1, strict), check=lambda r: r in (0.0, 1.0))
    # and the reward still works on a valid chain with the fuzzed text around it
    assert compute_outcome_reward(render_chain("a", [("x", 100, 3, 9)]), 1, strict) == 1.0


def test_process_reward_and_default_judge_total():
    judge = CriteriaCoverageJudge()
    fuzz(lambda s: judge("q", "honesty, brevity", s), check=is_score_or_none)
    fuzz(lambda s: judge("q", s, "chain about honesty"), check=is_score_or_none)
    reward = get_process_reward()
    fuzz(lambda s: reward(["p"], [s], stated_criteria=["honesty"])[0], check=is_score_or_none)


def test_hardness_and_profile_selection_total():
    fuzz(lambda s: compute_hardness(s, "a b c"), check=lambda h: 0.0 <= h <= 1.0)
    fuzz(lambda s: select_profile(s, ["jazz albums", s[:100]], 1, 50), check=lambda p: len(p) <= 1)
