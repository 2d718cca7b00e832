"""``annotate``: prosody features -> calibrated levels -> caption and CoT prompt, for an EmotionCoT-style JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlcore.cli import load_config, progress
from rlcore.io import ResumableJsonlWriter, iter_jsonl, write_jsonl

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
    feats = _extract_resumable(records, paths, pcfg, cfg, texts)
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


def _extract_resumable(records, paths, pcfg: ProsodyConfig, cfg: AnnotateConfig,
                       texts: dict[str, str]) -> list[dict[str, Any]]:
    """Prosody of every record, streamed to ``<output>.prosody.jsonl`` as each file is done.

    Key ``id``: the record's ``id`` or its line. A rerun of a killed job extracts only the records not there yet;
    calibration needs them all, so the final output is written once extraction is complete.

    Raises:
        ValueError: the features file holds another audio file under a record's id (a stale file from a
            different input: it is named).
    """
    ids = [str(r["id"]) if r.get("id") is not None else f"line{i}" for i, r in enumerate(records, 1)]
    with ResumableJsonlWriter(f"{cfg.output}.prosody.jsonl", key="id") as w:
        todo = [k for k, rid in enumerate(ids) if rid not in w]
        with progress() as bar:
            task = bar.add_task("prosody", total=len(records), completed=len(records) - len(todo))
            jobs = extract_many([paths[k] for k in todo], pcfg, cfg.workers, texts,
                                on_result=lambda _: bar.advance(task))
            for k, f in zip(todo, jobs, strict=True):
                w.write({"id": ids[k]} | f)
    feats_path = f"{cfg.output}.prosody.jsonl"
    done = {}
    for rec in iter_jsonl(feats_path, required=("id", "audio_path")):
        done[str(rec.pop("id"))] = rec
    for rid, p in zip(ids, paths, strict=True):
        if done[rid]["audio_path"] != str(p):
            raise ValueError(f"{feats_path}: record {rid} holds features of {done[rid]['audio_path']}, not {p}; "
                             "it was written for another input: delete it to re-extract")
    return [done[rid] for rid in ids]


def _flat(f: dict[str, Any]) -> dict[str, Any]:
    """Fields calibration reads, and the intonation label, at the top level."""
    return {"f0_median_hz": f.get("f0_median_hz"), "energy_dbfs": f.get("energy_dbfs"),
            "articulation_rate_pps": f.get("articulation_rate_pps"), "intonation": f.get("intonation")}
