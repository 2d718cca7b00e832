"""The three training stages through TRL: PSI (SFTTrainer), CRE (GRPOTrainer), hard-negative curriculum (GRPO).

* Stage 1, Persona-guided Scoring Induction: a teacher wrote chains seeing the stated criteria; keep only chains
  that parse and prefer the user's response, and fine-tune on (student prompt -> chain). The student prompt is the
  test-time prompt (no stated criteria): the model must learn to infer them.
* Stage 2, Criteria-based Reasoning Enhancement: GRPO with ``alpha * R_process + beta * R_outcome``.
* Stage 3: GRPO with the outcome reward on a dataset ordered so the hard-negative share rises (no shuffling).
No trainer is subclassed: the stages differ only in data and rewards.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from rlcore.io import DataError, iter_jsonl

from .chain_parser import ChainSample
from .config import TrainConfig
from .curriculum import compute_curriculum_order, compute_hardness, label_hard_negatives
from .data import UserData, sample_history
from .evaluation_chain import HistoryPair, ScoreRequest, build_messages
from .rewards import get_outcome_reward, get_process_reward
from .scoring import fit_messages

__all__ = ["filter_teacher_chains", "load_teacher_chains", "build_grpo_rows", "run_training"]


def filter_teacher_chains(records: list[dict[str, Any]], where: str = "records",
                          strict_arithmetic: bool = False) -> tuple[list[dict], dict[str, int]]:
    """PSI filtering: SFT examples from the teacher chains that parse and prefer the labelled response.

    Each record: ``query, response_1, response_2, history (list of {user, chosen, rejected}), order ([0, 1] or
    [1, 0], the display order the teacher saw), chain, label`` (original index 0/1 of the user's response).
    Returns conversational prompt/completion rows and counts (kept, unparsable, wrong_preference).
    """
    rows, counts = [], {"kept": 0, "unparsable": 0, "wrong_preference": 0}
    for i, r in enumerate(records):
        missing = [k for k in ("query", "response_1", "response_2", "chain", "label") if k not in r]
        if missing:
            raise DataError(f"{where}[{i}]: teacher record lacks {missing}")
        order = tuple(r.get("order", (0, 1)))
        if order not in ((0, 1), (1, 0)) or r["label"] not in (0, 1):
            raise DataError(f"{where}[{i}]: 'order' must be [0, 1] or [1, 0] and 'label' 0 or 1")
        s = ChainSample.from_text(r["chain"], order, strict_arithmetic=strict_arithmetic)
        if s.parsed is None:
            counts["unparsable"] += 1
            continue
        if s.scores[0] == s.scores[1] or (0 if s.scores[0] > s.scores[1] else 1) != r["label"]:
            counts["wrong_preference"] += 1
            continue
        req = ScoreRequest(r["query"], r["response_1"], r["response_2"],
                           tuple(HistoryPair.from_dict(h) for h in r.get("history", [])))
        rows.append({"prompt": build_messages(req, order, strict_arithmetic), "completion": [{"role": "assistant", "content": r["chain"]}]})
        counts["kept"] += 1
    return rows, counts


def load_teacher_chains(path: str, strict_arithmetic: bool = False) -> tuple[list[dict], dict[str, int]]:
    """Read and filter a teacher-chain JSONL file (errors name the file and line)."""
    return filter_teacher_chains(list(iter_jsonl(path)), where=str(path), strict_arithmetic=strict_arithmetic)


def build_grpo_rows(users: dict[str, UserData], history_size: int, seed: int, hard_fraction: float,
                    strict_arithmetic: bool = False) -> list[dict]:
    """GRPO rows from the users' train rows.

    Columns: student ``prompt`` (no stated criteria), ``gold``, ``stated_criteria``, ``query`` and the curriculum's
    ``hard`` flag. The history is leave-one-out from the user's train rows.
    """
    rng = random.Random(seed)
    rows, hardness = [], []
    for u in users.values():
        for r in u.train:
            hist = sample_history(u.train, history_size, seed, exclude=r.row_id, key=f"{u.user_id}:{r.row_id}")
            order = (0, 1) if rng.random() < 0.5 else (1, 0)  # original: 0 = chosen, 1 = rejected
            req = ScoreRequest(r.query, r.chosen, r.rejected, hist)
            rows.append({"prompt": build_messages(req, order, strict_arithmetic), "gold": order.index(0), "query": r.query,
                         "stated_criteria": u.stated_criteria or ""})
            hardness.append(compute_hardness(r.chosen, r.rejected))
    if not rows:
        raise DataError("no train rows to build GRPO prompts from")
    for row, h in zip(rows, label_hard_negatives(hardness, hard_fraction)):
        row["hard"] = h
    return rows


def _grpo_trainer(cfg: TrainConfig, rows: list[dict], curriculum: bool, judge: Any = None):
    import datasets
    import torch
    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.training import make_grpo_config
    from trl import GRPOTrainer

    if curriculum:
        order = compute_curriculum_order([r["hard"] for r in rows],
                                         cfg.per_device_train_batch_size // cfg.num_generations,
                                         cfg.hn_start, cfg.hn_end, cfg.seed)
        rows = [rows[i] for i in order]
    args = make_grpo_config(
        cfg.output_dir, learning_rate=cfg.learning_rate, max_steps=cfg.max_steps, seed=cfg.seed,
        per_device_train_batch_size=cfg.per_device_train_batch_size, num_generations=cfg.num_generations,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, max_completion_length=cfg.max_completion_length,
        shuffle_dataset=not curriculum,
        reward_weights=[cfg.beta] if curriculum else [cfg.alpha, cfg.beta],
        backend=cfg.backend, tensor_parallel_size=cfg.tensor_parallel_size,
        gpu_memory_utilization=cfg.gpu_memory_utilization, disable_tqdm=False, **_save_kw(cfg),
        **({} if cfg.device == "auto" else {"use_cpu": not _use_cuda(cfg), "bf16": _use_cuda(cfg)
                                            and torch.cuda.is_bf16_supported()}),
    )
    model, tok = load_model_and_tokenizer(cfg.model, device="cpu" if args.use_cpu else None)
    rows = [{**r, "prompt": fit_messages(r["prompt"], tok)} for r in rows]
    outcome = get_outcome_reward(cfg.strict_arithmetic)
    funcs = [outcome] if curriculum else [get_process_reward(judge), outcome]
    return GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=datasets.Dataset.from_list(rows),
                       processing_class=tok)


def _sft_trainer(cfg: TrainConfig):
    import datasets
    import torch
    from rlcore.builtins import load_model_and_tokenizer
    from trl import SFTConfig, SFTTrainer

    rows, counts = load_teacher_chains(cfg.input, cfg.strict_arithmetic)
    if not rows:
        raise DataError(f"{cfg.input}: no teacher chain survived filtering ({counts})")
    cuda = _use_cuda(cfg)
    args = SFTConfig(output_dir=cfg.output_dir, learning_rate=cfg.learning_rate, max_steps=cfg.max_steps,
                     per_device_train_batch_size=cfg.per_device_train_batch_size, seed=cfg.seed,
                     gradient_accumulation_steps=cfg.gradient_accumulation_steps, max_length=cfg.max_length,
                     use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(), report_to="none",
                     logging_steps=1, disable_tqdm=False, **_save_kw(cfg))
    model, tok = load_model_and_tokenizer(cfg.model, device="cpu" if not cuda else None, padding_side="right")
    rows = [{**r, "prompt": fit_messages(r["prompt"], tok)} for r in rows]
    return SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                      processing_class=tok), counts


def _use_cuda(cfg: TrainConfig) -> bool:
    """``--device``: auto = CUDA when available; cuda without a GPU is an error."""
    import torch

    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: cuda requested but no CUDA device is available")
    return cfg.device != "cpu" and torch.cuda.is_available()


def _save_kw(cfg: TrainConfig) -> dict[str, Any]:
    """Transformers checkpointing: ``checkpoint-N`` every ``save_steps`` (0 = none; the final model is saved)."""
    return {"save_strategy": "steps", "save_steps": cfg.save_steps} if cfg.save_steps else {"save_strategy": "no"}


def run_training(cfg: TrainConfig, save: bool = True, judge: Any = None) -> dict[str, Any]:
    """Run one stage; returns the trainer's log history and data counts (and saves the model when ``save``).

    Multi-process (``accelerate launch``): TRL/transformers shard the data and reduce the metrics; only the main
    process writes ``metrics.jsonl`` (the log history, rewritten whole, so a resumed run has no duplicate rows).
    ``--resume latest|PATH`` continues from a transformers ``checkpoint-N`` (optimizer, scheduler, RNG, data
    position). ``judge``: the stage-2 process judge ``(query, stated_criteria, chain) -> [0, 1]`` (default:
    lexical coverage).
    """
    from rlcore.checkpoint import resolve_resume
    from rlcore.io import write_jsonl
    from rlcore.training import is_main_process, preflight_launch, world_size

    from .data import group_by_user, load_rows, load_stated_criteria

    preflight_launch()
    resume = resolve_resume(cfg.resume, cfg.output_dir)
    counts: dict[str, int] = {}
    if cfg.stage == "sft":
        if cfg.backend != "hf":
            raise ValueError("backend: the sft stage does not generate; use --backend hf")
        trainer, counts = _sft_trainer(cfg)
    else:
        stated = load_stated_criteria(cfg.stated_prefs) if cfg.stated_prefs else None
        rows = build_grpo_rows(group_by_user(load_rows(cfg.input), stated), cfg.history_size, cfg.seed,
                               cfg.hard_fraction, cfg.strict_arithmetic)
        counts = {"prompts": len(rows), "hard": sum(r["hard"] for r in rows)}
        trainer = _grpo_trainer(cfg, rows, curriculum=cfg.stage == "curriculum", judge=judge)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    if save:
        trainer.save_model(cfg.output_dir)
    history = trainer.state.log_history
    if is_main_process():
        write_jsonl(Path(cfg.output_dir) / "metrics.jsonl", (h for h in history if "step" in h))
    return {"stage": cfg.stage, "log_history": history, "data": counts, "trainer": trainer,
            "world_size": world_size(), "resumed_from": str(resume) if resume else None}
