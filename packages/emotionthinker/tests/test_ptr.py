"""GRPO-PTR: schedule, trust weight, gating, judge calls, TRL-signature rewards."""

import math

import pytest
import torch
from emotionthinker.config import PTRConfig
from emotionthinker.judge import get_judge, prosody_rubric_judge
from emotionthinker.policy import LABELS, parse_answer
from emotionthinker.ptr import (
    compute_judge_mask,
    compute_ptr_rewards,
    compute_ptr_weight,
    compute_trust_weights,
)
from emotionthinker.rewards import accuracy_reward, format_reward, get_ptr_reasoning_reward


def test_schedules_hand_computed():
    assert [compute_ptr_weight(t, "step", 0.7, t0=10) for t in (0, 9, 10, 99)] == [0.0, 0.0, 0.7, 0.7]
    assert [compute_ptr_weight(t, "linear", 2.0, 10, 30) for t in (0, 10, 20, 30, 1000)] == [0, 0, 1.0, 2.0, 2.0]
    sig = [compute_ptr_weight(t, "sigmoid", 1.0, 0, 100) for t in (0, 50, 100, 500)]
    assert sig[0] == pytest.approx(0.0, abs=1e-12) and sig[1] == pytest.approx(0.5) and sig[2:] == [1.0, 1.0]
    assert all(a <= b for a, b in zip(sig, sig[1:]))  # monotone
    # Sophia's anneal: 0.3 * exp(-t / 500), capped by w_max
    assert compute_ptr_weight(500, "anneal") == pytest.approx(0.3 * math.exp(-1))
    assert compute_ptr_weight(0, "anneal", w_max=0.1) == 0.1
    with pytest.raises(ValueError, match="t1 > t0"):
        compute_ptr_weight(0, "linear", 1.0, 5, 5)


def test_trust_weight_hand_built_groups():
    # group 1: correct mean 0.9 >= wrong mean 0.1 -> 1; group 2: mu_c = 0.2, mu_w = 0.6 -> exp(-0.4);
    # group 3: all correct -> 1 (undefined comparison)
    reason = torch.tensor([0.8, 1.0, 0.1, 0.1, 0.2, 0.2, 0.6, 0.6, 0.5, 0.5, 0.5, 0.5])
    answer = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    tau = compute_trust_weights(reason, answer, 4)
    assert tau.tolist() == pytest.approx([1.0, math.exp(-0.4), 1.0])


def test_gating_uniform_groups_schedule_and_min_answer():
    a = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0])  # mixed | all wrong | all right
    assert compute_judge_mask(a, 3, 1.0).tolist() == [True, True, True] + [False] * 6
    assert not compute_judge_mask(a, 3, 0.0).any()  # schedule not started: nobody judged
    assert compute_judge_mask(a, 3, 1.0, gate_uniform_groups=False).all()
    assert compute_judge_mask(a, 3, 1.0, judge_min_answer=0.2).tolist() == [True, True, False] + [False] * 6


def test_total_reward_sums_format_outcome_and_weighted_reason():
    f = torch.tensor([1.0, 0.0, 1.0, 1.0])
    a = torch.tensor([1.0, 0.0, 1.0, 0.0])
    r = torch.tensor([0.5, 0.9, 0.3, 0.4])
    judged = torch.tensor([True, True, False, True])
    # group 1 (G=2): mu_c=0.5 >= mu_w=0.9? no -> tau=exp(-0.4); group 2: unjudged 0.3 -> 0, mu_c=0 < mu_w=0.4
    total, tau = compute_ptr_rewards(f, a, r, judged, 2, weight=0.5)
    t1, t2 = math.exp(-0.4), math.exp(-0.4)
    assert tau.tolist() == pytest.approx([t1, t2])
    assert total.tolist() == pytest.approx([2 + 0.5 * t1 * 0.5, 0 + 0.5 * t1 * 0.9, 2.0, 1 + 0.5 * t2 * 0.4])
    total2, _ = compute_ptr_rewards(f, a, r, judged, 2, weight=0.5, use_trust=False)
    assert total2[0].item() == pytest.approx(2.25)


