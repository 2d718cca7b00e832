"""Intonation contour: coarse dynamics (flat / moderate / expressive) and fine shape (rising, falling, turns).

Released pipeline ``intonation.py`` (spec "Intonation"): voiced frames in semitones re the utterance median (no
interpolation over gaps), median filter 5 with edge padding ``nearest``, Savitzky-Golay (9, 2), and the released
confidence heuristic (:func:`compute_shape_confidence`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .config import ProsodyConfig

__all__ = ["Intonation", "compute_contour", "compute_dynamics", "compute_shape", "compute_shape_confidence",
           "compute_intonation", "DIRECTIONAL"]

DIRECTIONAL = ("rising", "falling", "rising-falling", "falling-rising")


@dataclasses.dataclass
class Intonation:
    """Intonation fields written to the prosody record."""

    dynamics: str | None  # flat | moderate | expressive | None (< 0.25 s voiced)
    shape: str | None  # rising | falling | rising-falling | falling-rising | level | None (< 0.5 s voiced)
    intonation_confidence: float
    intonation: str  # the collapsed single field (too_short | uncertain | a shape | expressive | flat)
    contour_range_st: float | None
    contour_delta_st: float | None


def compute_contour(voiced_f0: np.ndarray, frame_s: float, cfg: ProsodyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed semitone contour of the voiced frames.

    Args:
        voiced_f0: ``(F,)`` Hz, NaN where unvoiced or outside speech.
        frame_s: seconds per frame.
        cfg: thresholds.

    Returns:
        ``(times_s (V,), st (V,))``: times of the voiced frames and their smoothed semitones re the median.
    """
    from scipy.ndimage import median_filter
    from scipy.signal import savgol_filter

    idx = np.flatnonzero(np.isfinite(voiced_f0))
    if idx.size == 0:
        return np.zeros(0), np.zeros(0)
    st = 12.0 * np.log2(voiced_f0[idx] / np.median(voiced_f0[idx]))  # (V,)
    if st.size >= cfg.intonation_medfilt:  # released: edges padded with the nearest value (not zeros)
        st = median_filter(st, size=cfg.intonation_medfilt, mode=cfg.intonation_medfilt_mode)
    if st.size >= cfg.intonation_savgol_window:
        st = savgol_filter(st, cfg.intonation_savgol_window, cfg.intonation_savgol_order)
    return idx * frame_s, st


def compute_dynamics(st: np.ndarray, cfg: ProsodyConfig) -> tuple[str, float]:
    """``p95 - p5`` of the contour: < 3 st flat, > 9 st expressive, else moderate. Returns ``(label, range)``."""
    p5, p95 = np.percentile(st, [5, 95])
    rng = float(p95 - p5)
    if rng < cfg.flat_below_st:
        return "flat", rng
    return ("expressive" if rng > cfg.expressive_above_st else "moderate"), rng


def _r2(y: np.ndarray, fit: np.ndarray) -> float:
    ss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - fit) ** 2)) / ss if ss > 0 else 0.0


def compute_shape(t: np.ndarray, st: np.ndarray, cfg: ProsodyConfig) -> tuple[str, dict[str, float | None]]:
    r"""Fine contour shape on normalised time :math:`x \in [0, 1]` over the voiced span.

    :math:`\delta` = median(last quarter) - median(first quarter). Fit a line and a quadratic :math:`q`. A turn:
    vertex :math:`x_v = -b/2a \in [0.25, 0.75]`, depth :math:`d = q(x_v) - (q(0)+q(1))/2` with :math:`|d| \ge 2` st
    and :math:`R^2_q - R^2_{line} \ge 0.05`; :math:`d > 0` rising-falling, :math:`d < 0` falling-rising. Otherwise
    :math:`\delta \ge 2` rising, :math:`\delta \le -2` falling, else level.

    Args:
        t: ``(V,)`` frame times.
        st: ``(V,)`` contour (semitones).
        cfg: thresholds.

    Returns:
        ``(shape, stats)`` with ``delta_st``, ``turn_depth_st`` (``None`` for a straight fit) and ``r2_gain``.
    """
    x = (t - t[0]) / max(t[-1] - t[0], 1e-9)  # (V,)
    delta = float(np.median(st[x >= 0.75]) - np.median(st[x <= 0.25]))
    lin = np.polyval(np.polyfit(x, st, 1), x)
    a, b, c = np.polyfit(x, st, 2)
    gain = _r2(st, np.polyval([a, b, c], x)) - _r2(st, lin)
    stats: dict[str, float | None] = {"delta_st": delta, "turn_depth_st": None, "r2_gain": float(gain)}
    if abs(a) > 1e-9:
        xv = -b / (2 * a)
        depth = float((a * xv**2 + b * xv + c) - (c + (a + b + c)) / 2)
        stats["turn_depth_st"] = depth
        lo, hi = cfg.turn_vertex_range
        if lo <= xv <= hi and abs(depth) >= cfg.turn_depth_st and gain >= cfg.turn_min_r2_gain:
            return ("rising-falling" if depth > 0 else "falling-rising"), stats
    if delta >= cfg.shape_delta_st:
        return "rising", stats
    if delta <= -cfg.shape_delta_st:
        return "falling", stats
    return "level", stats


