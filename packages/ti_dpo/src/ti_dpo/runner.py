"""End-to-end runs behind the CLI and the demo.

Train from a :class:`TrainConfig`, evaluate from an :class:`EvalConfig`: explicit arguments in, metrics dicts out.
"""

from __future__ import annotations

import copy
from typing import Any

from .config import EvalConfig, TrainConfig

__all__ = ["build_trainer", "run_train", "run_eval"]

_TI_FIELDS = ("beta", "gamma", "ti_lambda", "alpha_kl", "prior_sigma_div", "triplet_margin", "importance_span")


def build_trainer(cfg: TrainConfig, model: Any = None, tokenizer: Any = None, train_dataset: Any = None) -> Any:
    """A :class:`TIDPOTrainer` for ``cfg``; ``model``/``tokenizer``/``train_dataset`` override loading (tests, demo)."""
    import torch
    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.device import get_device

    from .data import load_preference_pairs
    from .trainer import TIDPOConfig, TIDPOTrainer

    device = get_device(cfg.device)
    if train_dataset is None:  # before the model: a bad data path fails fast
        train_dataset = load_preference_pairs(cfg.dataset, cfg.split)
    if model is None:
        model, tokenizer = load_model_and_tokenizer(cfg.model, device=device, dtype="float32")
    ti = {k: getattr(cfg, k) for k in _TI_FIELDS if getattr(cfg, k) is not None}
    args = TIDPOConfig.from_preset(
        cfg.preset, **{
            **ti,
            "output_dir": cfg.output_dir, "weight_normalization": cfg.weight_normalization,
            "token_weighting": cfg.token_weighting, "anchor_max_new_tokens": cfg.anchor_max_new_tokens,
            "learning_rate": cfg.learning_rate, "max_steps": cfg.max_steps, "num_train_epochs": cfg.num_train_epochs,
            "per_device_train_batch_size": cfg.per_device_train_batch_size,
            "gradient_accumulation_steps": cfg.gradient_accumulation_steps, "max_length": cfg.max_length,
            "precompute_ref_log_probs": cfg.precompute_ref_log_probs, "logging_steps": cfg.logging_steps,
            "seed": cfg.seed, "use_cpu": device.type == "cpu", "bf16": device.type == "cuda" and
            torch.cuda.is_bf16_supported(), "report_to": "none", "save_strategy": "no",
            "activation_checkpointing": False, "dataset_num_proc": None,
        })
    peft_config, ref_model = None, None
    if cfg.lora_r > 0:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, target_modules="all-linear")
    elif not cfg.precompute_ref_log_probs or args.gamma > 0:
        ref_model = copy.deepcopy(model).eval()
    return TIDPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=train_dataset,
                        processing_class=tokenizer, peft_config=peft_config)


def run_train(cfg: TrainConfig) -> dict[str, Any]:
    """Train, save the model and ``train_metrics.json`` under ``cfg.output_dir``; return the metrics."""
    from pathlib import Path

    from rlcore.io import write_json

    trainer = build_trainer(cfg)
    trainer.train()
    trainer.save_model(cfg.output_dir)
    trainer.processing_class.save_pretrained(cfg.output_dir)
    metrics = {"data": trainer.data_report, "log_history": trainer.state.log_history}
    write_json(Path(cfg.output_dir) / "train_metrics.json", metrics)
    return metrics


def run_eval(cfg: EvalConfig) -> dict[str, float]:
    """Preference accuracy and margins of ``cfg.model`` (against ``cfg.ref_model`` when given)."""
    from rlcore.builtins import load_model_and_tokenizer

    from .data import filter_preference_pairs, load_preference_pairs
    from .evaluation import evaluate_preferences

    model, tok = load_model_and_tokenizer(cfg.model, dtype="float32", padding_side="right")
    ref = load_model_and_tokenizer(cfg.ref_model, dtype="float32")[0] if cfg.ref_model else None
    ds, report = filter_preference_pairs(load_preference_pairs(cfg.dataset, cfg.split), name=cfg.dataset)
    if cfg.limit:
        ds = ds.select(range(min(cfg.limit, len(ds))))
    metrics = evaluate_preferences(model, tok, list(ds), ref_model=ref, beta=cfg.beta, batch_size=cfg.batch_size)
    metrics.update({f"dropped_{k}": float(v) for k, v in report.items() if k != "kept"})
    return metrics
