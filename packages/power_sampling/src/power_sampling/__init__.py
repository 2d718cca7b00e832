"""Power sampling: Metropolis-Hastings sampling from p^alpha ("Reasoning with Sampling", Karan & Du, ICLR 2026)."""

from .generator_backend import GeneratorPowerSampler
from .metropolis_hastings import (
    compute_acceptance_log_ratio,
    compute_expected_proposal_tokens,
    compute_token_multiplier,
)
from .power_sampler import PowerSample, PowerSampler

__version__ = "0.1.0"
__all__ = [
    "PowerSampler",
    "PowerSample",
    "GeneratorPowerSampler",
    "compute_acceptance_log_ratio",
    "compute_expected_proposal_tokens",
    "compute_token_multiplier",
]
