"""GRPO training: dataset loading, the three rewards, TRL config, and the run (``longwriter-zero train``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from rlcore.io import DataError, iter_jsonl

from .config import TrainConfig
from .critic_reward import get_critic_reward
from .format_reward import get_format_reward
from .length_reward import get_length_reward, parse_length_range
from .prompts import STOP_STRINGS, build_prompt
from .verifier import get_constraint_reward
from .writing_reward import get_writing_reward

__all__ = ["load_prompts", "build_reward_funcs", "make_grpo_args", "train"]


def load_prompts(path_or_name: str, question_column: str = "question", length_column: str = "length_range",
                 think: bool = True, split: str = "train", template: str | None = None) -> list[dict[str, Any]]:
    """Records with ``prompt`` (the raw template), ``question`` and a validated ``length_range``.

    A local ``.jsonl`` path is read with errors naming file:line; anything else is loaded with
    ``datasets.load_dataset(path_or_name, split=split)``.

    Raises:
        DataError: a malformed line, a record without the question or the range, or a bad range (file:line named).
    """
    rows: list[tuple[str, dict[str, Any]]] = []
    if path_or_name.endswith(".jsonl") or Path(path_or_name).is_file():
        p = Path(path_or_name)
        if not p.is_file():
            raise FileNotFoundError(f"prompts file not found: {p}")
        with p.open(encoding="utf-8") as f:
            linenos = [i for i, line in enumerate(f, 1) if line.strip()]
        rows = [(f"{p}:{n}", r) for n, r in zip(linenos, iter_jsonl(p), strict=True)]
    else:
        from datasets import load_dataset

        rows = [(f"{path_or_name}[{i}]", dict(r)) for i, r in enumerate(load_dataset(path_or_name, split=split))]
    out = []
    for where, rec in rows:
        q = rec.get(question_column)
        if not isinstance(q, str) or not q.strip():
            raise DataError(f"{where}: field {question_column!r} must be a non-empty string")
        if length_column not in rec:
            raise DataError(f"{where}: no {length_column!r}; run `longwriter-zero predict-length` first")
        try:
            rng = list(parse_length_range(rec[length_column], length_column))
        except ValueError as e:
            raise DataError(f"{where}: {e}") from None
        out.append({**rec, "prompt": build_prompt(q, think, template or None), "question": q, "length_range": rng})
    if not out:
        raise DataError(f"{path_or_name}: no records")
    return out


def build_reward_funcs(cfg: TrainConfig, device: str | None = None, gated: bool = False) -> list:
    """The Length, quality (``cfg.rm_model`` or ``cfg.critic_model``) and Format rewards, then the verifier if ``gated``.

    The constraint verifier's advantage weight is 0: it gates (see :mod:`longwriter_zero.verifier`).
    """
    funcs = [get_length_reward(cfg.l_max, "length_range", cfg.untagged)]
    if cfg.rm_model:
        funcs.append(get_writing_reward(
            cfg.rm_model, max_length=cfg.rm_max_length, max_question_tokens=cfg.rm_max_question_tokens,
            truncation=cfg.rm_truncation, batch_size=cfg.rm_batch_size, device=device, pad_with_eos=cfg.rm_pad_with_eos))
    if cfg.critic_model:
        funcs.append(get_critic_reward(cfg.critic_model, cfg.backend, device, cfg.tensor_parallel_size,
                                       cfg.gpu_memory_utilization, max_new_tokens=cfg.critic_max_new_tokens))
    funcs.append(get_format_reward(cfg.think, cfg.format_ngram, cfg.format_threshold, cfg.format_penalty,
                                   cfg.format_unit_words, cfg.format_repetition, cfg.format_minhash_threshold))
    if gated:
        funcs.append(get_constraint_reward("length_range", cfg.think, cfg.untagged, cfg.gate_format))
    return funcs


def make_grpo_args(cfg: TrainConfig, **overrides: Any):
    """A ``trl.GRPOConfig`` from the train config via :func:`rlcore.training.make_grpo_config` (CPU-safe)."""
    from rlcore.training import make_grpo_config, trl_vllm_kwargs

    weights = [cfg.w_length] + ([cfg.w_writing] if cfg.rm_model or cfg.critic_model else []) + [cfg.w_format]
    weights += [0.0] if cfg.reward_mode == "gated" else []  # the verifier gates; it is not averaged in
    kwargs: dict[str, Any] = dict(
        num_generations=cfg.num_generations, per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, max_steps=cfg.max_steps,
        max_completion_length=cfg.max_completion_length, temperature=cfg.temperature, top_p=cfg.top_p,
        learning_rate=cfg.learning_rate, beta=cfg.beta, epsilon=cfg.epsilon, reward_weights=weights,
        logging_steps=cfg.logging_steps, save_strategy="steps" if cfg.save_steps else "no",
        save_steps=cfg.save_steps or 500, seed=cfg.seed,
        **trl_vllm_kwargs(cfg.backend, cfg.vllm_mode, cfg.tensor_parallel_size, cfg.gpu_memory_utilization),
    )
    if cfg.device == "cpu":
        kwargs.update(use_cpu=True, bf16=False)
    if cfg.backend == "vllm":  # vLLM honours stop strings; HF generate would need the tokenizer at call time
        kwargs["generation_kwargs"] = {"stop": list(STOP_STRINGS)}
    kwargs.update(overrides)
    return make_grpo_config(cfg.output_dir, **kwargs)


def train(cfg: TrainConfig, callbacks: list | None = None, reward_funcs: list | None = None,
          **grpo_overrides: Any) -> dict[str, Any]:
    """Run GRPO; returns the log history and the path of the saved final model.

    ``reward_funcs`` replaces the configured rewards (then pass ``reward_weights=[...]`` in ``grpo_overrides``);
    in gated mode one of them must be the ``constraint_reward``.
    """
    from datasets import Dataset
    from rlcore.builtins import resolve
    from rlcore.checkpoint import resolve_resume
    from rlcore.device import get_device, resolve_dtype, seed_everything
    from rlcore.io import write_json, write_jsonl
    from rlcore.training import is_main_process, preflight_launch, world_size
    from transformers import AutoTokenizer

    from .trainer import LongWriterGRPOTrainer

    seed_everything(cfg.seed)
    preflight_launch()
    records = load_prompts(cfg.input, cfg.question_column, cfg.length_column, cfg.think, cfg.split, cfg.template)
    resume = resolve_resume(cfg.resume, cfg.output_dir)
    path = resolve(cfg.model)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    device = "cpu" if cfg.device == "cpu" else None
    dtype = resolve_dtype("auto", get_device(device))
    args = make_grpo_args(cfg, model_init_kwargs={"dtype": dtype}, **grpo_overrides)
    keep = ["prompt", "question", "length_range"]
    trainer = LongWriterGRPOTrainer(
        model=path, args=args,
        reward_funcs=reward_funcs or build_reward_funcs(cfg, device, cfg.reward_mode == "gated"),
        train_dataset=Dataset.from_list([{k: r[k] for k in keep} for r in records]), processing_class=tok,
        callbacks=callbacks, reward_mode=cfg.reward_mode, gate_margin=cfg.gate_margin)
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    final = Path(cfg.output_dir) / "final"
    trainer.save_model(str(final))  # every rank calls it (ZeRO-3 gathers); transformers writes on the main one
    per_rank = _prompts_per_rank(trainer)  # a collective: every rank takes part
    if is_main_process():
        tok.save_pretrained(str(final))
        write_jsonl(Path(cfg.output_dir) / "log_history.jsonl", trainer.state.log_history)
        write_json(Path(cfg.output_dir) / "train_config.json", dataclasses.asdict(cfg))
        write_json(Path(cfg.output_dir) / "train_summary.json", {
            "world_size": world_size(), "global_step": trainer.state.global_step, "final_model": str(final),
            "resumed_from": str(resume) if resume else None,
            "prompts_per_rank": per_rank})
    return {"log_history": trainer.state.log_history, "final_model": str(final), "trainer": trainer}


def _prompts_per_rank(trainer) -> list[list[str]]:
    """The distinct questions each rank generated for in its last step (gathered), to check data sharding."""
    from accelerate.utils import gather_object

    return gather_object([sorted(set(trainer._lwz_last_questions))])
