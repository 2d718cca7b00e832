"""Prosody extraction on synthetic audio with known truth."""

import numpy as np
import pytest
from emotionthinker.config import ProsodyConfig
from emotionthinker.prosody import compute_octave_repair, compute_vad, extract_prosody
from emotionthinker.synth import harmonic_voice

SR = 16000


@pytest.mark.parametrize("f0", [95.0, 260.0])
def test_f0_median_within_2_percent(f0):
    r = extract_prosody(harmonic_voice(f0, 0.8))
    assert abs(r["f0_median_hz"] - f0) / f0 < 0.02
    assert r["f0_reliable"] is True
    assert r["f0_range_st"] < 0.5  # a steady tone


def test_glides_give_their_shape(glide_features):
    assert glide_features["rising"]["intonation"] == "rising"
    assert glide_features["falling"]["intonation"] == "falling"
    assert glide_features["rising-falling"]["intonation"] == "rising-falling"
    # a linear 8-st glide: the p5..p95 range covers 90% of it (7.2 st)
    assert glide_features["rising"]["f0_range_st"] == pytest.approx(7.2, abs=0.4)
    assert glide_features["rising"]["contour_delta_st"] > 2.0
    assert glide_features["falling"]["contour_delta_st"] < -2.0


def test_gain_shifts_energy_by_the_gain_and_keeps_pitch():
    y = harmonic_voice(180.0, 0.8, syllable_hz=4.0)
    a, b = extract_prosody(y), extract_prosody(y * 0.25)
    assert a["energy_dbfs"] - b["energy_dbfs"] == pytest.approx(20 * np.log10(4), abs=0.1)  # 12.04 dB
    assert a["f0_median_hz"] == pytest.approx(b["f0_median_hz"], rel=0.01)
    assert a["speech_s"] == pytest.approx(b["speech_s"], abs=0.02)


def test_added_silence_keeps_articulation_rate_and_lowers_speaking_rate():
    y = harmonic_voice(200.0, 0.8, syllable_hz=4.0)
    rng = np.random.default_rng(0)
    padded = np.concatenate([np.zeros(SR // 2), y, np.zeros(SR)]).astype(np.float32)
    padded += (1e-4 * rng.standard_normal(padded.size)).astype(np.float32)  # -80 dBFS room noise
    text = "we should leave now"  # W IY1 SH UH1 D L IY1 V N AW1 = 10 phones
    a, b = extract_prosody(y, transcript=text), extract_prosody(padded, transcript=text)
    assert a["n_phones"] == b["n_phones"] == 10
    assert b["articulation_rate_pps"] == pytest.approx(a["articulation_rate_pps"], rel=0.03)
    assert b["speaking_rate_pps"] == pytest.approx(10 / 2.3, rel=1e-6)  # phones / total seconds
    assert b["speaking_rate_pps"] < 0.5 * a["speaking_rate_pps"]


def test_vad_threshold_rules_hand_computed():
    cfg = ProsodyConfig()
    # 20 frames at -20 dB, 20 at -70 dB: p95=-20, p5=-70, spread 50 > 20 -> thr = max(-55, -64) = -55,
    # then min(-55, -20-15=-35) = -55.
    db = np.array([-20.0] * 20 + [-70.0] * 20)
    speech, thr = compute_vad(db, cfg)
    assert thr == pytest.approx(-55.0)
    assert speech[:20].all() and not speech[20:].any()
    # narrow spread (p95-p5 = 10 dB < 20): thr = p95 - 35 = -55 -> everything above it is speech
    _, thr2 = compute_vad(np.array([-20.0] * 20 + [-30.0] * 20), cfg)
    assert thr2 == pytest.approx(-55.0)


def test_vad_bridges_short_gaps_and_drops_short_runs():
    cfg = ProsodyConfig()
    loud, quiet = -20.0, -90.0
    # speech 10 | gap 5 (50 ms < 60: bridged) | speech 10 | gap 20 | speech 4 (40 ms < 50: dropped) | gap 20
    db = np.array([loud] * 10 + [quiet] * 5 + [loud] * 10 + [quiet] * 20 + [loud] * 4 + [quiet] * 20)
    speech, _ = compute_vad(db, cfg)
    assert speech[:25].all()
    assert not speech[25:].any()


def test_octave_repair_fixes_isolated_octave_jumps():
    f0 = np.full(60, 150.0)
    f0[[10, 11, 30]] = 300.0  # doubling errors
    f0[45] = 75.0  # halving error
    f0[50:53] = np.nan  # unvoiced stays unvoiced
    out = compute_octave_repair(f0, ProsodyConfig())
    voiced = np.isfinite(out)
    assert np.allclose(out[voiced], 150.0)
    assert np.isnan(out[50:53]).all()
