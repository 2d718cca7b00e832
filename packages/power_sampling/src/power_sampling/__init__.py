"""Power sampling: Metropolis-Hastings sampling from p^alpha ("Reasoning with Sampling", Karan & Du, ICLR 2026).

Attributes are imported lazily (PEP 562) so that ``power-sampling --help`` does not import torch.
"""

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "PowerSampler": "power_sampler",
    "PowerSample": "power_sampler",
    "GeneratorPowerSampler": "generator_backend",
    "compute_acceptance_log_ratio": "metropolis_hastings",
    "compute_expected_proposal_tokens": "metropolis_hastings",
    "compute_token_multiplier": "metropolis_hastings",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'power_sampling' has no attribute {name!r}")
