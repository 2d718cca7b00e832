"""Prosody features of one clip: VAD on frame RMS, two-pass pYIN with octave repair, energy, speech rate.

Every constant is the released EmotionCoT pipeline's (``EmotionCoT/pipeline/prosody_features.py``; spec
"Prosody features"), carried by :class:`~emotionthinker.config.ProsodyConfig`. Frames: hop 160 (10 ms) at 16 kHz,
centred, so pitch frame ``i`` and energy frame ``i`` describe the same instant ``i * hop``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from .config import ProsodyConfig
from .intonation import compute_intonation
from .phones import count_phones

__all__ = [
    "ProsodyError",
    "load_audio",
    "compute_vad",
    "compute_f0",
    "compute_f0_stats",
    "compute_energy",
    "compute_rates",
    "extract_prosody",
    "extract_prosody_file",
]


class ProsodyError(ValueError):
    """A clip cannot be analysed (unreadable, empty, ...); the message names the file."""


def load_audio(path: str | Path, sample_rate: int = 16000) -> tuple[np.ndarray, int]:
    """Read ``path`` as mono float32 at ``sample_rate`` (resampled when needed), DC removed.

    Returns:
        ``(samples (N,), original_sample_rate)``.

    Raises:
        ProsodyError: unreadable/corrupt file, no samples, or non-finite samples (the message names ``path``).
    """
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise ProsodyError(f"{p}: audio file not found")
    try:
        y, sr = sf.read(str(p), dtype="float32", always_2d=True)  # (N, C)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise ProsodyError(f"{p}: cannot decode audio ({e})") from None
    if y.size == 0:
        raise ProsodyError(f"{p}: audio has no samples")
    y = y.mean(axis=1)  # (N,) mono
    if not np.all(np.isfinite(y)):
        raise ProsodyError(f"{p}: audio contains NaN/inf samples")
    if sr != sample_rate:
        import librosa

        y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate)
    return (y - y.mean()).astype(np.float32), int(sr)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, end)]`` of the True runs of a 1-D boolean mask (end exclusive)."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(padded)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def compute_vad(rms_db: np.ndarray, cfg: ProsodyConfig) -> tuple[np.ndarray, float]:
    r"""Energy VAD (pipeline rule): threshold from the file's own level distribution.

    :math:`\theta = p_{95} - 35`; if :math:`p_{95} - p_5 > 20`: :math:`\theta \leftarrow \max(\theta, p_5 + 6)`;
    then :math:`\theta \leftarrow \min(\theta, p_{95} - 15)`. Speech = frames above :math:`\theta` (and above the
    digital-silence floor); non-speech gaps < 60 ms are bridged, then speech runs < 50 ms dropped.

    Args:
        rms_db: ``(F,)`` frame RMS in dBFS.
        cfg: VAD constants.

    Returns:
        ``(speech (F,) bool, threshold_db)``.
    """
    p5, p95 = np.percentile(rms_db, [5, 95])
    thr = p95 - cfg.vad_rel_db
    if p95 - p5 > cfg.vad_spread_db:
        thr = max(thr, p5 + cfg.vad_floor_margin_db)
    thr = min(thr, p95 - cfg.vad_max_db_below_peak)
    speech = (rms_db > thr) & (rms_db > cfg.digital_silence_dbfs)
    frame_ms = 1000.0 * cfg.hop_length / cfg.sample_rate
    runs = _runs(speech)
    for (_, e0), (s1, _) in zip(runs[:-1], runs[1:], strict=True):
        if (s1 - e0) * frame_ms < cfg.vad_bridge_ms:
            speech[e0:s1] = True
    for s, e in _runs(speech):
        if (e - s) * frame_ms < cfg.vad_min_speech_ms:
            speech[s:e] = False
    return speech, float(thr)


def _pyin(y: np.ndarray, fmin: float, fmax: float, cfg: ProsodyConfig) -> np.ndarray:
    """Librosa pYIN; returns ``(F,)`` F0 in Hz with NaN where unvoiced."""
    import librosa

    f0, voiced, _ = librosa.pyin(y, fmin=fmin, fmax=fmax, sr=cfg.sample_rate, frame_length=cfg.pitch_frame_length,
                                 hop_length=cfg.hop_length, center=True)
    return np.where(voiced, f0, np.nan)


def compute_octave_repair(f0: np.ndarray, cfg: ProsodyConfig) -> np.ndarray:
    """Octave-error repair on the voiced frames (released pipeline): local running-median passes, then global.

    (a) local, two passes: against a running median (kernel 9, edges padded ``nearest``) of the voiced
    semitone track, a frame is shifted down, then up, by an octave when the shift brings it more than 6 st closer
    and the shifted F0 stays inside [fmin, fmax] = [55, 500] Hz. (b) global: frames more than 9 st from the
    utterance median that land within 6 st of it after a +-1 octave shift are shifted. Frames that end up outside
    [fmin, fmax] become unvoiced.

    Args:
        f0: ``(F,)`` Hz, NaN = unvoiced.
        cfg: repair constants.

    Returns:
        ``(F,)`` repaired F0 (unvoiced frames untouched).
    """
    from scipy.ndimage import median_filter

    voiced = np.isfinite(f0)
    if voiced.sum() < 3:
        return f0.copy()
    st = 12.0 * np.log2(f0[voiced])  # (V,) semitones re 1 Hz
    lo_st, hi_st = 12.0 * np.log2(cfg.fmin), 12.0 * np.log2(cfg.fmax)
    k = min(cfg.octave_local_kernel, st.size if st.size % 2 else st.size - 1)
    k = max(3, k if k % 2 else k - 1)
    for _ in range(cfg.octave_local_passes):
        local = median_filter(st, size=k, mode="nearest")  # (V,)
        for shift in (-12.0, 12.0):
            cand = st + shift
            gain = np.abs(st - local) - np.abs(cand - local)
            st = np.where((gain > cfg.octave_local_min_gain_st) & (cand >= lo_st) & (cand <= hi_st), cand, st)
    if st.size >= 5:
        med = np.median(st)
        far = np.abs(st - med) > cfg.octave_global_far_st
        for shift in (-12.0, 12.0):
            fix = far & (np.abs(st + shift - med) <= cfg.octave_global_near_st)
            st = np.where(fix, st + shift, st)
            far &= ~fix
    out = f0.copy()
    rep = 2.0 ** (st / 12.0)
    out[voiced] = np.where((rep >= cfg.fmin) & (rep <= cfg.fmax), rep, np.nan)
    return out


def compute_f0(y: np.ndarray, cfg: ProsodyConfig) -> tuple[np.ndarray, dict[str, float]]:
    """Two-pass pYIN + octave repair.

    Pass 1 searches [fmin, fmax]. Pass 2 (with >= 10 voiced frames) searches
    [0.6 x median, 2.0 x median] clipped to [fmin, fmax], only if that still spans an octave.

    Returns:
        ``(f0 (F,) Hz with NaN unvoiced, info {"f0_search_min", "f0_search_max"})``.
    """
    f0 = _pyin(y, cfg.fmin, cfg.fmax, cfg)
    lo, hi = cfg.fmin, cfg.fmax
    voiced = np.isfinite(f0)
    if cfg.second_pass and voiced.sum() >= cfg.second_pass_min_voiced:
        med = float(np.median(f0[voiced]))
        lo2, hi2 = max(cfg.fmin, cfg.second_pass_low * med), min(cfg.fmax, cfg.second_pass_high * med)
        if hi2 >= 2.0 * lo2:
            f0, lo, hi = _pyin(y, lo2, hi2, cfg), lo2, hi2
    return compute_octave_repair(f0, cfg), {"f0_search_min": float(lo), "f0_search_max": float(hi)}


def compute_f0_stats(f0: np.ndarray, speech: np.ndarray, cfg: ProsodyConfig) -> dict[str, Any]:
    r"""Pitch statistics over voiced frames inside VAD speech.

    ``f0_median_hz``, ``f0_p5_hz``, ``f0_p95_hz``; :math:`range_{st} = 12\log_2(p_{95}/p_5)`; ``f0_std_st`` the
    std of :math:`12\log_2 f_0`; ``f0_reliable`` needs >= 25 such frames and a voiced share of speech >= 0.20.
    With no voiced speech frame every statistic is ``None`` (documented value, not an error).

    Args:
        f0: ``(F,)`` Hz (NaN unvoiced).
        speech: ``(F,)`` bool VAD mask.
        cfg: reliability thresholds.
    """
    n = min(f0.size, speech.size)
    sel = np.isfinite(f0[:n]) & speech[:n]
    n_speech = int(speech[:n].sum())
    v = f0[:n][sel]
    share = float(v.size / n_speech) if n_speech else 0.0
    out: dict[str, Any] = {"n_voiced": int(v.size), "voiced_share": round(share, 4)}
    if v.size == 0:
        return out | {"f0_median_hz": None, "f0_p5_hz": None, "f0_p95_hz": None, "f0_range_st": None,
                      "f0_std_st": None, "f0_reliable": False}
    p5, p95 = np.percentile(v, [5, 95])
    return out | {
        "f0_median_hz": float(np.median(v)),
        "f0_p5_hz": float(p5),
        "f0_p95_hz": float(p95),
        "f0_range_st": float(12.0 * np.log2(p95 / p5)),
        "f0_std_st": float(np.std(12.0 * np.log2(v))),
        "f0_reliable": bool(v.size >= cfg.reliable_min_voiced and share >= cfg.reliable_min_voiced_share),
    }


def compute_energy(rms: np.ndarray, speech: np.ndarray) -> dict[str, float | None]:
    r"""Speech-only level: :math:`E = 20\log_{10}\sqrt{\mathrm{mean}_{speech}(rms^2)}` dBFS.

    Noise floor = 5th-percentile frame RMS (dBFS) over the whole file; ``est_snr_db`` = E - floor.

    Args:
        rms: ``(F,)`` linear frame RMS.
        speech: ``(F,)`` bool VAD mask.

    Example:
        >>> r = np.array([0.1, 0.1, 0.001]); s = np.array([True, True, False])
        >>> round(compute_energy(r, s)["energy_dbfs"], 2)  # 20 log10(0.1)
        -20.0
    """
    floor = 20.0 * math.log10(max(float(np.percentile(rms, 5)), 1e-10))
    if not speech.any():
        return {"energy_dbfs": None, "noise_floor_dbfs": floor, "est_snr_db": None}
    e = 20.0 * math.log10(max(math.sqrt(float(np.mean(rms[speech] ** 2))), 1e-10))
    return {"energy_dbfs": e, "noise_floor_dbfs": floor, "est_snr_db": e - floor}


def compute_rates(n_phones: int | None, speech_s: float, total_s: float) -> dict[str, float | None]:
    """Speech rates: ``articulation_rate_pps`` = phones / VAD-speech s, ``speaking_rate_pps`` = phones / total s.

    The articulation rate is the calibrated one. ``None`` without a phone count or without speech.

    Example:
        >>> compute_rates(30, 2.0, 3.0)
        {'n_phones': 30, 'articulation_rate_pps': 15.0, 'speaking_rate_pps': 10.0}
    """
    if n_phones is None or speech_s <= 0:
        return {"n_phones": n_phones, "articulation_rate_pps": None, "speaking_rate_pps": None}
    return {"n_phones": n_phones, "articulation_rate_pps": n_phones / speech_s,
            "speaking_rate_pps": n_phones / total_s}


def extract_prosody(y: np.ndarray, cfg: ProsodyConfig | None = None, transcript: str | None = None) -> dict[str, Any]:
    """All prosody features of one mono clip at ``cfg.sample_rate`` (see module docstring).

    Returns:
        A flat JSON-friendly dict: durations, VAD threshold, pitch stats, energy, rates, intonation fields.
    """
    import librosa

    cfg = cfg or ProsodyConfig()
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ProsodyError(f"expected a non-empty mono signal, got shape {y.shape}")
    rms = librosa.feature.rms(y=y, frame_length=cfg.energy_frame_length, hop_length=cfg.hop_length,
                              center=True)[0]  # (F,)
    rms_db = 20.0 * np.log10(np.maximum(rms, 1e-10))
    speech, thr = compute_vad(rms_db, cfg)
    f0, info = compute_f0(y, cfg)
    n = min(f0.size, speech.size)
    f0, speech_p = f0[:n], speech[:n]
    frame_s = cfg.hop_length / cfg.sample_rate
    total_s = y.size / cfg.sample_rate
    speech_s = float(speech.sum()) * frame_s
    out: dict[str, Any] = {"duration_s": total_s, "speech_s": speech_s, "vad_threshold_db": thr} | info
    out |= compute_f0_stats(f0, speech_p, cfg)
    out |= compute_energy(rms, speech)
    out |= compute_rates(count_phones(transcript) if transcript else None, speech_s, total_s)
    voiced_f0 = np.where(speech_p, f0, np.nan)
    out |= dataclasses.asdict(compute_intonation(voiced_f0, frame_s, cfg))
    return out


def extract_prosody_file(path: str | Path, cfg: ProsodyConfig | None = None,
                         transcript: str | None = None) -> dict[str, Any]:
    """:func:`extract_prosody` on a file; adds ``audio_path`` and ``orig_sample_rate``."""
    cfg = cfg or ProsodyConfig()
    y, sr = load_audio(path, cfg.sample_rate)
    return {"audio_path": str(path), "orig_sample_rate": sr} | extract_prosody(y, cfg, transcript)
