"""GRPO training with the LoongRL curriculum on top of ``trl.GRPOTrainer`` (no subclass needed).

Rewards are routed by each row's ``data_source``: two-way sub-EM for KeyChain and multi-hop QA, exact match for
needle retrieval, math-verify for math (``reward.LoongRLReward``).

What maps where: G -> ``num_generations``; KL 0.001 as a k3 loss -> ``beta`` (TRL adds ``beta * k3`` to the loss, as
verl's ``use_kl_loss`` with ``low_var_kl`` does, without verl's [-10, 10] clamp); clip 0.2 -> ``epsilon``; token-mean
aggregation -> ``loss_type="dapo"``; group std scaling -> ``scale_rewards="group"``. Each stage is one
``GRPOTrainer.train()`` continuing from the previous stage's weights; the reference model is always the initial
checkpoint (TRL reloads it from ``model.config._name_or_path``), as in verl. The cosine schedule restarts per stage.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlcore.io import DataError, iter_jsonl, write_json

from .config import TrainConfig
from .curriculum import build_curriculum, mine_hard_items
from .prompts import keychain_prompt, multihop_prompt, to_messages
from .reward import REWARD_KINDS, LoongRLReward, reward_kind

__all__ = ["keychain_rows", "multihop_rows", "extra_rows", "grpo_args", "train"]


def keychain_rows(records: Sequence[dict[str, Any]], variant: str = "plain", system: str | None = None,
                  where: str = "keychain data") -> list[dict[str, Any]]:
    """``{"prompt", "answers", "data_source".

    "qa", "row_id"}`` rows with the KeyChain prompt, from ``loongrl synth`` records.
    """
    rows = []
    for n, r in enumerate(records):
        for key in ("distractor_context", "chain_head_with_question", "answers"):
            if key not in r:
                raise DataError(f"{where} record {n} (id {r.get('id', '?')!r}): missing field {key!r}")
        rows.append({"prompt": to_messages(keychain_prompt(r["distractor_context"], r["chain_head_with_question"],
                                                           variant), system), "answers": list(r["answers"]),
                     "data_source": "qa", "row_id": f"{where}#{r.get('id', n)}"})
    return rows


def multihop_rows(records: Sequence[dict[str, Any]], system: str | None = None,
                  where: str = "multi-hop data") -> list[dict[str, Any]]:
    """Plain multi-hop rows from records with ``context``, ``input`` and ``answers``.

    From synth-mix or LongBench files; their reward is two-way sub-EM (``data_source`` "qa").
    """
    rows = []
    for n, r in enumerate(records):
        for key in ("context", "input", "answers"):
            if key not in r:
                raise DataError(f"{where} record {n} (id {r.get('id', r.get('_id', '?'))!r}): missing field {key!r}")
        answers = [r["answers"]] if isinstance(r["answers"], str) else list(r["answers"])
        if not answers:
            raise DataError(f"{where} record {n}: no answer")
        rows.append({"prompt": to_messages(multihop_prompt(r["context"], r["input"]), system), "answers": answers,
                     "data_source": "qa", "row_id": f"{where}#{r.get('id', n)}"})
    return rows


def extra_rows(records: Sequence[dict[str, Any]], system: str | None = None, where: str = "extra data") -> list[dict[str, Any]]:
    """Rows from ``{"prompt": str | messages, "answers": [...], "data_source": ...}`` records (needle, math).

    Raises:
        DataError: a record without ``prompt``/``answers``, or without ``data_source`` (the reward would be
            guessed: a math or needle row must not silently get the two-way substring reward).
    """
    rows = []
    for n, r in enumerate(records):
        if "prompt" not in r or "answers" not in r:
            raise DataError(f"{where} record {n}: needs 'prompt' and 'answers'")
        if not isinstance(r.get("data_source"), str) or not r["data_source"]:
            raise DataError(f"{where} record {n}: needs 'data_source' (one of {list(REWARD_KINDS)} or an official "
                            "verl name) so its reward is routed; `loongrl synth-mix` writes it")
        prompt = to_messages(r["prompt"], system) if isinstance(r["prompt"], str) else r["prompt"]
        rows.append({"prompt": prompt, "answers": [r["answers"]] if isinstance(r["answers"], str) else r["answers"],
                     "data_source": reward_kind(r["data_source"]), "row_id": f"{where}#{r.get('id', n)}"})
    return rows


def _load_sources(cfg: TrainConfig) -> dict[str, list[dict[str, Any]]]:
    sources: dict[str, list[dict[str, Any]]] = {}
    sys = cfg.system_prompt or None
    if cfg.input:
        sources["keychain"] = keychain_rows(list(iter_jsonl(cfg.input)), cfg.prompt_variant, sys, cfg.input)
    if cfg.multihop_input:
        sources["multihop"] = multihop_rows(list(iter_jsonl(cfg.multihop_input)), sys, cfg.multihop_input)
    for path in cfg.extra_input:
        sources.setdefault("extra", []).extend(extra_rows(list(iter_jsonl(path)), sys, path))
    if not sources:
        raise ValueError("no training data: set --input (KeyChain), --multihop-input or --extra-input")
    return sources


def grpo_args(cfg: TrainConfig, output_dir: str, max_steps: int):
    """The ``trl.GRPOConfig`` of one stage (spec defaults via ``cfg``).

    ``backend="vllm"`` turns on TRL's own vLLM rollouts (``use_vllm``, ``vllm_mode`` colocate/server).
    """
    from rlcore.training import make_grpo_config

    cpu = cfg.device == "cpu"
    extra: dict[str, Any] = {"use_cpu": True} if cpu else {}
    if cpu or cfg.bf16:
        extra["bf16"] = cfg.bf16 and not cpu
    if cfg.save_steps:
        extra.update(save_strategy="steps", save_steps=cfg.save_steps)
    return make_grpo_config(
        output_dir, backend=cfg.backend, vllm_mode=cfg.vllm_mode, tensor_parallel_size=cfg.tensor_parallel_size,
        gpu_memory_utilization=cfg.gpu_memory_utilization, max_steps=max_steps, num_generations=cfg.num_generations, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type, beta=cfg.beta, epsilon=cfg.epsilon,
        max_grad_norm=cfg.max_grad_norm, max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature, per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, seed=cfg.seed,
        logging_steps=cfg.logging_steps, loss_type="dapo", disable_tqdm=False,
        scale_rewards="group", activation_checkpointing=cfg.gradient_checkpointing, **extra,
    )


class _RowRecorder(LoongRLReward):
    """The routed reward, also recording which rows this process scored (to show data sharding across ranks)."""

    def __init__(self, credit_empty_prediction: bool = False):
        super().__init__(credit_empty_prediction)
        self.seen: list[list[str]] = []  # per reward call (= per generation batch), the rows this rank scored

    def __call__(self, prompts: list, completions: list, answers: list | None = None,
                 data_source: list | None = None, row_id: list | None = None, **kwargs: Any) -> list[float | None]:
        self.seen.append(sorted(set(row_id or [])))
        return super().__call__(prompts, completions, answers=answers, data_source=data_source, **kwargs)


def _gather(obj: Any) -> list[Any]:
    """``obj`` of every process (``[obj]`` in a single-process run)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        out: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


