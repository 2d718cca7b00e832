"""GRPO training with the LoongRL curriculum on top of ``trl.GRPOTrainer`` (no subclass needed).

What maps where: G -> ``num_generations``; KL 0.001 as a k3 loss -> ``beta`` (TRL adds ``beta * k3`` to the loss, as
verl's ``use_kl_loss`` with ``low_var_kl`` does, without verl's [-10, 10] clamp); clip 0.2 -> ``epsilon``; token-mean
aggregation -> ``loss_type="dapo"``; group std scaling -> ``scale_rewards="group"``. Each stage is one
``GRPOTrainer.train()`` continuing from the previous stage's weights; the reference model is always the initial
checkpoint (TRL reloads it from ``model.config._name_or_path``), as in verl. The cosine schedule restarts per stage.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlcore.io import DataError, iter_jsonl, write_json

from .config import TrainConfig
from .curriculum import build_curriculum, mine_hard_items
from .prompts import keychain_prompt, multihop_prompt, to_messages
from .reward import get_sub_em_reward

__all__ = ["keychain_rows", "multihop_rows", "extra_rows", "grpo_args", "train"]


def keychain_rows(records: Sequence[dict[str, Any]], variant: str = "plain", system: str | None = None,
                  where: str = "keychain data") -> list[dict[str, Any]]:
    """``{"prompt", "answers"}`` rows with the KeyChain prompt, from ``loongrl synth`` records."""
    rows = []
    for n, r in enumerate(records):
        for key in ("distractor_context", "chain_head_with_question", "answers"):
            if key not in r:
                raise DataError(f"{where} record {n} (id {r.get('id', '?')!r}): missing field {key!r}")
        rows.append({"prompt": to_messages(keychain_prompt(r["distractor_context"], r["chain_head_with_question"],
                                                           variant), system), "answers": list(r["answers"])})
    return rows


def multihop_rows(records: Sequence[dict[str, Any]], system: str | None = None,
                  where: str = "multi-hop data") -> list[dict[str, Any]]:
    """Plain multi-hop rows from records with ``context``, ``input`` and ``answers`` (synth or LongBench files)."""
    rows = []
    for n, r in enumerate(records):
        for key in ("context", "input", "answers"):
            if key not in r:
                raise DataError(f"{where} record {n} (id {r.get('id', r.get('_id', '?'))!r}): missing field {key!r}")
        answers = [r["answers"]] if isinstance(r["answers"], str) else list(r["answers"])
        if not answers:
            raise DataError(f"{where} record {n}: no answer")
        rows.append({"prompt": to_messages(multihop_prompt(r["context"], r["input"]), system), "answers": answers})
    return rows


def extra_rows(records: Sequence[dict[str, Any]], system: str | None = None, where: str = "extra data") -> list[dict[str, Any]]:
    """Rows from ``{"prompt": str | messages, "answers": [...]}`` records (needle retrieval, math)."""
    rows = []
    for n, r in enumerate(records):
        if "prompt" not in r or "answers" not in r:
            raise DataError(f"{where} record {n}: needs 'prompt' and 'answers'")
        prompt = to_messages(r["prompt"], system) if isinstance(r["prompt"], str) else r["prompt"]
        rows.append({"prompt": prompt, "answers": [r["answers"]] if isinstance(r["answers"], str) else r["answers"]})
    return rows


def _load_sources(cfg: TrainConfig) -> dict[str, list[dict[str, Any]]]:
    sources: dict[str, list[dict[str, Any]]] = {}
    sys = cfg.system_prompt or None
    if cfg.keychain_data:
        sources["keychain"] = keychain_rows(list(iter_jsonl(cfg.keychain_data)), cfg.prompt_variant, sys,
                                            cfg.keychain_data)
    if cfg.multihop_data:
        sources["multihop"] = multihop_rows(list(iter_jsonl(cfg.multihop_data)), sys, cfg.multihop_data)
    for path in cfg.extra_data:
        sources.setdefault("extra", []).extend(extra_rows(list(iter_jsonl(path)), sys, path))
    if not sources:
        raise ValueError("no training data: set keychain_data, multihop_data or extra_data")
    return sources


def grpo_args(cfg: TrainConfig, output_dir: str, max_steps: int):
    """The ``trl.GRPOConfig`` of one stage (spec defaults via ``cfg``)."""
    from rlcore.training import make_grpo_config

    extra: dict[str, Any] = {"use_cpu": True} if cfg.use_cpu else {}
    if cfg.use_cpu or cfg.bf16:
        extra["bf16"] = cfg.bf16 and not cfg.use_cpu
    return make_grpo_config(
        output_dir, max_steps=max_steps, num_generations=cfg.num_generations, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type, beta=cfg.beta, epsilon=cfg.epsilon,
        max_grad_norm=cfg.max_grad_norm, max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature, per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, seed=cfg.seed,
        logging_steps=cfg.logging_steps, save_strategy=cfg.save_strategy, loss_type="dapo",
        scale_rewards="group", activation_checkpointing=cfg.gradient_checkpointing, **extra,
    )


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run the curriculum; saves ``<output_dir>/final`` and ``<output_dir>/train_log.json``; returns the log.

    Raises:
        ValueError: no model or data, or a stage with none of its data sources given.
    """
    from datasets import Dataset
    from rlcore.builtins import load_model_and_tokenizer
    from trl import GRPOTrainer

    from .sampling import HFSampler

    if not cfg.model:
        raise ValueError("model is required (a path or builtin:<name>)")
    sources = _load_sources(cfg)
    model, tok = load_model_and_tokenizer(cfg.model, device="cpu" if cfg.use_cpu else None)
    reward = get_sub_em_reward(cfg.credit_empty_prediction)
    rng = random.Random(cfg.seed)
    log: dict[str, Any] = {"stages": []}
    for stage in build_curriculum(cfg.warmup_steps, cfg.stage1_steps, cfg.stage2_steps, "extra" in sources):
        rows = [r for s in stage.sources for r in sources.get(s, [])]
        if not rows:
            raise ValueError(f"stage {stage.name!r} needs data from {list(stage.sources)}; none was given")
        entry: dict[str, Any] = {"name": stage.name, "steps": stage.steps, "sources": [s for s in stage.sources
                                                                                      if s in sources]}
        if stage.hard_mining:
            pool = rng.sample(rows, len(rows) if cfg.mining_pool < 0 else min(cfg.mining_pool, len(rows)))
            sampler = HFSampler(model, tok, temperature=cfg.temperature, max_new_tokens=cfg.max_completion_length,
                                seed=cfg.seed)
            rows, entry["mining"] = mine_hard_items(pool, sampler, cfg.mining_samples, cfg.credit_empty_prediction)
            if not rows:
                entry["skipped"] = "every mined item was solved in all rollouts"
                log["stages"].append(entry)
                continue
        entry["rows"] = len(rows)
        model.train()
        trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=grpo_args(cfg, str(Path(cfg.output_dir) / stage.name), stage.steps),
                              train_dataset=Dataset.from_list(rows), processing_class=tok)
        trainer.train()
        model = trainer.model
        entry["log_history"] = [h for h in trainer.state.log_history if "loss" in h]
        log["stages"].append(entry)
    final = Path(cfg.output_dir) / "final"
    model.save_pretrained(str(final))
    tok.save_pretrained(str(final))
    log["final_model"] = str(final)
    write_json(Path(cfg.output_dir) / "train_log.json", log)
    return log
