"""CLI configs (one dataclass per command; the flags are exactly these fields).

The trainer itself is configured by :class:`ti_dpo.trainer.TIDPOConfig` (a ``trl.DPOConfig``); ``TrainConfig``
exposes its TI-DPO knobs plus the usual training ones. TI-DPO fields left at ``None`` come from the ``preset``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rlcore.cli import option

__all__ = ["TrainConfig", "ImportanceConfig", "EvalConfig", "PRESET_NAMES"]

PRESET_NAMES = ("paper", "release")
_NORMS = ("mean_one", "sum_one")
_SPANS = ("response", "sequence")


def _check_common(cfg: object) -> None:
    lam = getattr(cfg, "ti_lambda", None)
    if lam is not None and not 0.0 <= lam <= 1.0:
        raise ValueError(f"ti_lambda must lie in [0, 1], got {lam}")
    norm = getattr(cfg, "weight_normalization", None)
    if norm is not None and norm not in _NORMS:
        raise ValueError(f"weight_normalization must be one of {_NORMS}, got {norm!r}")
    span = getattr(cfg, "importance_span", None)
    if span is not None and span not in _SPANS:
        raise ValueError(f"importance_span must be one of {_SPANS}, got {span!r}")
    div = getattr(cfg, "prior_sigma_div", None)
    if div is not None and div <= 0:
        raise ValueError(f"prior_sigma_div must be > 0, got {div}")
    if not getattr(cfg, "model", ""):
        raise ValueError("model is required (a local path, builtin:<name> or an HF model name)")


@dataclass
class TrainConfig:
    """``ti-dpo train``: TI-DPO on prompt/chosen/rejected pairs."""

    model: str = option("", "policy (and reference) model: path, builtin:<name> or HF name")
    dataset: str = option("tiny", "pairs: 'tiny' (built in), builtin:<name>, a .jsonl file or an HF dataset name")
    split: str = option("train", "dataset split (HF datasets / <split>.jsonl in a folder)")
    output_dir: str = option("ti-dpo-out", "where the trained model and train_metrics.json go")
    preset: str = option("paper", "hyper-parameter preset: 'paper' (Table B13) or 'release' (official code)")
    beta: float | None = option(None, "β in the sigmoid (paper Table B13: 0.1)")
    gamma: float | None = option(None, "triplet weight γ (Table B13: 0.1; 0 disables)")
    ti_lambda: float | None = option(None, "λ: importance vs Gaussian prior (Table B13: 0.7)")
    alpha_kl: float | None = option(None, "TDPO2 KL weight α (Table B13: 0.5; 0 gives Eq. 12)")
    prior_sigma_div: float | None = option(None, "prior σ = T / this (Eq. 7: 4)")
    triplet_margin: float | None = option(None, "triplet margin α_trp (release: 0.001)")
    weight_normalization: str = option("mean_one", "'mean_one' (reduces to DPO when uniform) or 'sum_one' (paper)")
    importance_span: str | None = option(None, "'response' (paper) or 'sequence' (release: prompt+response)")
    token_weighting: str = option("importance", "'importance' or 'uniform' (Table 2 ablation)")
    anchor_max_new_tokens: int = option(64, "anchor length cap (release: 64)")
    learning_rate: float = option(1e-5, "learning rate (release README: 1e-5)")
    max_steps: int = option(-1, "optimizer steps (-1: use num_train_epochs)")
    num_train_epochs: float = option(1.0, "epochs (paper loss curve: 3)")
    per_device_train_batch_size: int = option(4, "pairs per device per step (release README: 4-16)")
    gradient_accumulation_steps: int = option(1, "gradient accumulation")
    max_length: int = option(256, "max prompt+response tokens (release: 256)")
    lora_r: int = option(0, "LoRA rank (0: full fine-tuning with a frozen copy as reference)")
    precompute_ref_log_probs: bool = option(False, "precompute per-token reference log-probs (needs alpha_kl 0)")
    logging_steps: int = option(1, "log every N steps")
    seed: int = option(0, "random seed")
    device: str = option("auto", "'auto', 'cpu' or 'cuda'")

    def __post_init__(self):
        _check_common(self)
        if self.preset not in PRESET_NAMES:
            raise ValueError(f"preset must be one of {PRESET_NAMES}, got {self.preset!r}")
        if self.token_weighting not in ("importance", "uniform"):
            raise ValueError(f"token_weighting must be 'importance' or 'uniform', got {self.token_weighting!r}")
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {self.max_length}")
        if self.lora_r < 0:
            raise ValueError(f"lora_r must be >= 0, got {self.lora_r}")


@dataclass
class ImportanceConfig:
    """``ti-dpo importance``: show the token weights of one prompt+response."""

    model: str = option("", "model whose gradients are attributed: path, builtin:<name> or HF name")
    prompt: str = option("", "prompt text")
    response: str = option("", "response text")
    ti_lambda: float = option(0.7, "λ: importance vs Gaussian prior (Table B13: 0.7)")
    prior_sigma_div: float = option(4.0, "prior σ = T / this (Eq. 7: 4)")
    weight_normalization: str = option("mean_one", "'mean_one' or 'sum_one'")
    importance_span: str = option("response", "'response' or 'sequence'")
    html: str = option("", "write an HTML heatmap here")
    png: str = option("", "write a PNG heatmap here")
    json_out: str = option("", "write tokens, importances and weights as JSON here")

    def __post_init__(self):
        _check_common(self)
        if not self.response:
            raise ValueError("response is required (the text whose tokens are weighted)")


@dataclass
class EvalConfig:
    """``ti-dpo eval``: preference accuracy and reward margins on held-out pairs."""

    model: str = option("", "trained policy: path, builtin:<name> or HF name")
    ref_model: str = option("", "reference (SFT) model for implicit rewards; empty: likelihood accuracy only")
    dataset: str = option("tiny", "pairs: 'tiny', builtin:<name>, a .jsonl file or an HF dataset name")
    split: str = option("test", "dataset split")
    beta: float = option(0.1, "β scaling the implicit reward (Table B13: 0.1)")
    batch_size: int = option(8, "scoring batch size")
    limit: int = option(0, "score at most this many pairs (0: all)")
    output: str = option("", "write the metrics JSON here")

    def __post_init__(self):
        _check_common(self)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
