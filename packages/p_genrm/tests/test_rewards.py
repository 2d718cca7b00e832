import math

import pytest
from p_genrm.curriculum import compute_curriculum_order, compute_hardness, label_hard_negatives
from p_genrm.evaluation_chain import render_chain
from p_genrm.rewards import (
    CriteriaCoverageJudge,
    compute_outcome_reward,
    get_outcome_reward,
    get_process_reward,
)
from rlcore.rewards import call_reward

WIN1 = render_chain("likes honesty and brevity", [("honesty", 60, 9, 3), ("brevity", 40, 8, 5)])
TIE = render_chain("a", [("x", 100, 5, 5)])


def test_outcome_reward():
    assert compute_outcome_reward(WIN1, 0) == 1.0 and compute_outcome_reward(WIN1, 1) == 0.0
    assert compute_outcome_reward(TIE, 0) == 0.0 and compute_outcome_reward("junk", 1) == 0.0
    fn = get_outcome_reward()
    assert fn.__name__ == "outcome_reward"
    assert fn(["p", "p"], [[{"role": "assistant", "content": WIN1}], WIN1], gold=[0, 1]) == [1.0, 0.0]


def test_process_reward_coverage_and_not_applicable():
    # stated words {honesty, brevity, humour}; the chain covers honesty + brevity -> 2/3
    assert CriteriaCoverageJudge()("q", "honesty, brevity, humour", WIN1) == pytest.approx(2 / 3)
    fn = get_process_reward()
    out = fn(["p", "p"], [WIN1, WIN1], stated_criteria=["honesty, brevity, humour", ""])
    assert out[0] == pytest.approx(2 / 3) and out[1] is None


def test_process_reward_rejects_out_of_range_judge():
    fn = get_process_reward(lambda q, s, c: 3.0)
    with pytest.raises(ValueError, match="outside"):
        fn(["p"], [WIN1], stated_criteria=["x"])


def test_weighted_sum_matches_trl_convention():
    # alpha * process + beta * outcome with alpha = 0.5, beta = 1: 0.5 * 2/3 + 1 * 1
    proc = call_reward(get_process_reward(), ["p"], [WIN1], stated_criteria=["honesty, brevity, humour"])
    outc = call_reward(get_outcome_reward(), ["p"], [WIN1], gold=[0])
    assert math.isclose(0.5 * proc[0] + 1.0 * outc[0], 0.5 * 2 / 3 + 1.0)


def test_hardness_and_labels():
    assert compute_hardness("a b", "a c") == pytest.approx(1 / 3)  # Jaccard {a}/{a,b,c}
    assert compute_hardness("x", "y", 8.0, 6.0) == pytest.approx(0.8)  # 1 - |8 - 6| / 10
    assert label_hard_negatives([0.1, 0.9, 0.5, 0.7], 0.5) == [False, True, False, True]


def test_curriculum_share_rises():
    hard = [i % 2 == 0 for i in range(40)]
    order = compute_curriculum_order(hard, batch_size=5, hn_start=0.0, hn_end=1.0, seed=0)
    assert sorted(order) == list(range(40))
    shares = [sum(hard[i] for i in order[b:b + 5]) / 5 for b in range(0, 40, 5)]
    assert shares[0] < 0.5 < shares[-1]
    assert shares == sorted(shares)
    with pytest.raises(ValueError, match="batch_size"):
        compute_curriculum_order(hard, 0, 0.1, 0.9)
