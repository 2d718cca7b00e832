import pytest
from emotionthinker.calibration import (
    calibrate_levels,
    compute_cuts,
    compute_level,
    load_calibration,
    save_calibration,
)
from emotionthinker.caption import build_cot_prompt, compute_caption
from emotionthinker.phones import count_phones, estimate_phones_from_spelling


def test_cuts_and_levels_hand_computed():
    # values 1..4, exact tertiles (released): positions 1/3 * 3 = 1 and 2/3 * 3 = 2 -> 2.0, 3.0
    c1, c2 = compute_cuts([1.0, 2.0, 3.0, 4.0])
    assert (c1, c2) == pytest.approx((2.0, 3.0))
    labels = ("low", "normal", "high")
    assert [compute_level(v, (c1, c2), labels) for v in (1.0, 2.0, 3.0, 4.0)] == ["low", "low", "normal", "high"]
    # the old 33.3/66.7 cut: positions 0.999, 2.001 -> 1.999, 3.001
    assert compute_cuts([1.0, 2.0, 3.0, 4.0], (33.3, 66.7)) == pytest.approx((1.999, 3.001))
    assert compute_level(None, (c1, c2), labels) is None


def test_groups_per_corpus_and_gender_with_pooled_fallback():
    recs = []
    for i in range(60):  # corpus A, 60 male: own cuts
        recs.append({"dataset": "A", "gender": "male", "f0_median_hz": 100.0 + i, "energy_dbfs": -30.0 + i / 10,
                     "articulation_rate_pps": 10.0})
    for i in range(3):  # corpus B, 3 female: pooled female fallback (only these 3 females exist)
        recs.append({"dataset": "B", "gender": "female", "f0_median_hz": 200.0 + 10 * i, "energy_dbfs": None,
                     "articulation_rate_pps": None})
    out, calib = calibrate_levels(recs, min_group=50)
    pitch = calib["levels"]["pitch_level"]
    assert pitch["groups"]["A/male"]["cuts"] is not None and pitch["groups"]["B/female"]["cuts"] is None
    # released: the pooled female group (3 < 50) has no cuts either -> no level
    assert "female" not in pitch["fallback"] and [r["pitch_level"] for r in out[-3:]] == [None] * 3
    assert out[0]["pitch_level"] == "low" and out[59]["pitch_level"] == "high"
    assert out[-1]["energy_level"] is None and out[-1]["speed_level"] is None
    assert "pitch_level" not in recs[0]  # inputs untouched
    out2, calib2 = calibrate_levels(recs, min_group=50, pooled_needs_min_group=False)  # our earlier rule
    assert calib2["levels"]["pitch_level"]["fallback"]["female"]["cuts"] == pytest.approx([206.6667, 213.3333])
    assert [r["pitch_level"] for r in out2[-3:]] == ["low", "normal", "high"]


def test_calibration_file_round_trip_and_reuse_on_another_corpus(tmp_path):
    fit = [{"dataset": "A", "gender": "male", "f0_median_hz": 100.0 + i, "energy_dbfs": -40.0 + i,
            "articulation_rate_pps": 8.0 + i / 10} for i in range(60)]
    _, calib = calibrate_levels(fit)
    # tertiles of 100..159: positions 19.6667, 39.3333 -> 119.6667, 139.3333
    assert calib["levels"]["pitch_level"]["groups"]["A/male"]["cuts"] == [119.6667, 139.3333]
    path = tmp_path / "cuts.json"
    save_calibration(path, calib)
    loaded = load_calibration(path)
    other = [{"dataset": "A", "gender": "male", "f0_median_hz": v, "energy_dbfs": None,
              "articulation_rate_pps": None} for v in (119.0, 119.7, 139.3, 150.0)]
    out, used = calibrate_levels(other, calibration=loaded)  # 4 records: fitting would give no cuts at all
    assert used is loaded
    assert [r["pitch_level"] for r in out] == ["low", "normal", "normal", "high"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "emotionthinker-calibration-v1", "levels": {}}')
    with pytest.raises(ValueError, match="bad.json.*levels"):
        load_calibration(bad)
    calib["levels"]["energy_level"]["groups"]["A"]["cuts"] = [3.0, 1.0]
    save_calibration(bad, calib)
    with pytest.raises(ValueError, match="levels.energy_level.groups.A.cuts"):
        load_calibration(bad)


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
