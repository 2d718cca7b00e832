"""Device and dtype choice, seeding, GPU memory reports."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["get_device", "get_dtype", "seed_everything", "gpu_memory_report", "resolve_dtype"]


def get_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None and str(device) != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def get_dtype(device: torch.device | str | None = None) -> torch.dtype:
    """bf16 on a CUDA device that supports it, else fp32 (CPU kernels in bf16 are slow and less exact)."""
    dev = get_device(device)
    if dev.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device | str | None = None) -> torch.dtype:
    """Map ``"auto"``/``None``/``"bf16"``/``"fp16"``/``"fp32"``/a torch dtype to a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return get_dtype(device)
    table = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
             "fp32": torch.float32, "float32": torch.float32}
    try:
        return table[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {sorted(table)} or 'auto'") from None


def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed python, numpy and torch (all devices) in one call; returns a CPU ``torch.Generator`` seeded alike."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def gpu_memory_report(device: torch.device | str | None = None) -> dict[str, float]:
    """Allocated / reserved / peak GPU memory in GiB (empty dict on CPU)."""
    dev = get_device(device)
    if dev.type != "cuda":
        return {}
    gib = 1024**3
    return {
        "allocated_gib": torch.cuda.memory_allocated(dev) / gib,
        "reserved_gib": torch.cuda.memory_reserved(dev) / gib,
        "peak_gib": torch.cuda.max_memory_allocated(dev) / gib,
    }
