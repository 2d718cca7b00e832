"""CLI configs (one dataclass per command; the flags are exactly these fields).

The trainer itself is configured by :class:`ti_dpo.tidpo_config.TIDPOConfig` (a ``trl.DPOConfig``); ``TrainConfig``
exposes its TI-DPO knobs plus the usual training ones. TI-DPO fields left at ``None`` come from the ``preset``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlcore.backends import BACKEND_HELP  # torch-free: `ti-dpo --help` stays light
from rlcore.cli import option

__all__ = ["TrainConfig", "ImportanceConfig", "EvalConfig", "PRESET_NAMES", "PRESETS", "TRAIN_DEFAULTS",
           "resolve_preset"]

#: Named hyper-parameter sets. "paper": Table B13 (β 0.1, γ 0.1, λ 0.7, α 0.5) and Eq. 7 (σ = T/4).
#: "release": the official code's ``config/loss/tidpo.yaml`` + ``config.yaml`` (gpt2-small / HH demo).
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(beta=0.1, gamma=0.1, ti_lambda=0.7, alpha_kl=0.5, prior_sigma_div=4.0, importance_span="response"),
    "release": dict(
        beta=0.2, gamma=0.001, triplet_margin=0.001, ti_lambda=0.2, alpha_kl=0.5, prior_sigma_div=8.0,
        importance_span="sequence", learning_rate=5e-6, optim="rmsprop", warmup_steps=150, max_grad_norm=10.0,
        max_length=256, per_device_train_batch_size=1, gradient_accumulation_steps=2, num_train_epochs=1.0,
    ),
}
PRESET_NAMES = tuple(PRESETS)

#: Values of the preset-controlled fields that neither the preset nor the user set (release README: lr 1e-5,
#: batch 4-16, 1-3 epochs; TRL's AdamW and grad-norm 1; the release's triplet margin 0.001).
TRAIN_DEFAULTS: dict[str, Any] = dict(
    beta=0.1, gamma=0.1, ti_lambda=0.7, alpha_kl=0.5, prior_sigma_div=4.0, triplet_margin=0.001,
    importance_span="response", learning_rate=1e-5, optim="adamw_torch", warmup_steps=0, max_grad_norm=1.0,
    max_length=256, per_device_train_batch_size=4, gradient_accumulation_steps=1, num_train_epochs=1.0,
)
_NORMS = ("mean_one", "sum_one")
_SPANS = ("response", "sequence")
_SOURCES = ("gradient", "confidence", "random")
_PRIORS = ("gaussian", "softmax")


def resolve_preset(cfg: Any, defaults: dict[str, Any]) -> None:
    """Fill the fields of ``cfg`` left at ``None``: the preset's value, else ``defaults``'.

    Precedence (lowest first): dataclass defaults < preset < ``--config`` file < flags given explicitly: a field
    set by the file or a flag is not ``None`` here and is kept.
    """
    preset = getattr(cfg, "preset", "paper")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESET_NAMES}, got {preset!r}")
    for name, value in {**defaults, **PRESETS[preset]}.items():
        if hasattr(cfg, name) and getattr(cfg, name) is None:
            setattr(cfg, name, value)


def _check_common(cfg: object) -> None:
    lam = getattr(cfg, "ti_lambda", None)
    if lam is not None and not 0.0 <= lam <= 1.0:
        raise ValueError(f"ti_lambda must lie in [0, 1], got {lam}")
    for name, valid in (("weight_normalization", _NORMS), ("importance_span", _SPANS), ("importance", _SOURCES),
                        ("prior", _PRIORS)):
        value = getattr(cfg, name, None)
        if value is not None and value not in valid:
            raise ValueError(f"{name} must be one of {valid}, got {value!r}")
    div = getattr(cfg, "prior_sigma_div", None)
    if div is not None and div <= 0:
        raise ValueError(f"prior_sigma_div must be > 0, got {div}")
    if not getattr(cfg, "model", ""):
        raise ValueError("model is required (a local path, builtin:<name> or an HF model name)")


@dataclass
class TrainConfig:
    """``ti-dpo train``: TI-DPO on prompt/chosen/rejected pairs.

    Fields shown with default ``None`` come from ``preset`` (then :data:`TRAIN_DEFAULTS`) unless the ``--config``
    file or a flag sets them; the run summary prints the resolved values.
    """

    model: str = option("builtin:tiny-reasoner", "policy (and reference) model: path, builtin:<name> or HF name")
    input: str = option("tiny", "pairs: 'tiny' (built in), builtin:<name>, a .jsonl file or an HF dataset name")
    split: str = option("train", "dataset split (HF datasets / <split>.jsonl in a folder; ignored for a file)")
    output_dir: str = option("ti-dpo-out", "where the trained model, checkpoints and train_metrics.json go")
    preset: str = option("paper", "hyper-parameter preset: 'paper' (Table B13) or 'release' (official code)")
    beta: float | None = option(None, "β in the sigmoid (paper Table B13: 0.1; release 0.2)")
    gamma: float | None = option(None, "triplet weight γ (Table B13: 0.1; release 0.001; 0 disables)")
    ti_lambda: float | None = option(None, "λ: importance vs prior (Table B13: 0.7; release 0.2)")
    alpha_kl: float | None = option(None, "TDPO2 KL weight α (Table B13: 0.5; 0 gives Eq. 12)")
    prior_sigma_div: float | None = option(None, "prior σ = T / this (Eq. 7: 4; release 8)")
    triplet_margin: float | None = option(None, "triplet margin α_trp (unstated in the paper; release 0.001)")
    weight_normalization: str = option("mean_one", "'mean_one' (reduces to DPO when uniform) or 'sum_one' (paper)")
    importance_span: str | None = option(None, "'response' (paper) or 'sequence' (release: prompt+response)")
    importance: str = option("gradient", "importance source: 'gradient' (paper), 'confidence' (ConfPO-style), "
                                         "'random' (Table 2 ablation)")
    prior: str = option("gaussian", "prior mixed with I: 'gaussian' (Eq. 7) or 'softmax' (Table 2 ablation)")
    token_weighting: str = option("importance", "'importance' or 'uniform' (Table 2 ablation)")
    attribution: str = option("auto", "gradient attribution pass: 'fused' (in the training forward), 'separate' "
                                      "(extra eval-mode forward), 'auto' (fused unless dropout/reentrant ckpt)")
    batch_layout: str = option("auto", "loss forwards: 'shared_prompt' (one packed row per pair, the prompt once; same "
                                       "loss), 'padded' (one row each, TRL's), 'auto' (shared_prompt if supported)")
    anchor_max_new_tokens: int = option(64, "anchor length cap (release: 64)")
    anchor_reuse_steps: int = option(1, "resample a prompt's anchor after this many steps (1: every use, as the "
                                        "paper; 0: sample once and keep)")
    backend: str = option("hf", "triplet anchors: " + BACKEND_HELP["backend"])
    tensor_parallel_size: int = option(1, BACKEND_HELP["tensor_parallel_size"])
    gpu_memory_utilization: float = option(0.9, BACKEND_HELP["gpu_memory_utilization"])
    learning_rate: float | None = option(None, "learning rate (release README: 1e-5; release config: 5e-6)")
    optim: str | None = option(None, "optimizer (transformers name; release: rmsprop)")
    warmup_steps: int | None = option(None, "warmup steps (release: 150)")
    max_grad_norm: float | None = option(None, "gradient clipping norm (release: 10)")
    max_steps: int = option(-1, "optimizer steps (-1: use num_train_epochs)")
    num_train_epochs: float | None = option(None, "epochs (paper loss curve: 3; release: 1)")
    per_device_train_batch_size: int | None = option(None, "pairs per device per step (release: 1; README 4-16)")
    gradient_accumulation_steps: int | None = option(None, "gradient accumulation (release: 2)")
    max_length: int | None = option(None, "max prompt+response tokens (release: 256)")
    lora_r: int = option(0, "LoRA rank (0: full fine-tuning with a frozen copy as reference)")
    precompute_ref_log_probs: bool = option(False, "precompute per-token reference log-probs (needs alpha_kl 0)")
    activation_checkpointing: str = option("off", "'off', 'non_reentrant' or 'reentrant'")
    logging_steps: int = option(1, "log every N steps")
    save_steps: int = option(0, "save a checkpoint-N every N steps (0: only the final model)")
    resume: str | None = option(None, "'latest' or a checkpoint-N path to resume from")
    seed: int = option(0, "random seed")
    device: str = option("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'")

    def __post_init__(self):
        resolve_preset(self, TRAIN_DEFAULTS)
        _check_common(self)
        if self.token_weighting not in ("importance", "uniform"):
            raise ValueError(f"token_weighting must be 'importance' or 'uniform', got {self.token_weighting!r}")
        if self.attribution not in ("auto", "fused", "separate"):
            raise ValueError(f"attribution must be 'auto', 'fused' or 'separate', got {self.attribution!r}")
        if self.batch_layout not in ("auto", "shared_prompt", "padded"):
            raise ValueError(f"batch_layout must be 'auto', 'shared_prompt' or 'padded', got {self.batch_layout!r}")
        if self.activation_checkpointing not in ("off", "non_reentrant", "reentrant"):
            raise ValueError("activation_checkpointing must be 'off', 'non_reentrant' or 'reentrant', "
                             f"got {self.activation_checkpointing!r}")
        if self.backend not in ("hf", "vllm"):
            raise ValueError(f"backend must be one of ('hf', 'vllm'), got {self.backend!r}")
        if self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {self.max_length}")
        for name in ("lora_r", "anchor_reuse_steps", "save_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class ImportanceConfig:
    """``ti-dpo importance``: the token weights the trainer uses for one prompt+response (EOS appended as in training).

    Weight fields left at ``None`` come from ``preset``, exactly as for ``train``.
    """

    model: str = option("builtin:tiny-reasoner", "model whose weights are shown: path, builtin:<name> or HF name")
    prompt: str = option("Question: Compute 2+3.\nAnswer: <think>", "prompt text")
    response: str = option("2+3=5.</think> \\boxed{5}", "response text (EOS is appended as training does)")
    preset: str = option("paper", "hyper-parameter preset: 'paper' or 'release' (as for train)")
    ti_lambda: float | None = option(None, "λ: importance vs prior (Table B13: 0.7)")
    prior_sigma_div: float | None = option(None, "prior σ = T / this (Eq. 7: 4)")
    weight_normalization: str = option("mean_one", "'mean_one' or 'sum_one'")
    importance_span: str | None = option(None, "'response' or 'sequence'")
    importance: str = option("gradient", "'gradient', 'confidence' or 'random' (as for train)")
    prior: str = option("gaussian", "'gaussian' or 'softmax' (as for train)")
    max_length: int | None = option(None, "truncate prompt+response as training does (release: 256)")
    seed: int = option(0, "random seed (the 'random' importance source)")
    html: str = option("", "write an HTML heatmap here")
    png: str = option("", "write a PNG heatmap here")
    output: str = option("", "write tokens, importances and weights as JSON here")
    device: str = option("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'")

    def __post_init__(self):
        resolve_preset(self, TRAIN_DEFAULTS)
        _check_common(self)
        if not self.response:
            raise ValueError("response is required (the text whose tokens are weighted)")


@dataclass
class EvalConfig:
    """``ti-dpo eval``: preference accuracy and reward margins on held-out pairs."""

    model: str = option("builtin:tiny-reasoner", "trained policy: path, builtin:<name> or HF name")
    ref_model: str = option("", "reference (SFT) model for implicit rewards; empty: likelihood accuracy only")
    input: str = option("tiny", "pairs: 'tiny', builtin:<name>, a .jsonl file or an HF dataset name")
    split: str = option("test", "dataset split ('tiny' and builtin folders: test = held-out pairs)")
    beta: float = option(0.1, "β scaling the implicit reward (Table B13: 0.1)")
    batch_size: int = option(8, "scoring batch size")
    limit: int = option(0, "score at most this many pairs (0: all)")
    output: str = option("", "write the metrics JSON here")
    device: str = option("auto", "'auto', 'cpu', 'cuda' or 'cuda:N'")

    def __post_init__(self):
        _check_common(self)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit < 0:
            raise ValueError(f"limit must be >= 0, got {self.limit}")
