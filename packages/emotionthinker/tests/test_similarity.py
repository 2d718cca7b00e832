"""Similarity-weighted outcome reward (EMO-RL style) and UA / soft-label agreement in evaluation."""

import json
import math

import pytest
from emotionthinker.config import TrainConfig
from emotionthinker.evaluation import compute_emotion_metrics
from emotionthinker.similarity import DEFAULT_VA, SimilarityReward, load_similarity


def test_reward_values_hand_computed_for_three_label_pairs():
    r = SimilarityReward()
    comps = ["<think>x</think><answer>contempt or disgust</answer>", "<answer>fear</answer>", "<answer>happy</answer>"]
    got = r(None, comps, emotion=["angry"] * 3)
    # angry (-0.6, 0.8); contempt or disgust (-0.6, 0.3): d = 0.5 -> 1 - 0.5 = 0.5
    # fear (-0.7, 0.6): d = sqrt(0.01 + 0.04) = 0.2236 -> 0.776393
    # happy (0.8, 0.5): d = sqrt(1.96 + 0.09) = 1.4318 > 1 -> 0
    assert got == pytest.approx([0.5, 1 - math.sqrt(0.05), 0.0], abs=1e-6)
    assert r(None, ["<answer>angry</answer>", "no answer"], emotion=["anger", "angry"]) == [1.0, 0.0]


def test_similarity_is_symmetric_with_unit_diagonal():
    s = load_similarity()
    for a in DEFAULT_VA:
        assert s(a, a) == 1.0
        for b in DEFAULT_VA:
            assert s(a, b) == s(b, a) and 0.0 <= s(a, b) <= 1.0


def test_similarity_file_valence_arousal_or_matrix(tmp_path):
    va = {k: list(v) for k, v in DEFAULT_VA.items()} | {"happy": [-0.6, 0.7]}
    f = tmp_path / "va.json"
    f.write_text(json.dumps({"valence_arousal": va, "radius": 0.5}))
    s = load_similarity(f)
    assert s("happy", "angry") == pytest.approx(1 - math.sqrt(0.01) / 0.5)  # 0.8
    m = tmp_path / "m.json"
    table = {a: {b: float(a == b) for b in DEFAULT_VA} for a in DEFAULT_VA}
    table["sad"]["fear"] = 0.3
    m.write_text(json.dumps({"matrix": table}))
    assert load_similarity(m)("sad", "fear") == 0.3 and load_similarity(m)("fear", "sad") == 0.0
    table["sad"]["sad"] = 0.9
    m.write_text(json.dumps({"matrix": table}))
    with pytest.raises(ValueError, match="m.json.*matrix.sad.sad"):
        load_similarity(m)
    del va["fear"]
    f.write_text(json.dumps({"valence_arousal": va}))
    with pytest.raises(ValueError, match="va.json.*lacks.*fear"):
        load_similarity(f)


def test_metrics_ua_and_soft_agreement_hand_computed():
    truth = ["angry", "angry", "angry", "angry", "sad", "sad"]
    pred = ["angry", "angry", "fear", None, "sad", "whisper"]
    m = compute_emotion_metrics(truth, pred)
    assert m["accuracy"] == pytest.approx(3 / 6)
    # recall angry 2/4, sad 1/2 -> UA 0.5; soft: (1 + 1 + 0.776393 + 0 + 1 + sim(whisper, sad)) / 6
    # whisper (0, -0.6), sad (-0.7, -0.4): d = sqrt(0.49 + 0.04) = 0.728011 -> 0.271989
    assert m["ua"] == 0.5
    assert m["soft_agreement"] == pytest.approx((3 + 0.776393 + 0.271989) / 6, abs=1e-6)


def test_train_config_outcome_reward_option():
    assert TrainConfig(input="x.jsonl").outcome_reward == "exact"
    with pytest.raises(ValueError, match="outcome_reward"):
        TrainConfig(input="x.jsonl", outcome_reward="soft")
