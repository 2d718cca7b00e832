"""Synthetic voiced audio with known prosody (ground truth for tests, the benchmark and the demo).

A "voice" is a harmonic series (decaying harmonics) on an F0 track, with a syllable-rate amplitude envelope
and a little noise, so pYIN, the VAD and the intonation code see speech-like input whose truth is known.
"""

from __future__ import annotations

import numpy as np

__all__ = ["f0_track", "harmonic_voice", "write_wav"]


def f0_track(kind: str, n: int, f0: float = 150.0, span_st: float = 8.0) -> np.ndarray:
    """An F0 track of ``n`` samples: ``flat`` | ``rising`` | ``falling`` | ``rising-falling`` | ``falling-rising``.

    Glides move ``span_st`` semitones linearly in semitone space (turns go up/down and back).
    """
    x = np.linspace(0.0, 1.0, n)
    shapes = {
        "flat": np.zeros(n),
        "rising": x * span_st,
        "falling": (1 - x) * span_st,
        "rising-falling": (1 - np.abs(2 * x - 1)) * span_st,
        "falling-rising": np.abs(2 * x - 1) * span_st,
    }
    if kind not in shapes:
        raise ValueError(f"unknown F0 track kind {kind!r}; choose from {sorted(shapes)}")
    return f0 * 2.0 ** (shapes[kind] / 12.0)  # every shape starts its range at f0


def harmonic_voice(f0: float | np.ndarray, seconds: float, sr: int = 16000, amplitude: float = 0.3,
                   n_harmonics: int = 8, syllable_hz: float = 0.0, noise: float = 1e-3, seed: int = 0) -> np.ndarray:
    """A harmonic tone: ``sum_k a_k sin(2 pi k phi(t))`` with ``a_k = 1/k``, peak-normalised to ``amplitude``.

    Args:
        f0: constant Hz, or a per-sample track of length ``round(seconds * sr)``.
        seconds: duration.
        sr: sample rate.
        amplitude: peak level.
        n_harmonics: number of harmonics.
        seed: noise seed.
        syllable_hz: if > 0, a raised-cosine envelope at this rate (speech-like level modulation, never silent).
        noise: std of added white noise (absolute).
    """
    n = int(round(seconds * sr))
    track = np.full(n, float(f0)) if np.isscalar(f0) else np.asarray(f0, dtype=np.float64)
    if track.size != n:
        raise ValueError(f"f0 track has {track.size} samples, expected {n}")
    phase = 2 * np.pi * np.cumsum(track) / sr  # (N,)
    y = sum(np.sin(k * phase) / k for k in range(1, n_harmonics + 1))
    if syllable_hz > 0:
        y = y * (0.6 + 0.4 * np.cos(2 * np.pi * syllable_hz * np.arange(n) / sr))
    y = amplitude * y / np.max(np.abs(y))
    rng = np.random.default_rng(seed)
    return (y + noise * rng.standard_normal(n)).astype(np.float32)


def write_wav(path, y: np.ndarray, sr: int = 16000) -> str:
    """Write 16-bit PCM WAV; returns the path as a string."""
    import soundfile as sf

    sf.write(str(path), y, sr, subtype="PCM_16")
    return str(path)
