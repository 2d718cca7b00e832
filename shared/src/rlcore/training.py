"""Bridges from package configs to TRL: a ``GRPOConfig`` builder and the shared accelerate/DeepSpeed configs.

A user who outgrows one GPU runs the same command under
``accelerate launch --config_file <accelerate_config_path("zero2")> -m <pkg>.cli train ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["make_grpo_config", "accelerate_config_path", "ACCELERATE_CONFIGS"]

ACCELERATE_CONFIGS = ("ddp", "zero2", "zero3")
_CONFIG_DIR = Path(__file__).resolve().parent / "accelerate_configs"


def accelerate_config_path(name: str) -> str:
    """Path of a shipped accelerate config (``ddp``, ``zero2`` or ``zero3``)."""
    if name not in ACCELERATE_CONFIGS:
        raise ValueError(f"unknown accelerate config {name!r}; choose from {list(ACCELERATE_CONFIGS)}")
    return str(_CONFIG_DIR / f"{name}.yaml")


def make_grpo_config(output_dir: str, **overrides: Any):
    """A ``trl.GRPOConfig`` with defaults that run anywhere, then ``overrides`` (GRPOConfig field names).

    Defaults: bf16 only where CUDA supports it, CPU when no GPU, no external loggers, no checkpoint saving unless
    asked (``save_strategy``), ``logging_steps=1``. Unknown keys raise ``ValueError`` listing the bad names.
    """
    import dataclasses

    import torch
    from trl import GRPOConfig

    names = {f.name for f in dataclasses.fields(GRPOConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown GRPOConfig field(s) {unknown}")
    cuda = torch.cuda.is_available()
    kw: dict[str, Any] = dict(
        output_dir=output_dir,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        use_cpu=not cuda,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    kw.update(overrides)
    return GRPOConfig(**kw)
