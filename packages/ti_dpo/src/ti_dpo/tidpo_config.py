"""``TIDPOConfig``: the ``trl.DPOConfig`` of :class:`ti_dpo.trainer.TIDPOTrainer`, with the TI-DPO fields.

Defaults follow the paper (Table B13: β 0.1, γ 0.1, λ 0.7, α_KL 0.5); ``from_preset("release")`` gives the official
code's. The TI-DPO fields are checked in ``__post_init__`` (one line naming the field and the valid values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import DPOConfig

from .anchor import ANCHOR_BACKENDS
from .config import PRESETS
from .importance import IMPORTANCE_SOURCES, NORMALIZATIONS, PRIORS, WEIGHTINGS

__all__ = ["TIDPOConfig", "PRESETS"]

SPANS = ("response", "sequence")
ATTRIBUTION_MODES = ("auto", "fused", "separate")
BATCH_LAYOUTS = ("auto", "shared_prompt", "padded")


@dataclass
class TIDPOConfig(DPOConfig):
    """``DPOConfig`` plus the TI-DPO knobs; defaults are the paper's (Table B13, Eq. 7).

    Parameters that control the token weights: ``importance`` (source), ``prior``, ``ti_lambda``,
    ``prior_sigma_div``, ``weight_normalization``, ``importance_span``, ``token_weighting``, ``attribution``.
    Parameters that control the loss: ``beta`` (parent, 0.1), ``alpha_kl``, ``gamma``, ``triplet_margin``.
    Parameters that control the anchor: ``anchor_*``. Use :meth:`from_preset` for the "paper" or "release" settings.
    """

    ti_lambda: float = field(default=0.7, metadata={"help": "λ mixing importance and prior (Table B13)."})
    prior_sigma_div: float = field(default=4.0, metadata={"help": "Prior σ = span length / this (Eq. 7: 4; release 8)."})
    weight_normalization: str = field(
        default="mean_one",
        metadata={"help": "'mean_one' (release; uniform weights reduce to DPO) or 'sum_one' (paper's distribution)."},
    )
    importance_span: str = field(
        default="response",
        metadata={"help": "'response' (paper: weights over y) or 'sequence' (release: over prompt+response)."},
    )
    token_weighting: str = field(
        default="importance", metadata={"help": "'importance' (TI-DPO) or 'uniform' (Table 2 ablation)."}
    )
    importance: str = field(
        default="gradient",
        metadata={"help": "Importance source: 'gradient' (Eq. 5-6), 'confidence' (ConfPO-style, from the DPO "
                          "forward's own token probabilities) or 'random' (Table 2 ablation)."},
    )
    prior: str = field(default="gaussian", metadata={"help": "'gaussian' (Eq. 7) or 'softmax' (Table 2 ablation)."})
    attribution: str = field(
        default="auto",
        metadata={"help": "'fused': attribution from the training forward's own graph; 'separate': an extra "
                          "eval-mode forward (the release); 'auto': fused unless the model has active dropout or "
                          "reentrant activation checkpointing is on."},
    )
    batch_layout: str = field(
        default="auto",
        metadata={"help": "'shared_prompt': each pair's chosen, rejected and anchor scored as one packed row with "
                          "the prompt once (4D mask; same loss up to float rounding); 'padded': one right-padded "
                          "row each (TRL's layout); 'auto': shared_prompt where the model supports it."},
    )
    alpha_kl: float = field(default=0.5, metadata={"help": "TDPO2 sequence-KL weight α (Table B13); 0 gives Eq. 12."})
    gamma: float = field(default=0.1, metadata={"help": "Triplet loss weight γ (Eq. 14, Table B13); 0 disables it."})
    triplet_margin: float = field(
        default=0.001, metadata={"help": "Triplet margin α_trp (unstated in the paper; release 0.001)."}
    )
    anchor_max_new_tokens: int = field(default=64, metadata={"help": "Anchor length cap (release: 64)."})
    anchor_temperature: float = field(default=0.8, metadata={"help": "Anchor sampling temperature (release)."})
    anchor_top_k: int = field(default=50, metadata={"help": "Anchor top-k (release)."})
    anchor_top_p: float = field(default=0.95, metadata={"help": "Anchor top-p (release)."})
    anchor_reuse_steps: int = field(
        default=1,
        metadata={"help": "A prompt's anchor is resampled once it is this many optimizer steps old (1: fresh at "
                          "every use, the paper/release; 0: sampled once, then kept). Reuse pays off over epochs."},
    )
    anchor_backend: str = field(default="hf", metadata={"help": "Anchor generation backend: 'hf' or 'vllm'."})
    anchor_tensor_parallel_size: int = field(default=1, metadata={"help": "vLLM tensor-parallel size (anchors)."})
    anchor_gpu_memory_utilization: float = field(default=0.9, metadata={"help": "vLLM GPU memory fraction."})

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.ti_lambda <= 1.0:
            raise ValueError(f"ti_lambda must lie in [0, 1], got {self.ti_lambda}")
        if self.prior_sigma_div <= 0:
            raise ValueError(f"prior_sigma_div must be > 0, got {self.prior_sigma_div}")
        for name, value, valid in (("weight_normalization", self.weight_normalization, NORMALIZATIONS),
                                   ("importance_span", self.importance_span, SPANS),
                                   ("token_weighting", self.token_weighting, WEIGHTINGS),
                                   ("importance", self.importance, IMPORTANCE_SOURCES),
                                   ("prior", self.prior, PRIORS),
                                   ("attribution", self.attribution, ATTRIBUTION_MODES),
                                   ("batch_layout", self.batch_layout, BATCH_LAYOUTS),
                                   ("anchor_backend", self.anchor_backend, ANCHOR_BACKENDS)):
            if value not in valid:
                raise ValueError(f"{name} must be one of {valid}, got {value!r}")
        for name in ("alpha_kl", "gamma", "triplet_margin", "anchor_reuse_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.anchor_max_new_tokens < 1:
            raise ValueError(f"anchor_max_new_tokens must be >= 1, got {self.anchor_max_new_tokens}")
        if list(self.loss_type) != ["sigmoid"]:
            raise ValueError(f"loss_type must be ['sigmoid'] for TI-DPO, got {self.loss_type}")
        if self.ld_alpha is not None or self.f_divergence_type != "reverse_kl" or self.use_weighting:
            raise ValueError("TI-DPO does not combine with ld_alpha, f_divergence_type or use_weighting")
        if self.precompute_ref_log_probs and self.alpha_kl > 0:
            raise ValueError("alpha_kl > 0 needs the reference distribution at every position: it cannot be used "
                             "with precompute_ref_log_probs=True (set alpha_kl=0 or precompute_ref_log_probs=False)")
        if self.precompute_ref_log_probs and self.max_length is None:
            raise ValueError("precompute_ref_log_probs=True needs max_length (per-token reference log-probs are "
                             "stored padded to max_length)")

    @property
    def reentrant_checkpointing(self) -> bool:
        """Whether activation checkpointing is on with ``use_reentrant=True`` (transformers 5 default: False)."""
        kw = self.activation_checkpointing_kwargs or {}
        return bool(self.activation_checkpointing) and bool(kw.get("use_reentrant", False))

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> TIDPOConfig:
        """A config from a named preset ("paper" or "release"), with ``overrides`` applied on top."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; valid: {sorted(PRESETS)}")
        return cls(**{**PRESETS[preset], **overrides})
