"""``TIDPOTrainer`` / ``TIDPOConfig``: TI-DPO on top of ``trl.DPOTrainer`` (trl 1.16).

What differs from the parent: ``_compute_loss`` (token weights from gradient attribution + Gaussian prior, the
weighted margin, the optional TDPO2 KL and the triplet term; per-term metrics), ``compute_ref_log_probs``
(precomputed reference log-probs are stored *per token*, left-packed to ``max_length``, because the weighted margin
needs them), and ``_prepare_dataset`` (drops and counts empty / identical pairs before tokenising). Everything else
(data collation, PEFT and implicit reference via disabled adapters, accelerate/DeepSpeed wrapping, evaluation) is
the parent's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from accelerate.logging import get_logger
from accelerate.utils import is_peft_model
from datasets import Dataset
from trl import DPOConfig, DPOTrainer
from trl.models.utils import unwrap_model_for_generation
from trl.trainer.utils import use_adapter

from .anchor import sample_anchors, split_prompts
from .data import filter_preference_pairs
from .importance import NORMALIZATIONS, WEIGHTINGS, compute_gradient_attribution, compute_token_weights
from .loss import (
    compute_sequential_kl,
    compute_ti_dpo_loss,
    compute_triplet_loss,
    compute_weighted_margin,
    pack_left,
)

__all__ = ["TIDPOConfig", "TIDPOTrainer", "PRESETS"]

logger = get_logger(__name__)

SPANS = ("response", "sequence")

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


@dataclass
class TIDPOConfig(DPOConfig):
    """``DPOConfig`` plus the TI-DPO knobs; defaults are the paper's (Table B13, Eq. 7).

    Parameters that control the token weights: ``ti_lambda``, ``prior_sigma_div``, ``weight_normalization``,
    ``importance_span``, ``token_weighting``. Parameters that control the loss: ``beta`` (parent, 0.1),
    ``alpha_kl``, ``gamma``, ``triplet_margin``. Parameters that control the anchor: ``anchor_*``.
    Use :meth:`from_preset` for the "paper" or "release" settings.
    """

    ti_lambda: float = field(default=0.7, metadata={"help": "λ mixing importance and Gaussian prior (Table B13)."})
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
    alpha_kl: float = field(default=0.5, metadata={"help": "TDPO2 sequence-KL weight α (Table B13); 0 gives Eq. 12."})
    gamma: float = field(default=0.1, metadata={"help": "Triplet loss weight γ (Eq. 14, Table B13); 0 disables it."})
    triplet_margin: float = field(
        default=0.001, metadata={"help": "Triplet margin α_trp (unstated in the paper; release 0.001)."}
    )
    anchor_max_new_tokens: int = field(default=64, metadata={"help": "Anchor length cap (release: 64)."})
    anchor_temperature: float = field(default=0.8, metadata={"help": "Anchor sampling temperature (release)."})
    anchor_top_k: int = field(default=50, metadata={"help": "Anchor top-k (release)."})
    anchor_top_p: float = field(default=0.95, metadata={"help": "Anchor top-p (release)."})

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.ti_lambda <= 1.0:
            raise ValueError(f"ti_lambda must lie in [0, 1], got {self.ti_lambda}")
        if self.prior_sigma_div <= 0:
            raise ValueError(f"prior_sigma_div must be > 0, got {self.prior_sigma_div}")
        for name, value, valid in (("weight_normalization", self.weight_normalization, NORMALIZATIONS),
                                   ("importance_span", self.importance_span, SPANS),
                                   ("token_weighting", self.token_weighting, WEIGHTINGS)):
            if value not in valid:
                raise ValueError(f"{name} must be one of {valid}, got {value!r}")
        for name in ("alpha_kl", "gamma", "triplet_margin"):
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

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> TIDPOConfig:
        """A config from a named preset ("paper" or "release"), with ``overrides`` applied on top."""
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; valid: {sorted(PRESETS)}")
        return cls(**{**PRESETS[preset], **overrides})


class TIDPOTrainer(DPOTrainer):
    """Token-Importance guided DPO (Yang et al., ICLR 2026) as a ``trl.DPOTrainer``.

    Loss per pair: ``-log σ(β z) + γ·max(0, D(y, y_w) - D(y, y_l) + α_trp)`` with
    ``z = Σ_t w^w_t r_t(y_w) - Σ_t w^l_t r_t(y_l) - α_KL (K(y_l) - sg K(y_w))`` (see :mod:`ti_dpo.loss`), weights
    from :mod:`ti_dpo.importance` recomputed on the current policy every batch. Pass ``ref_model``, or a PEFT
    model (the reference is the adapter-disabled base), or ``precompute_ref_log_probs=True``.
    """

    _tag_names = ["trl", "dpo", "ti-dpo"]
    _name = "TI-DPO"

    def __init__(self, *args: Any, **kwargs: Any):
        self.data_report: dict[str, dict[str, int]] = {}
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, TIDPOConfig):
            raise TypeError(f"TIDPOTrainer needs a TIDPOConfig, got {type(self.args).__name__}")
        if self.args.gamma > 0 and self.ref_model is None and not is_peft_model(self.model):
            raise ValueError("the triplet term (gamma > 0) scores on-policy anchors under the reference model: pass "
                             "ref_model or a PEFT model when precompute_ref_log_probs=True, or set gamma=0")

    # ---- data -------------------------------------------------------------------------------------------------
    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        """Drop (and count) pairs with an empty or identical chosen/rejected, then tokenise as the parent does."""
        before = None
        if isinstance(dataset, Dataset) and "chosen_ids" not in dataset.column_names:
            dataset, report = filter_preference_pairs(dataset, name=dataset_name)
            before = len(dataset)
            self.data_report[dataset_name] = report
            if before == 0:
                raise ValueError(f"{dataset_name} dataset: no usable preference pair left ({report})")
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        if before is not None:
            self.data_report[dataset_name]["prompt_too_long"] = before - len(dataset)
            report = self.data_report[dataset_name]
            report["kept"] = len(dataset)
            if len(dataset) == 0:
                raise ValueError(f"{dataset_name} dataset: no usable preference pair left ({report})")
            if any(v for k, v in report.items() if k != "kept"):
                logger.warning(f"{dataset_name} dataset: dropped pairs {report}")
        return dataset

    # ---- reference ----------------------------------------------------------------------------------------------
    def _ref_context(self):
        if self.ref_model is None and is_peft_model(self.model):
            unwrapped = self.accelerator.unwrap_model(self.model)
            return use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None)
        return contextlib.nullcontext()

    def _ref_token_logps(self, input_ids, attention_mask, labels, full: bool):
        """Reference log-probs of the labels ``(B, T-1)`` and, if ``full``, the log-softmax ``(B, T-1, V)``."""
        model = self.ref_model if self.ref_model is not None else self.model
        with torch.no_grad(), _no_activation_checkpointing(self.accelerator.unwrap_model(self.model), self.args), \
                self._ref_context():
            return _token_logps(model, input_ids, attention_mask, labels, full)

    def compute_ref_log_probs(self, model, inputs):
        """Per-token reference log-probs of the response tokens, left-packed and padded to ``max_length``."""
        labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
        with torch.no_grad(), _no_activation_checkpointing(self.accelerator.unwrap_model(self.model), self.args), \
                self._ref_context():
            logps, _ = _token_logps(model, inputs["input_ids"], inputs["attention_mask"], labels, full=False)
        packed, _ = pack_left(logps, inputs["completion_mask"][:, 1:])  # (2B, L)
        packed = F.pad(packed, (0, self.args.max_length - packed.size(1)))  # (2B, max_length)
        return packed.chunk(2, dim=0)

    def _unpack_ref(self, inputs, shift_mask):
        packed = torch.cat([inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]], dim=0)  # (2B, max_length)
        counts = shift_mask.sum(dim=1, keepdim=True)  # (2B, 1)
        keep = torch.arange(packed.size(1), device=packed.device).unsqueeze(0) < counts
        out = torch.zeros(shift_mask.shape, dtype=packed.dtype, device=packed.device)
        return out.masked_scatter(shift_mask.bool(), packed[keep])  # (2B, T-1)

    # ---- loss ---------------------------------------------------------------------------------------------------
    def _token_weights(self, model, input_ids, attention_mask, completion_mask):
        a = self.args
        span = completion_mask if a.importance_span == "response" else attention_mask
        if a.token_weighting == "uniform":
            importance = torch.zeros(input_ids.shape, device=input_ids.device)
        else:
            importance = compute_gradient_attribution(self.accelerator.unwrap_model(model), input_ids, attention_mask)
        return compute_token_weights(importance, span, a.ti_lambda, a.prior_sigma_div, a.weight_normalization,
                                     a.token_weighting)

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        a = self.args
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        completion_mask = inputs["completion_mask"]
        shift_mask = completion_mask[:, 1:]  # (2B, T-1): label t+1 is a response token
        labels = input_ids.masked_fill(completion_mask == 0, -100)

        weights, wmetrics = self._token_weights(model, input_ids, attention_mask, completion_mask)  # (2B, T)
        shift_w = weights[:, 1:]  # the label token y_t gets the importance of its own input position
        full = a.alpha_kl > 0
        logps, logps_full = _token_logps(model, input_ids, attention_mask, labels, full)  # (2B, T-1)
        if self.precompute_ref_logps:
            ref_logps, ref_full = self._unpack_ref(inputs, shift_mask), None
        else:
            ref_logps, ref_full = self._ref_token_logps(input_ids, attention_mask, labels, full)
        logratios = (logps - ref_logps) * shift_mask  # (2B, T-1)
        chosen_m, rejected_m = compute_weighted_margin(logratios, shift_w, shift_mask).chunk(2)  # (B,)
        chosen_kl = rejected_kl = None
        if full:
            chosen_kl, rejected_kl = compute_sequential_kl(ref_full, logps_full, shift_mask).chunk(2)
        dpo_losses, _ = compute_ti_dpo_loss(chosen_m, rejected_m, a.beta, a.alpha_kl, chosen_kl, rejected_kl)
        loss = dpo_losses.mean()
        m = {"loss/dpo": dpo_losses.detach(), "rewards/chosen": a.beta * chosen_m.detach(),
             "rewards/rejected": a.beta * rejected_m.detach()}
        if a.gamma > 0:
            trip, tm = self._triplet(model, inputs, logratios, shift_mask)
            loss = loss + a.gamma * trip.mean()
            m.update({"loss/triplet": trip.detach(), **tm})
        if full:
            m.update({"kl/chosen": chosen_kl.detach(), "kl/rejected": rejected_kl.detach()})
        self._log_metrics(mode, m, logratios, shift_mask, weights[:, 1:], wmetrics)
        if return_outputs:  # as the parent: logits for compute_metrics, from an extra no-grad forward
            with torch.no_grad():
                return loss, model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return loss

    @contextlib.contextmanager
    def _generation_model(self, model):
        """The policy unwrapped for ``generate`` (ZeRO-3 parameters gathered by TRL's helper under DeepSpeed)."""
        if self.is_deepspeed_enabled:
            with unwrap_model_for_generation(model, self.accelerator,
                                             gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs) as m:
                yield m
        else:  # sample_anchors runs in eval mode, where HF models skip activation checkpointing
            yield self.accelerator.unwrap_model(model)

    def _triplet(self, model, inputs, logratios, shift_mask):
        """Triplet term: sample an on-policy anchor for each prompt, score it, compare per-token log-ratios."""
        a = self.args
        B = inputs["input_ids"].size(0) // 2
        pad = self._tokenizer.pad_token_id
        prompt_ids, prompt_mask = split_prompts(inputs["input_ids"][:B], inputs["attention_mask"][:B],
                                                inputs["completion_mask"][:B], pad)
        budget = a.anchor_max_new_tokens if a.max_length is None else a.max_length - prompt_ids.size(1)
        with self._generation_model(model) as gen_model:
            anchor_ids, anchor_mask = sample_anchors(
                gen_model, prompt_ids, prompt_mask, max(1, min(a.anchor_max_new_tokens, budget)),
                a.anchor_temperature, a.anchor_top_k, a.anchor_top_p, self._tokenizer.eos_token_id, pad)
        seq_mask = torch.cat([prompt_mask, anchor_mask], dim=1)  # (B, P+A), left-padded
        seq, _ = pack_left(torch.cat([prompt_ids, anchor_ids], dim=1), seq_mask)  # right-padded for scoring
        comp, new_mask = pack_left(torch.cat([torch.zeros_like(prompt_mask), anchor_mask], dim=1), seq_mask)
        labels = seq.masked_fill(comp == 0, -100)
        pol, _ = _token_logps(model, seq, new_mask, labels, full=False)
        ref, _ = self._ref_token_logps(seq, new_mask, labels, full=False)
        d, d_mask = pack_left(pol - ref, comp[:, 1:])  # (B, A')
        b, b_mask = pack_left(logratios[:B], shift_mask[:B])
        c, c_mask = pack_left(logratios[B:], shift_mask[B:])
        loss, dist = compute_triplet_loss(d, d_mask, b, b_mask, c, c_mask, a.triplet_margin)
        return loss, {"triplet/d_pos": dist["d_pos"].detach(), "triplet/d_neg": dist["d_neg"].detach(),
                      "anchor/length": anchor_mask.sum(dim=1).float()}

    def _log_metrics(self, mode, m, logratios, shift_mask, shift_w, wmetrics):
        gather = self.accelerator.gather_for_metrics
        chosen_r, rejected_r = m["rewards/chosen"], m["rewards/rejected"]
        m["rewards/margins"] = chosen_r - rejected_r
        m["rewards/accuracies"] = (chosen_r > rejected_r).float()
        seq = logratios.detach().sum(dim=1)  # unweighted implicit reward, as plain DPO reports it
        m["rewards/dpo_accuracies"] = (seq.chunk(2)[0] > seq.chunk(2)[1]).float()
        w = (shift_w * shift_mask).sum(dim=1) / shift_mask.sum(dim=1).clamp(min=1)  # (2B,) mean weight
        m["weights/chosen_mean"], m["weights/rejected_mean"] = w.chunk(2)
        m["weights/max"] = (shift_w * shift_mask).amax(dim=1)
        for key, value in m.items():
            self._metrics[mode][key].append(gather(value.float()).mean().item())
        self._metrics[mode]["weights/zero_importance_rows"].append(wmetrics["zero_importance_rows"])


@contextlib.contextmanager
def _no_activation_checkpointing(model, args):
    """Switch activation checkpointing off for a no-grad pass (as TRL does, without its deprecated-alias warnings)."""
    base = model.get_base_model() if is_peft_model(model) else model
    was = bool(getattr(base, "is_activation_checkpointing", False))
    if was:
        base.activation_checkpointing_disable()
    try:
        yield
    finally:
        if was:
            base.activation_checkpointing_enable(args.activation_checkpointing_kwargs)


def _token_logps(model, input_ids, attention_mask, labels, full: bool):
    """Per-token log-probs of ``labels[:, 1:]`` ``(B, T-1)`` (0 where masked), plus the log-softmax if ``full``."""
    T1 = input_ids.size(1) - 1
    if not full:  # TRL's fused LM head: no (B, T, V) logits in memory
        out = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, labels=labels,
                    fused_lm_head=True)
        return out.log_probs[:, -T1:], None
    logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[:, -T1 - 1:-1]
    logp_full = logits.float().log_softmax(dim=-1)  # (B, T-1, V)
    target = labels[:, 1:]
    mask = target != -100
    logps = logp_full.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask  # (B, T-1)
    return logps, logp_full
