"""Inference over EmotionCoT records and evaluation of the predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlcore.io import read_jsonl, write_json, write_jsonl
from rlcore.rewards import extract_think_answer

from .config import EvalConfig, InferConfig
from .evaluation import compute_emotion_metrics, plot_confusion
from .policy import normalize_label, parse_answer

__all__ = ["run_inference", "evaluate_predictions"]


def run_inference(cfg: InferConfig, policy=None) -> int:
    """Generate one completion per record (greedy when ``temperature == 0``); returns the number written."""
    from rlcore.device import seed_everything

    from .data import load_emotioncot
    from .policy import load_policy
    from .prosody import load_audio

    seed_everything(cfg.seed)
    records = load_emotioncot(cfg.data, cfg.audio_root or None)
    records = records[: cfg.limit] if cfg.limit else records
    policy = policy or load_policy(cfg.model, cfg.device, cfg.dtype)
    out = []
    for i in range(0, len(records), cfg.batch_size):
        batch = records[i: i + cfg.batch_size]
        audios = [load_audio(r["audio_file"], policy.sample_rate)[0] for r in batch]
        _, _, texts = policy.generate(audios, cfg.max_new_tokens, cfg.temperature)
        for r, t in zip(batch, texts, strict=True):
            out.append({"audio_path": r["audio_path"], "emotion": r["emotion"], "completion": t,
                        "prediction": parse_answer(t)} | {k: r[k] for k in r if k.endswith("_level")})
    return write_jsonl(cfg.out, out)


def evaluate_predictions(cfg: EvalConfig) -> dict[str, Any]:
    """Metrics of ``cfg.predictions`` -> ``out_dir/metrics.json`` + ``confusion_matrix.png``.

    A record needs ``emotion`` and either ``completion`` (parsed) or ``prediction``.
    """
    from .judge import get_judge

    path = Path(cfg.predictions)
    recs = read_jsonl(path, required=("emotion",))
    truth, pred, scores = [], [], []
    judge = get_judge(cfg.judge) if cfg.judge else None
    for i, r in enumerate(recs, 1):
        gold = normalize_label(str(r["emotion"]))
        if gold is None:
            raise ValueError(f"{path}: record {i}: emotion {r['emotion']!r} is not one of the nine labels")
        if "completion" not in r and "prediction" not in r:
            raise ValueError(f"{path}: record {i}: needs a 'completion' or 'prediction' field")
        p = parse_answer(r["completion"]) if "completion" in r else normalize_label(r.get("prediction"))
        truth.append(gold)
        pred.append(p)
        if judge is not None and "completion" in r:
            think, _ = extract_think_answer(r["completion"])
            scores.append(float(judge(think or "", p, r)))
    m = compute_emotion_metrics(truth, pred)
    if scores:
        m["judge_mean"] = sum(scores) / len(scores)
    out = Path(cfg.out_dir)
    m["confusion_png"] = plot_confusion(m["confusion"], out / "confusion_matrix.png")
    write_json(out / "metrics.json", m)
    return m
