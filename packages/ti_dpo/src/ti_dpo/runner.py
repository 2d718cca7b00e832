"""End-to-end runs behind the CLI and the demo.

Train from a :class:`TrainConfig`, evaluate from an :class:`EvalConfig`: explicit arguments in, metrics dicts out.
"""

from __future__ import annotations

import copy
from typing import Any

from .config import EvalConfig, TrainConfig

__all__ = ["build_trainer", "run_train", "run_eval"]

_TI_FIELDS = ("beta", "gamma", "ti_lambda", "alpha_kl", "prior_sigma_div", "triplet_margin", "importance_span",
              "weight_normalization", "token_weighting", "importance", "prior", "attribution", "batch_layout",
              "anchor_max_new_tokens", "anchor_reuse_steps", "learning_rate", "optim", "warmup_steps",
              "max_grad_norm", "max_steps", "num_train_epochs", "per_device_train_batch_size",
              "gradient_accumulation_steps", "max_length", "precompute_ref_log_probs", "logging_steps", "seed")


def trainer_args(cfg: TrainConfig, device_type: str = "cpu", bf16: bool = False) -> Any:
    """The :class:`TIDPOConfig` of a resolved :class:`TrainConfig` (every preset-controlled field already set)."""
    from .trainer import TIDPOConfig

    ckpt = cfg.activation_checkpointing
    return TIDPOConfig(
        **{k: getattr(cfg, k) for k in _TI_FIELDS},
        output_dir=cfg.output_dir, anchor_backend=cfg.backend,
        anchor_tensor_parallel_size=cfg.tensor_parallel_size,
        anchor_gpu_memory_utilization=cfg.gpu_memory_utilization,
        use_cpu=device_type == "cpu", bf16=bf16, report_to="none",
        save_strategy="steps" if cfg.save_steps > 0 else "no", save_steps=cfg.save_steps or 500,
        activation_checkpointing=ckpt != "off",
        activation_checkpointing_kwargs={"use_reentrant": ckpt == "reentrant"} if ckpt != "off" else None,
        dataset_num_proc=None,
    )


def build_trainer(cfg: TrainConfig, model: Any = None, tokenizer: Any = None, train_dataset: Any = None) -> Any:
    """A :class:`TIDPOTrainer` for ``cfg``; ``model``/``tokenizer``/``train_dataset`` override loading (tests, demo)."""
    import torch
    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.device import get_device

    from .data import load_preference_pairs
    from .trainer import TIDPOTrainer

    device = get_device(cfg.device)
    if cfg.backend == "vllm" and (cfg.gamma or 0) > 0:  # one line before anything heavy is loaded
        import importlib.util

        from .anchor import VLLM_MISSING

        if importlib.util.find_spec("vllm") is None:
            raise ValueError(VLLM_MISSING)
    if train_dataset is None:  # before the model: a bad data path fails fast
        train_dataset = load_preference_pairs(cfg.input, cfg.split)
    if model is None:
        model, tokenizer = load_model_and_tokenizer(cfg.model, device=device, dtype="float32")
    args = trainer_args(cfg, device.type, device.type == "cuda" and torch.cuda.is_bf16_supported())
    peft_config, ref_model = None, None
    if cfg.lora_r > 0:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, target_modules="all-linear")
    elif not cfg.precompute_ref_log_probs or args.gamma > 0:
        ref_model = copy.deepcopy(model).eval()
    return TIDPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=train_dataset,
                        processing_class=tokenizer, peft_config=peft_config)


def resolve_resume(resume: str | None, output_dir: str) -> str | None:
    """``None`` | ``"latest"`` (newest ``checkpoint-N`` in ``output_dir``, or ``None`` with a note) | a path.

    Raises:
        ValueError: a path that does not exist (named).
    """
    from pathlib import Path

    if not resume:
        return None
    try:
        from rlcore.checkpoint import resolve_resume as _resolve
    except ImportError:
        _resolve = None
    if _resolve is not None:
        found = _resolve(resume, output_dir)
        return str(found) if found is not None else None
    if resume == "latest":
        from transformers.trainer_utils import get_last_checkpoint

        last = get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
        if last is None:
            from rlcore.cli import console

            console().print(f"note: no checkpoint in {output_dir}; starting from scratch")
        return last
    if not Path(resume).is_dir():
        raise ValueError(f"--resume: no checkpoint at {resume}")
    return resume


def run_train(cfg: TrainConfig) -> dict[str, Any]:
    """Train, save the model and ``train_metrics.json`` under ``cfg.output_dir``; return the metrics.

    Only the main process writes; ``world_size`` is recorded. ``cfg.resume`` continues a ``checkpoint-N``.
    """
    from pathlib import Path

    from rlcore.io import write_json

    resume = resolve_resume(cfg.resume, cfg.output_dir)
    trainer = build_trainer(cfg)
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(cfg.output_dir)
    metrics = {"data": trainer.data_report, "log_history": trainer.state.log_history,
               "world_size": trainer.accelerator.num_processes, "attribution": trainer.attribution_mode,
               "resumed_from": resume}
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(cfg.output_dir)
        write_json(Path(cfg.output_dir) / "train_metrics.json", metrics)
    return metrics


def run_eval(cfg: EvalConfig) -> dict[str, float]:
    """Preference accuracy and margins of ``cfg.model`` (against ``cfg.ref_model`` when given)."""
    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.device import get_device

    from .data import filter_preference_pairs, load_preference_pairs
    from .evaluation import evaluate_preferences

    device = get_device(cfg.device)
    ds, report = filter_preference_pairs(load_preference_pairs(cfg.input, cfg.split), name=cfg.input)
    model, tok = load_model_and_tokenizer(cfg.model, device=device, dtype="float32", padding_side="right")
    ref = load_model_and_tokenizer(cfg.ref_model, device=device, dtype="float32")[0] if cfg.ref_model else None
    if cfg.limit:
        ds = ds.select(range(min(cfg.limit, len(ds))))
    metrics = evaluate_preferences(model, tok, list(ds), ref_model=ref, beta=cfg.beta, batch_size=cfg.batch_size,
                                   show_progress=True)
    metrics.update({f"dropped_{k}": float(v) for k, v in report.items() if k != "kept"})
    return metrics
