"""Bad audio: clear per-file errors or documented values, never a crashed batch."""

import numpy as np
import pytest
import soundfile as sf
from emotionthinker.batch import extract_many, find_audio_files
from emotionthinker.prosody import ProsodyError, extract_prosody, extract_prosody_file, load_audio
from emotionthinker.synth import harmonic_voice, write_wav


def test_corrupt_and_empty_files_raise_naming_the_file(tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF....not really a wav" * 10)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    zero = tmp_path / "zero_samples.wav"
    sf.write(str(zero), np.zeros(0, dtype=np.float32), 16000)
    for p in (bad, empty, zero):
        with pytest.raises(ProsodyError, match=p.name):
            load_audio(p)


def test_non_16k_file_is_resampled(tmp_path):
    y = harmonic_voice(200.0, 0.8, sr=44100)
    p = write_wav(tmp_path / "cd.wav", y, 44100)
    x, sr = load_audio(p)
    assert sr == 44100 and x.size == pytest.approx(0.8 * 16000, abs=2)
    r = extract_prosody_file(p)
    assert r["orig_sample_rate"] == 44100
    assert abs(r["f0_median_hz"] - 200.0) / 200.0 < 0.02


def test_no_voiced_frames_gives_documented_nulls():
    noise = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    r = extract_prosody(noise, transcript="hello")
    assert r["n_voiced"] == 0 and r["f0_median_hz"] is None and r["f0_reliable"] is False
    assert r["intonation"] == "too_short"
    assert r["energy_dbfs"] is not None  # noise is still "speech" to an energy VAD
    silent = extract_prosody(np.zeros(8000, dtype=np.float32))
    assert silent["speech_s"] == 0.0 and silent["energy_dbfs"] is None and silent["articulation_rate_pps"] is None


def test_batch_reports_errors_per_file_and_keeps_going(tmp_path):
    write_wav(tmp_path / "a_good.wav", harmonic_voice(150.0, 0.6))
    (tmp_path / "b_bad.wav").write_bytes(b"garbage")
    write_wav(tmp_path / "c_good.wav", harmonic_voice(220.0, 0.6))
    files = find_audio_files([tmp_path])
    seen = []
    recs = list(extract_many(files, workers=2, on_result=seen.append))
    assert [r["audio_path"] for r in recs] == [str(f) for f in files]
    assert len(seen) == 3
    assert "error" in recs[1] and "b_bad.wav" in recs[1]["error"]
    assert abs(recs[0]["f0_median_hz"] - 150) < 3 and abs(recs[2]["f0_median_hz"] - 220) < 4.4


def test_missing_input_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        find_audio_files([tmp_path / "nope"])
