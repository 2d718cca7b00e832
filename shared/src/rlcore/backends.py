"""Generation-backend names, help strings and config fields, importable without torch.

Package configs (``config.py``) import these at class-definition time, and ``import <pkg>.cli`` must stay free of
torch so ``--help`` is instant; :mod:`rlcore.rollout` re-exports them.
"""

from __future__ import annotations

import dataclasses

from .cli import option

__all__ = ["BACKENDS", "BACKEND_HELP", "VLLM_MISSING", "BackendUnavailableError", "BackendFields"]

BACKENDS = ("hf", "vllm")
BACKEND_HELP = {
    "backend": "generation backend: hf (transformers, any device) or vllm (GPU; pip install 'rlcore[vllm]')",
    "tensor_parallel_size": "vllm backend: number of GPUs the model is split over (tensor parallelism)",
    "gpu_memory_utilization": "vllm backend: fraction of GPU memory vLLM may use for weights + KV cache (0-1]",
}
VLLM_MISSING = "the vllm backend needs vLLM: pip install 'rlcore[vllm]'"


class BackendUnavailableError(ValueError):
    """A generation backend whose library is not installed (a ValueError: CLIs exit 2 with its one-line message)."""


@dataclasses.dataclass
class BackendFields:
    """The three backend fields of every verb that samples (mix into a package config; same flags everywhere).

    A subclass with its own ``__post_init__`` calls ``BackendFields.__post_init__(self)`` (or ``super()``).
    """

    backend: str = option("hf", BACKEND_HELP["backend"])
    tensor_parallel_size: int = option(1, BACKEND_HELP["tensor_parallel_size"])
    gpu_memory_utilization: float = option(0.9, BACKEND_HELP["gpu_memory_utilization"])

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
