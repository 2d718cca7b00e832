import pytest
from emotionthinker.calibration import calibrate_levels, compute_cuts, compute_level
from emotionthinker.caption import build_cot_prompt, compute_caption
from emotionthinker.phones import count_phones, estimate_phones_from_spelling


def test_cuts_and_levels_hand_computed():
    # values 1..4, tertiles: positions 0.999 and 2.001 -> 1.999, 3.001
    c1, c2 = compute_cuts([1.0, 2.0, 3.0, 4.0])
    assert (c1, c2) == pytest.approx((1.999, 3.001))
    labels = ("low", "normal", "high")
    assert [compute_level(v, (c1, c2), labels) for v in (1.0, 2.0, 3.0, 4.0)] == ["low", "normal", "normal", "high"]
    assert compute_level(None, (c1, c2), labels) is None


def test_groups_per_corpus_and_gender_with_pooled_fallback():
    recs = []
    for i in range(60):  # corpus A, 60 male: own cuts
        recs.append({"dataset": "A", "gender": "male", "f0_median_hz": 100.0 + i, "energy_dbfs": -30.0 + i / 10,
                     "articulation_rate_pps": 10.0})
    for i in range(3):  # corpus B, 3 female: pooled female fallback (only these 3 females exist)
        recs.append({"dataset": "B", "gender": "female", "f0_median_hz": 200.0 + 10 * i, "energy_dbfs": None,
                     "articulation_rate_pps": None})
    out, report = calibrate_levels(recs, min_group=50)
    assert report["pitch_level"]["A/male"]["pooled"] is False
    assert report["pitch_level"]["B/female"]["pooled"] is True
    assert [r["pitch_level"] for r in out[-3:]] == ["low", "normal", "high"]
    assert out[0]["pitch_level"] == "low" and out[59]["pitch_level"] == "high"
    assert out[-1]["energy_level"] is None and out[-1]["speed_level"] is None
    assert "pitch_level" not in recs[0]  # inputs untouched


def test_phone_counts():
    assert count_phones("the cat") == 5  # DH AH0 K AE1 T
    assert count_phones("Zorblaxian") == estimate_phones_from_spelling("zorblaxian")  # OOV -> spelling rule
    assert count_phones("7") == count_phones("seven")
    assert count_phones("你好") is None and count_phones("") is None and count_phones(None) is None


def test_caption_skips_unreliable_intonation_and_prompt_lists_fields():
    rec = {"gender": "male", "pitch_level": "low", "energy_level": "low", "speed_level": "slow",
           "intonation": "uncertain", "transcription": "fine", "stressed_words": ["fine"], "emotion": "sad"}
    cap = compute_caption(rec)
    assert cap == 'A male speaker says "fine" with low pitch, low energy and a slow speaking rate. Stressed words: "fine".'
    prompt = build_cot_prompt(rec)
    assert "groundtruth_emotion: sad" in prompt and "unreliable" in prompt and "50-200 words" in prompt
