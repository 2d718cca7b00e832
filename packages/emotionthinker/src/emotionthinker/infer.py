"""Inference over EmotionCoT records and evaluation of the predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlcore.io import read_jsonl, write_json
from rlcore.rewards import extract_think_answer

from .config import EvalConfig, InferConfig
from .evaluation import compute_emotion_metrics, plot_confusion
from .policy import normalize_label, parse_answer

__all__ = ["record_id", "run_inference", "evaluate_predictions"]


def record_id(rec: dict[str, Any], line: int) -> str:
    """The resume key of an input record: its ``id`` field, else ``line<N>`` (1-based line of the input)."""
    return str(rec["id"]) if rec.get("id") is not None else f"line{line}"


def run_inference(cfg: InferConfig, policy=None) -> dict[str, int]:
    """One completion per record through an rlcore ``Generator`` (greedy when ``temperature == 0``), streamed.

    Each record is appended to ``cfg.output`` as soon as its batch is done (``rlcore.io.ResumableJsonlWriter``,
    key ``id``); a rerun skips the ids already there, so a killed job resumes where it stopped.

    Returns:
        ``{"written": new records, "skipped": records already in the output}``.
    """
    from rlcore.cli import progress
    from rlcore.device import seed_everything
    from rlcore.io import ResumableJsonlWriter
    from rlcore.rollout import SamplingParams, make_generator

    from .data import load_emotioncot
    from .policy import load_policy
    from .prosody import load_audio

    seed_everything(cfg.seed)
    records = load_emotioncot(cfg.input, cfg.audio_root or None)
    records = records[: cfg.limit] if cfg.limit else records
    with ResumableJsonlWriter(cfg.output, key="id") as writer:
        todo = [(record_id(r, i), r) for i, r in enumerate(records, 1) if record_id(r, i) not in writer]
        skipped = len(records) - len(todo)
        if not todo:
            return {"written": 0, "skipped": skipped}
        policy = policy or load_policy(cfg.model, cfg.device, cfg.dtype)
        gen = make_generator(policy.model, policy.tokenizer, backend=cfg.backend,
                             tensor_parallel_size=cfg.tensor_parallel_size,
                             gpu_memory_utilization=cfg.gpu_memory_utilization)
        params = SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                                bad_token_ids=policy.placeholder_token_ids())
        with progress() as bar:
            task = bar.add_task("infer", total=len(todo))
            for s in range(0, len(todo), cfg.batch_size):
                chunk = todo[s: s + cfg.batch_size]
                waves = [load_audio(r["audio_file"], policy.sample_rate)[0] for _, r in chunk]
                # hf: expanded ids + processor features; vllm: one placeholder + raw audio (vLLM expands it)
                ids, mm = policy.encode_raw(waves) if cfg.backend == "vllm" else policy.encode(waves)
                seeds = [cfg.seed * 1_000_003 + s + k for k in range(len(chunk))]
                outs = gen.generate(prompt_ids=ids, params=params, mm_inputs=mm, seeds=seeds)
                for (rid, r), row in zip(chunk, outs, strict=True):
                    t = row[0].text
                    writer.write({"id": rid, "audio_path": r["audio_path"], "emotion": r["emotion"], "completion": t,
                                  "prediction": parse_answer(t)} | {k: r[k] for k in r if k.endswith("_level")})
                bar.advance(task, len(chunk))
    return {"written": len(todo), "skipped": skipped}


def evaluate_predictions(cfg: EvalConfig) -> dict[str, Any]:
    """Metrics of ``cfg.input`` -> ``output_dir/metrics.json`` + ``confusion_matrix.png``.

    Accuracy, UA (mean per-class recall), soft-label agreement (mean valence-arousal similarity of prediction
    and gold), per-class recall, unparsed share, judge mean. A record needs ``emotion`` and either
    ``completion`` (parsed) or ``prediction``.
    """
    from .judge import get_judge
    from .similarity import load_similarity

    sim = load_similarity(cfg.similarity_file or None)
    path = Path(cfg.input)
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
    m = compute_emotion_metrics(truth, pred, sim)
    if scores:
        m["judge_mean"] = sum(scores) / len(scores)
    out = Path(cfg.output_dir)
    m["confusion_png"] = plot_confusion(m["confusion"], out / "confusion_matrix.png")
    write_json(out / "metrics.json", m)
    return m
