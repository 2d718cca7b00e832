"""TI-DPO: token-importance guided DPO (Yang et al., ICLR 2026) as a TRL trainer.

Names load lazily (torch/trl import on first use), so ``ti-dpo --help`` stays instant.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "TIDPOConfig": "trainer",
    "TIDPOTrainer": "trainer",
    "PRESETS": "trainer",
    "compute_gaussian_prior": "importance",
    "compute_confidence_importance": "importance",
    "compute_random_importance": "importance",
    "chunked_label_logps_and_kl": "forward",
    "compute_gradient_attribution": "importance",
    "compute_token_weights": "importance",
    "compute_sequential_kl": "loss",
    "compute_ti_dpo_loss": "loss",
    "compute_triplet_loss": "loss",
    "compute_weighted_margin": "loss",
    "evaluate_preferences": "evaluation",
    "load_preference_pairs": "data",
    "run_demo": "demo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'ti_dpo' has no attribute {name!r}")
