"""`prosody --workers 2` on a cold numba cache must not corrupt librosa's on-disk cache (issue 15)."""

import json
import os
import subprocess
import sys

import pytest
from emotionthinker.synth import f0_track, harmonic_voice, write_wav


@pytest.mark.slow
def test_two_parallel_prosody_runs_on_a_fresh_numba_cache(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for i, kind in enumerate(["rising", "falling", "flat", "rising-falling"]):
        write_wav(clips / f"c{i}.wav", harmonic_voice(f0_track(kind, 8000, 120.0 + 30 * i), 0.5, syllable_hz=4.0))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"))  # cold: nothing compiled yet
    outs = []
    for run in range(2):
        out = tmp_path / f"run{run}.jsonl"
        res = subprocess.run([sys.executable, "-m", "emotionthinker", "prosody", str(clips), "--output", str(out),
                              "--workers", "2"], env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"run {run}: exit {res.returncode}\n{res.stderr[-2000:]}"
        outs.append([json.loads(x) for x in out.read_text().splitlines()])
    assert any((tmp_path / "numba_cache").rglob("*.nbi"))  # the cache was written (and reused by run 2)
    for recs in outs:
        assert len(recs) == 4 and not any("error" in r for r in recs)
    assert [r["f0_median_hz"] for r in outs[0]] == [r["f0_median_hz"] for r in outs[1]]
