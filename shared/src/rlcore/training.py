"""Multi-process helpers: rank queries, a launch preflight, the shared accelerate configs, a ``GRPOConfig`` builder.

A user who outgrows one GPU runs the same command under
``accelerate launch --config_file <accelerate_config_path("zero2")> --num_processes N -m <pkg> train ...``.
The shipped configs carry no process count: the launcher's ``--num_processes`` decides.

The rank helpers read ``torch.distributed`` when a process group is up, else the launcher's environment
(``RANK`` / ``WORLD_SIZE``, set by ``accelerate launch`` and ``torchrun``), so they answer correctly before
``Accelerator()`` is built and cost nothing in a single-process run.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "make_grpo_config",
    "accelerate_config_path",
    "ACCELERATE_CONFIGS",
    "preflight_launch",
    "is_main_process",
    "process_index",
    "world_size",
    "main_print",
    "DEEPSPEED_HINT",
]

ACCELERATE_CONFIGS = ("ddp", "zero2", "zero3", "fsdp")
_CONFIG_DIR = Path(__file__).resolve().parent / "accelerate_configs"
DEEPSPEED_HINT = "DeepSpeed is not installed: pip install 'rlcore[deepspeed]'"


def _dist():
    """``torch.distributed`` if a process group is initialised, else ``None`` (torch is only imported if loaded)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = torch.distributed
    return dist if dist.is_available() and dist.is_initialized() else None


def process_index() -> int:
    """Global rank of this process (0 in a single-process run)."""
    d = _dist()
    return d.get_rank() if d is not None else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes of the launch (1 in a single-process run)."""
    d = _dist()
    return d.get_world_size() if d is not None else int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on global rank 0: the only process that prints summaries and writes results."""
    return process_index() == 0


def main_print(*args: Any, **kwargs: Any) -> None:
    """``print`` on the main process only (flushed); other ranks print nothing."""
    if is_main_process():
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)


def _uses_deepspeed() -> bool:
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true", "yes"):
        return True
    cfg = os.environ.get("ACCELERATE_CONFIG_FILE")
    if cfg and Path(cfg).is_file():
        try:
            import yaml

            with open(cfg, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
        except Exception:  # an unreadable config is accelerate's error to report, not ours
            return False
        return isinstance(data, dict) and str(data.get("distributed_type", "")).upper() == "DEEPSPEED"
    return False


def preflight_launch() -> None:
    """Check the launch environment before any heavy work; call it first in every ``train`` verb.

    Raises:
        ValueError: the launch asks for DeepSpeed (``ACCELERATE_USE_DEEPSPEED=true`` or a DeepSpeed
            ``ACCELERATE_CONFIG_FILE``) and it is not installed: one line naming the extra to install.

    """
    if _uses_deepspeed() and importlib.util.find_spec("deepspeed") is None:
        raise ValueError(DEEPSPEED_HINT)


def accelerate_config_path(name: str) -> str:
    """Path of a shipped accelerate config (``ddp``, ``zero2``, ``zero3`` or ``fsdp``); none sets num_processes."""
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
