"""TI-DPO: token-importance guided DPO (Yang et al., ICLR 2026) as a TRL trainer.

Formulas are importable without TRL; ``TIDPOTrainer`` / ``TIDPOConfig`` load lazily (they import trl).
"""

from .importance import compute_gaussian_prior, compute_gradient_attribution, compute_token_weights
from .loss import compute_sequential_kl, compute_ti_dpo_loss, compute_triplet_loss, compute_weighted_margin

__version__ = "0.1.0"

__all__ = [
    "TIDPOConfig",
    "TIDPOTrainer",
    "compute_gaussian_prior",
    "compute_gradient_attribution",
    "compute_sequential_kl",
    "compute_ti_dpo_loss",
    "compute_token_weights",
    "compute_triplet_loss",
    "compute_weighted_margin",
]


def __getattr__(name: str):
    if name in ("TIDPOConfig", "TIDPOTrainer", "PRESETS"):
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'ti_dpo' has no attribute {name!r}")
