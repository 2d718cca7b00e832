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
from typing import Any

from rlcore.io import DataError, iter_jsonl

from .config import TrainConfig
from .curriculum import compute_curriculum_order, compute_hardness, label_hard_negatives
from .data import UserData, sample_history
from .evaluation_chain import ChainSample, HistoryPair, ScoreRequest, build_messages
from .rewards import get_outcome_reward, get_process_reward

__all__ = ["filter_teacher_chains", "load_teacher_chains", "build_grpo_rows", "run_training"]


def filter_teacher_chains(records: list[dict[str, Any]], where: str = "records") -> tuple[list[dict], dict[str, int]]:
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
        s = ChainSample.from_text(r["chain"], order)
        if s.parsed is None:
            counts["unparsable"] += 1
            continue
        if s.scores[0] == s.scores[1] or (0 if s.scores[0] > s.scores[1] else 1) != r["label"]:
            counts["wrong_preference"] += 1
            continue
        req = ScoreRequest(r["query"], r["response_1"], r["response_2"],
                           tuple(HistoryPair.from_dict(h) for h in r.get("history", [])))
        rows.append({"prompt": build_messages(req, order), "completion": [{"role": "assistant", "content": r["chain"]}]})
        counts["kept"] += 1
    return rows, counts


def load_teacher_chains(path: str) -> tuple[list[dict], dict[str, int]]:
    """Read and filter a teacher-chain JSONL file (errors name the file and line)."""
    return filter_teacher_chains(list(iter_jsonl(path)), where=str(path))


def build_grpo_rows(users: dict[str, UserData], history_size: int, seed: int, hard_fraction: float) -> list[dict]:
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
            rows.append({"prompt": build_messages(req, order), "gold": order.index(0), "query": r.query,
                         "stated_criteria": u.stated_criteria or ""})
            hardness.append(compute_hardness(r.chosen, r.rejected))
    if not rows:
        raise DataError("no train rows to build GRPO prompts from")
    for row, h in zip(rows, label_hard_negatives(hardness, hard_fraction)):
        row["hard"] = h
    return rows


def _grpo_trainer(cfg: TrainConfig, rows: list[dict], curriculum: bool, judge: Any = None):
    import datasets
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
    )
    model, tok = load_model_and_tokenizer(cfg.model, device="cpu" if args.use_cpu else None)
    funcs = [get_outcome_reward()] if curriculum else [get_process_reward(judge), get_outcome_reward()]
    return GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=datasets.Dataset.from_list(rows),
                       processing_class=tok)


def _sft_trainer(cfg: TrainConfig):
    import datasets
    import torch
    from rlcore.builtins import load_model_and_tokenizer
    from trl import SFTConfig, SFTTrainer

    rows, counts = load_teacher_chains(cfg.data)
    if not rows:
        raise DataError(f"{cfg.data}: no teacher chain survived filtering ({counts})")
    cuda = torch.cuda.is_available()
    args = SFTConfig(output_dir=cfg.output_dir, learning_rate=cfg.learning_rate, max_steps=cfg.max_steps,
                     per_device_train_batch_size=cfg.per_device_train_batch_size, seed=cfg.seed,
                     gradient_accumulation_steps=cfg.gradient_accumulation_steps, max_length=cfg.max_length,
                     use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(), report_to="none",
                     logging_steps=1, save_strategy="no", disable_tqdm=True)
    model, tok = load_model_and_tokenizer(cfg.model, device="cpu" if not cuda else None, padding_side="right")
    return SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                      processing_class=tok), counts


def run_training(cfg: TrainConfig, save: bool = True, judge: Any = None) -> dict[str, Any]:
    """Run one stage; returns the trainer's log history and data counts (and saves the model when ``save``).

    ``judge``: the stage-2 process judge ``(query, stated_criteria, chain) -> [0, 1]`` (default: lexical coverage).
    """
    from .data import group_by_user, load_rows, load_stated_criteria

    counts: dict[str, int] = {}
    if cfg.stage == "sft":
        trainer, counts = _sft_trainer(cfg)
    else:
        stated = load_stated_criteria(cfg.stated_prefs) if cfg.stated_prefs else None
        rows = build_grpo_rows(group_by_user(load_rows(cfg.data), stated), cfg.history_size, cfg.seed,
                               cfg.hard_fraction)
        counts = {"prompts": len(rows), "hard": sum(r["hard"] for r in rows)}
        trainer = _grpo_trainer(cfg, rows, curriculum=cfg.stage == "curriculum", judge=judge)
    trainer.train()
    if save:
        trainer.save_model(cfg.output_dir)
    return {"stage": cfg.stage, "log_history": trainer.state.log_history, "data": counts, "trainer": trainer}