def compute_shape_confidence(shape: str, delta_st: float, turn_depth_st: float | None, voiced_s: float,
                             n_pauses: int, cfg: ProsodyConfig) -> float:
    r"""The released confidence heuristic, rounded to 3 decimals.

    :math:`c = \mathrm{clip}(m, 0, 1) \cdot \mathrm{clip}(v / (2 v_{min}), 0, 1) \cdot 0.7^{p}`. The margin :math:`m` is how far the deciding statistic is past its threshold, in threshold units:
    rising/falling :math:`|\delta|/2 - 1`, turns :math:`|d|/2 - 1`, level :math:`1 - |\delta|/2`. ``v`` voiced
    seconds (factor 1 from 1.0 s = twice the 0.5 s shape minimum), ``p`` pauses > 0.3 s.

    Example:
        >>> compute_shape_confidence("rising", 2.25, None, 1.2, 0, ProsodyConfig())  # a 3-st linear glide
        0.125
        >>> compute_shape_confidence("falling", -5.0, None, 0.75, 1, ProsodyConfig())  # 1 * 0.75 * 0.7
        0.525
    """
    if shape in ("rising", "falling"):
        margin = abs(delta_st) / cfg.shape_delta_st - 1.0
    elif shape in ("rising-falling", "falling-rising"):
        margin = abs(turn_depth_st or 0.0) / cfg.turn_depth_st - 1.0
    elif shape == "level":
        margin = 1.0 - abs(delta_st) / cfg.shape_delta_st
    else:
        return 0.0
    full_s = cfg.confidence_full_voiced_factor * cfg.shape_min_voiced_s
    score = _clip01(margin) * _clip01(voiced_s / full_s) * 0.7**n_pauses
    return round(float(score), 3)


def _clip01(v: float) -> float:
    return float(min(max(v, 0.0), 1.0))


def compute_intonation(voiced_f0: np.ndarray, frame_s: float, cfg: ProsodyConfig) -> Intonation:
    """Dynamics + shape + confidence, collapsed to one field (too_short / uncertain / shape / expressive / flat).

    Args:
        voiced_f0: ``(F,)`` Hz, NaN where unvoiced or outside VAD speech.
        frame_s: seconds per frame.
        cfg: thresholds.
    """
    t, st = compute_contour(voiced_f0, frame_s, cfg)
    voiced_s = st.size * frame_s
    dynamics, rng = compute_dynamics(st, cfg) if voiced_s >= cfg.dynamics_min_voiced_s else (None, None)
    if voiced_s < cfg.shape_min_voiced_s:
        return Intonation(dynamics, None, 0.0, "too_short", rng, None)
    shape, stats = compute_shape(t, st, cfg)
    n_pauses = int(np.sum(np.diff(t) > cfg.pause_s))
    conf = compute_shape_confidence(shape, stats["delta_st"], stats["turn_depth_st"], voiced_s, n_pauses, cfg)
    if conf < cfg.min_confidence:
        label = "uncertain"
    elif shape in DIRECTIONAL:
        label = shape
    else:
        label = "expressive" if dynamics == "expressive" else "flat"
    return Intonation(dynamics, shape, conf, label, rng, stats["delta_st"])
