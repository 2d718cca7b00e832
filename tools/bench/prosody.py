"""Prosody throughput: clips/s and real-time factor on a folder of synthetic clips.

Three runs in one process on the same files: a plain per-file librosa pYIN baseline (read + one pYIN pass,
55-500 Hz), our full extractor serially (two-pass pYIN, octave repair, VAD, energy, rate, intonation), and the
same extractor over a process pool. Usage: uv run --no-sync python tools/bench/prosody.py --clips 8 --seconds 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=0, help="0 = os.cpu_count()")
    args = ap.parse_args()

    import librosa
    import soundfile as sf
    from emotionthinker.batch import extract_many, find_audio_files
    from emotionthinker.synth import f0_track, harmonic_voice, write_wav

    kinds = ["flat", "rising", "falling", "rising-falling"]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.clips):
            n = int(args.seconds * 16000)
            y = harmonic_voice(f0_track(kinds[i % 4], n, 100.0 + 15 * i), args.seconds, syllable_hz=4.0, seed=i)
            write_wav(Path(tmp) / f"clip{i:03d}.wav", y)
        files = find_audio_files([tmp])
        audio_s = args.clips * args.seconds
        extract_many(files[:1], workers=1).__next__()  # warm-up: numba JIT of librosa's Viterbi

        t = time.perf_counter()
        for f in files:
            y, sr = sf.read(str(f), dtype="float32")
            librosa.pyin(y, fmin=55, fmax=500, sr=sr, frame_length=1024, hop_length=160)
        base = time.perf_counter() - t

        t = time.perf_counter()
        serial = list(extract_many(files, workers=1))
        ser = time.perf_counter() - t

        workers = args.workers or os.cpu_count() or 1
        t = time.perf_counter()
        par = list(extract_many(files, workers=workers))
        pll = time.perf_counter() - t
        assert all("error" not in r for r in serial + par)

    rows = {"baseline_pyin_1pass_serial": base, "extractor_serial": ser, f"extractor_parallel_{workers}w": pll}
    print(json.dumps({"clips": args.clips, "clip_seconds": args.seconds, "cpu_count": os.cpu_count(),
                      "load_avg_1min": os.getloadavg()[0],
                      "results": {k: {"seconds": round(v, 2), "clips_per_s": round(args.clips / v, 3),
                                      "rtf": round(v / audio_s, 3)} for k, v in rows.items()}}, indent=2))


if __name__ == "__main__":
    main()
