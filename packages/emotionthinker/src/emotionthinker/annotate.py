"""``annotate``: prosody features -> calibrated levels -> caption and CoT prompt, for an EmotionCoT-style JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlcore.cli import load_config
from rlcore.io import iter_jsonl, write_jsonl

from .batch import extract_many
from .calibration import calibrate_levels, load_calibration, save_calibration
from .caption import build_cot_prompt, compute_caption
from .config import AnnotateConfig, ProsodyConfig

__all__ = ["annotate"]


def annotate(cfg: AnnotateConfig) -> dict[str, Any]:
    """Annotate ``cfg.input`` into ``cfg.output``; records whose audio fails keep an ``error`` field and no levels.

    Returns:
        ``{"records", "failed", "calibration", "calibration_reused"}``: the path of the cut points used (fitted
        on the input, or ``cfg.calibration`` reused).
    """
    pcfg = load_config(ProsodyConfig, cfg.prosody_config or None)
    reuse = load_calibration(cfg.calibration) if cfg.calibration else None  # checked before any extraction
    src = Path(cfg.input)
    root = Path(cfg.audio_root) if cfg.audio_root else src.parent
    records = list(iter_jsonl(src, required=("audio_path",)))
    paths = [str(p if (p := Path(r["audio_path"])).is_absolute() else root / p) for r in records]
    texts = {p: r["transcription"] for p, r in zip(paths, records, strict=True) if r.get("transcription")}
    feats = list(extract_many(paths, pcfg, cfg.workers, texts))
    merged = []
    for rec, f in zip(records, feats, strict=True):
        f = {k: v for k, v in f.items() if k != "audio_path"}
        merged.append(rec | ({"error": f["error"]} if "error" in f else {"prosody": f} | _flat(f)))
    ok = [m for m in merged if "error" not in m]
    calibrated, calib = calibrate_levels(ok, cfg.percentiles, cfg.min_group, reuse, cfg.pooled_needs_min_group)
    calib_path = cfg.save_calibration or f"{cfg.output}.calibration.json"
    save_calibration(calib_path, calib)
    it = iter(calibrated)
    out = []
    for m in merged:
        if "error" in m:
            out.append(m)
            continue
        c = next(it)
        for k in ("f0_median_hz", "energy_dbfs", "articulation_rate_pps"):
            c.pop(k, None)
        c["caption"] = compute_caption(c)
        c["cot_prompt"] = build_cot_prompt(c)
        out.append(c)
    write_jsonl(cfg.output, out)
    return {"records": len(out), "failed": len(out) - len(ok), "calibration": calib_path,
            "calibration_reused": bool(cfg.calibration)}


def _flat(f: dict[str, Any]) -> dict[str, Any]:
    """Fields calibration reads, and the intonation label, at the top level."""
    return {"f0_median_hz": f.get("f0_median_hz"), "energy_dbfs": f.get("energy_dbfs"),
            "articulation_rate_pps": f.get("articulation_rate_pps"), "intonation": f.get("intonation")}