def _resume_point(cfg: TrainConfig, stages: Sequence[Any]) -> tuple[int, str | None]:
    """``(first stage to run, checkpoint to resume it from)`` for ``--resume``.

    finished stages (with a ``stage_log.json``) are skipped.
    """
    out = Path(cfg.output_dir)
    if not cfg.resume:
        return 0, None
    if cfg.resume != "latest":
        ckpt = Path(cfg.resume)
        if not ckpt.is_dir():
            raise ValueError(f"--resume: no checkpoint at {cfg.resume}")
        names = [s.name for s in stages]
        if ckpt.parent.name not in names:
            raise ValueError(f"--resume: {cfg.resume} is not inside a stage folder {names} of a loongrl run")
        return names.index(ckpt.parent.name), str(ckpt)
    for k, st in enumerate(stages):
        if (out / st.name / "stage_log.json").is_file():
            continue
        ckpts = sorted((p for p in (out / st.name).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
                        and (p / "trainer_state.json").is_file()),  # written last: a complete checkpoint
                       key=lambda p: int(p.name.split("-")[-1]))
        return k, str(ckpts[-1]) if ckpts else None
    return len(stages), None


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run the curriculum; saves ``<output_dir>/final`` and ``<output_dir>/train_log.json``; returns the log.

    Each stage trains in ``<output_dir>/<stage>/`` (TRL ``checkpoint-N`` folders every ``save_steps``) and ends
    with ``<stage>/final`` + ``<stage>/stage_log.json``. ``resume="latest"`` skips finished stages, reloads the last
    finished stage's weights and resumes the stage in progress from its newest checkpoint (optimizer, scheduler,
    RNG, data position and log history: ``Trainer.train(resume_from_checkpoint=...)``). Only the main process
    writes files and the log.

    Raises:
        ValueError: no model or data, or a stage with none of its data sources given.
    """
    from datasets import Dataset
    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.io import write_jsonl
    from rlcore.training import is_main_process, preflight_launch, world_size
    from trl import GRPOTrainer

    from .generation import fold_system, template_has_system

    preflight_launch()
    if cfg.backend == "vllm":
        from .generation import check_backend

        check_backend(cfg.backend)
    if not cfg.model:
        raise ValueError("model is required (a path or builtin:<name>)")
    sources = _load_sources(cfg)
    stages = build_curriculum(cfg.warmup_steps, cfg.stage1_steps, cfg.stage2_steps, "extra" in sources)
    first, ckpt = _resume_point(cfg, stages)
    out = Path(cfg.output_dir)
    start_model = cfg.model if first == 0 else str(out / stages[first - 1].name / "final")
    model, tok = load_model_and_tokenizer(start_model, device="cpu" if cfg.device == "cpu" else None)
    if first > 0:  # TRL builds the KL reference from config._name_or_path: keep it the initial model, as verl does
        from rlcore.builtins import resolve

        model.config._name_or_path = resolve(cfg.model)
    notes = []
    if cfg.system_prompt and not template_has_system(tok):
        notes.append("the chat template has no system turn: the system prompt was folded into the user turn")
        for rows in sources.values():
            for r in rows:
                r["prompt"] = fold_system(r["prompt"])
    reward = _RowRecorder(cfg.credit_empty_prediction)
    rng = random.Random(cfg.seed)
    log: dict[str, Any] = {"stages": [], "notes": notes}
    for k, stage in enumerate(stages):
        sdir = out / stage.name
        if k < first:
            log["stages"].append(json.loads((sdir / "stage_log.json").read_text(encoding="utf-8")))
            continue
        rows = [r for s in stage.sources for r in sources.get(s, [])]
        if not rows:
            raise ValueError(f"stage {stage.name!r} needs data from {list(stage.sources)}; none was given")
        entry: dict[str, Any] = {"name": stage.name, "steps": stage.steps, "sources": [s for s in stage.sources
                                                                                      if s in sources]}
        if stage.hard_mining:
            rows, entry["mining"] = _mine(cfg, model, tok, rows, rng, sdir)
            if not rows:
                entry["skipped"] = "every mined item was solved in all rollouts"
                log["stages"].append(entry)
                continue
        entry["rows"] = len(rows)
        model.train()
        trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=grpo_args(cfg, str(sdir), stage.steps),
                              train_dataset=Dataset.from_list(rows), processing_class=tok)
        trainer.train(resume_from_checkpoint=ckpt if k == first else None)
        model = trainer.model
        entry["log_history"] = [h for h in trainer.state.log_history if "loss" in h]
        trainer.save_model(str(sdir / "final"))  # rank-aware
        if is_main_process():
            tok.save_pretrained(str(sdir / "final"))
            write_json(sdir / "stage_log.json", entry)
        log["stages"].append(entry)
    seen = _gather(reward.seen)
    log["world_size"] = world_size()
    # per rank, the rows scored in each generation batch (a count per batch for large runs)
    small = sum(len(b) for r in seen for b in r) <= 2000
    log["rank_rows"] = seen if small else [[len(b) for b in r] for r in seen]
    final = out / "final"
    if is_main_process():
        model.save_pretrained(str(final))
        tok.save_pretrained(str(final))
        write_json(out / "train_log.json", {**log, "final_model": str(final)})
        if log["stages"] and "log_history" in log["stages"][-1]:
            write_jsonl(out / "metrics.jsonl", ({"stage": s["name"], **h} for s in log["stages"]
                                                for h in s.get("log_history", [])))
    log["final_model"] = str(final)
    return log


def _mine(cfg: TrainConfig, model: Any, tok: Any, rows: list[dict[str, Any]], rng: random.Random,
          sdir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Stage II hard mining through rlcore's generator.

    the mined rows are saved to ``<stage>/mined.jsonl`` and reused on resume.
    """
    from rlcore.io import read_jsonl, write_jsonl
    from rlcore.training import is_main_process

    from .generation import ChatSampler, make_chat_sampler

    cache = sdir / "mined.jsonl"
    if cache.is_file():
        saved = read_jsonl(cache)
        return [r["row"] for r in saved[1:]], saved[0]["stats"]
    pool = rng.sample(rows, len(rows) if cfg.mining_pool < 0 else min(cfg.mining_pool, len(rows)))
    sampler: ChatSampler = make_chat_sampler(cfg, model.eval(), tok, top_p=1.0,
                                             max_new_tokens=cfg.max_completion_length)
    if hasattr(sampler.generator, "load_weights"):
        sampler.generator.load_weights(model)  # vLLM: roll out the current policy, not the initial weights
    kept, stats = mine_hard_items(pool, sampler, cfg.mining_samples, cfg.credit_empty_prediction)
    if is_main_process():
        write_jsonl(cache, [{"stats": stats}, *({"row": r} for r in kept)])
    return kept, stats