def test_answer_parsing_treats_contempt_or_disgust_as_one_label():
    assert len(LABELS) == 9 and "contempt or disgust" in LABELS
    assert parse_answer("<think>x</think><answer>contempt or disgust</answer>") == "contempt or disgust"
    assert parse_answer("<answer>Disgust</answer>") == "contempt or disgust"
    assert parse_answer("<answer>happy</answer><answer>SAD </answer>") == "sad"  # last block
    assert parse_answer("no tags happy") is None
    assert parse_answer("<answer>happy or sad</answer>") is None


def test_format_and_accuracy_rewards_trl_signature():
    comps = ["<think>a</think><answer>angry</answer>", [{"role": "assistant", "content": "<answer>angry</answer>"}],
             "<think>a</think>\n<answer>fear</answer> trailing"]
    assert format_reward(prompts=None, completions=comps) == [1.0, 0.0, 0.0]
    assert accuracy_reward(None, comps, emotion=["anger", "angry", "fear"]) == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="index 0"):
        accuracy_reward(None, comps[:1], emotion=["bored"])


class CountingJudge:
    def __init__(self, score=0.5):
        self.calls = 0
        self.score = score
        self.__name__ = "counting"

    def __call__(self, think, answer, record):
        self.calls += 1
        return self.score


def _comps(labels):
    return [f"<think>the pitch is high</think><answer>{lab}</answer>" for lab in labels]


def test_ptr_reward_calls_judge_only_where_it_matters():
    judge = CountingJudge(0.5)
    cfg = PTRConfig(schedule="step", t0=5, w_max=1.0)
    fn = get_ptr_reasoning_reward(judge, cfg, group_size=2)
    comps = _comps(["sad", "happy", "sad", "sad", "happy", "happy"])  # mixed | all right | all wrong
    gold = ["sad"] * 6
    before = fn(None, comps, emotion=gold, trainer_state=type("S", (), {"global_step": 4})())
    assert before == [0.0] * 6 and judge.calls == 0  # schedule not started
    after = fn(None, comps, emotion=gold, trainer_state=type("S", (), {"global_step": 5})())
    assert judge.calls == 2  # only the mixed group
    assert after == [0.5, 0.5, 0.0, 0.0, 0.0, 0.0]  # tau = 1 (equal means), w = 1
    assert fn.last_stats["judge_calls"] == 2 and fn.last_stats["weight"] == 1.0


def test_ptr_reward_trust_lowers_reward_when_judge_prefers_wrong_answers():
    def judge(think, answer, record):
        return 0.2 if answer == record["emotion"] else 0.8

    fn = get_ptr_reasoning_reward(judge, PTRConfig(schedule="constant", w_max=1.0), group_size=2)
    out = fn(None, _comps(["sad", "happy"]), emotion=["sad", "sad"])
    tau = math.exp(0.2 - 0.8)
    assert out == pytest.approx([tau * 0.2, tau * 0.8])


def test_judge_registry_and_rubric():
    assert get_judge("prosody-rubric") is prosody_rubric_judge
    assert get_judge("emotionthinker.judge:prosody_rubric_judge") is prosody_rubric_judge
    with pytest.raises(ValueError, match="prosody-rubric"):
        get_judge("gpt-9")
    rec = {"pitch_level": "high", "energy_level": "high", "transcription": "I cannot believe this happened"}
    good = ("The pitch is high and the energy is high; the speaker says believe and happened with a sharp rise, "
            "which points to surprise rather than anger.")
    bad = "hmm hmm hmm hmm"
    assert prosody_rubric_judge(good, "surprise", rec) > prosody_rubric_judge(bad, "surprise", rec)
    assert 0.0 <= prosody_rubric_judge("", None, {}) <= 1.0


def test_bad_judge_score_is_an_error_naming_the_judge():
    fn = get_ptr_reasoning_reward(CountingJudge(1.5), PTRConfig(schedule="constant"), group_size=2)
    with pytest.raises(ValueError, match="counting"):
        fn(None, _comps(["sad", "happy"]), emotion=["sad", "sad"])


def test_ptr_config_validation_names_the_field():
    with pytest.raises(ValueError, match="schedule"):
        PTRConfig(schedule="cosine")
    with pytest.raises(ValueError, match="t1"):
        PTRConfig(schedule="linear", t0=10, t1=5)
