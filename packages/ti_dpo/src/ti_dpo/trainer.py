"""``TIDPOTrainer``: TI-DPO on top of ``trl.DPOTrainer`` (trl 1.16); its config is :mod:`ti_dpo.tidpo_config`.

What differs from the parent: ``_compute_loss`` (token weights from gradient attribution / policy confidence /
noise + a prior, the weighted margin, the optional TDPO2 KL and the triplet term; per-term metrics),
``compute_ref_log_probs`` (precomputed reference log-probs are stored *per token*, left-packed to ``max_length``,
because the weighted margin needs them), ``_prepare_dataset`` (drops and counts empty / identical pairs before
tokenising) and checkpointing of the anchor cache. Everything else (data collation, PEFT and implicit reference via
disabled adapters, accelerate/DeepSpeed wrapping, evaluation, ``checkpoint-N`` saving and resuming) is the parent's.

One step = (anchors sampled through rlcore's generator, no grad, once per distinct prompt and only as long as
the pair's longer response) -> one reference forward over [chosen; rejected; anchor] -> one policy forward over the
same batch that also yields the attribution (``autograd.grad`` on its own graph), the per-token log-probs and the
chunked TDPO2 KL (:mod:`ti_dpo.forward`) -> one backward. Both forwards run on the shared-prompt layout by default
(:mod:`ti_dpo.packing`: one packed row per pair, the prompt once), which gives the same loss as the padded rows.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import torch
import torch.nn.functional as F
from accelerate.logging import get_logger
from accelerate.utils import is_peft_model
from datasets import Dataset
from trl import DPOTrainer
from trl.models.utils import unwrap_model_for_generation
from trl.trainer.utils import use_adapter

from .anchor import (
    make_anchor_generator,
    prompt_token_lists,
    sample_anchor_ids,
    trim_anchors,
)
from .data import filter_preference_pairs
from .forward import TIHeadRequest, add_ti_head, has_active_dropout
from .importance import (
    compute_confidence_importance,
    compute_gradient_attribution,
    compute_random_importance,
    compute_token_weights,
)
from .loss import (
    compute_ti_dpo_loss,
    compute_triplet_loss,
    compute_weighted_margin,
    pack_left,
)
from .packing import pack_shared_prompt, shared_prompt_supported
from .tidpo_config import PRESETS, TIDPOConfig

__all__ = ["TIDPOConfig", "TIDPOTrainer", "PRESETS"]

logger = get_logger(__name__)

STATE_FILE = "ti_dpo_state_rank{}.json"  # one per process: each rank caches the anchors of its own shard


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
        a = self.args
        if a.gamma > 0 and self.ref_model is None and not is_peft_model(self.model):
            raise ValueError("the triplet term (gamma > 0) scores on-policy anchors under the reference model: pass "
                             "ref_model or a PEFT model when precompute_ref_log_probs=True, or set gamma=0")
        base = self.model.get_base_model() if is_peft_model(self.model) else self.model
        add_ti_head(base)
        if self.ref_model is not None:
            add_ti_head(self.ref_model)
        if a.attribution == "fused" and a.reentrant_checkpointing:  # fail before training, not at step 1
            raise ValueError("attribution='fused' takes autograd.grad on the training forward, which reentrant "
                             "activation checkpointing forbids: use attribution='separate' (or 'auto'), or "
                             "activation_checkpointing_kwargs={'use_reentrant': False}")
        #: the attribution pass actually used ("fused" or "separate"), resolved once here
        self.attribution_mode = a.attribution
        if a.attribution == "auto":
            fused_ok = not a.reentrant_checkpointing and not has_active_dropout(base)
            self.attribution_mode = "fused" if fused_ok else "separate"
        #: the layout of the loss forwards actually used ("shared_prompt" or "padded"), resolved once here
        self.batch_layout = self._resolve_layout(base)
        self.padded_fallbacks = 0  # batches that could not be packed (rows of a pair with different prompts)
        self._anchor_cache: dict[tuple[int, ...], tuple[int, list[int]]] = {}
        self._anchor_generator = None
        if a.gamma > 0 and a.anchor_backend != "hf":  # a missing vLLM is a one-line error before training
            self._anchor_generator = make_anchor_generator(
                base, self.processing_class, a.anchor_backend, a.anchor_tensor_parallel_size,
                a.anchor_gpu_memory_utilization, a.seed)

    def _resolve_layout(self, base) -> str:
        a = self.args
        why = shared_prompt_supported(base) or (shared_prompt_supported(self.ref_model) if self.ref_model is not None
                                                else None)
        if (a.token_weighting == "importance" and a.importance == "gradient" and self.attribution_mode == "fused"
                and a.importance_span == "sequence"):
            why = ("fused attribution with importance_span='sequence' (prompt importances are summed over the "
                   "pair's rows in the packed layout)")
        if a.batch_layout == "shared_prompt" and why:
            raise ValueError(f"batch_layout='shared_prompt' is not available: {why}; use 'auto' or 'padded'")
        if a.batch_layout == "auto" and why:
            logger.info(f"batch_layout auto -> padded: {why}")
        return "padded" if a.batch_layout == "padded" or why else "shared_prompt"

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

    # ---- checkpoints: the anchor cache is trainer state ------------------------------------------------------
    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

        path = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        os.makedirs(path, exist_ok=True)
        state = {"anchor_cache": [[list(k), step, ids] for k, (step, ids) in self._anchor_cache.items()]}
        tmp = os.path.join(path, STATE_FILE.format(self.accelerator.process_index) + ".tmp")
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, tmp[: -len(".tmp")])

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any):
        """``Trainer.train``; a resumed run also restores the anchor cache saved with the checkpoint."""
        if resume_from_checkpoint:
            path = resume_from_checkpoint
            if path is True:
                from transformers.trainer_utils import get_last_checkpoint

                path = get_last_checkpoint(self.args.output_dir)
            state_file = os.path.join(str(path), STATE_FILE.format(self.accelerator.process_index)) if path else ""
            if state_file and os.path.isfile(state_file):
                with open(state_file) as f:
                    state = json.load(f)
                self._anchor_cache = {tuple(k): (step, ids) for k, step, ids in state["anchor_cache"]}
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    # ---- reference ----------------------------------------------------------------------------------------------
    def _ref_context(self):
        if self.ref_model is None and is_peft_model(self.model):
            unwrapped = self.accelerator.unwrap_model(self.model)
            return use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None)
        return contextlib.nullcontext()

    def _ref_forward(self, input_ids, attention_mask, request: TIHeadRequest):
        """A no-grad ``ti_head`` forward of the reference (separate model or adapter-disabled policy)."""
        model = self.ref_model if self.ref_model is not None else self.model
        with torch.no_grad(), _no_activation_checkpointing(self.accelerator.unwrap_model(self.model), self.args), \
                self._ref_context():
            return model(input_ids=input_ids, attention_mask=attention_mask, ti_head=request)

    def _ref_head(self):
        if self.ref_model is not None:
            return self.ref_model.get_output_embeddings()
        head = self.accelerator.unwrap_model(self.model).get_output_embeddings()
        return getattr(head, "base_layer", head)  # PEFT reference = adapters off: a LoRA-wrapped head's base

    def compute_ref_log_probs(self, model, inputs):
        """Per-token reference log-probs of the response tokens, left-packed and padded to ``max_length``."""
        labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
        unwrapped = self.accelerator.unwrap_model(model)  # called from the parent's __init__: patch here too
        add_ti_head(unwrapped.get_base_model() if is_peft_model(unwrapped) else unwrapped)
        with torch.no_grad(), _no_activation_checkpointing(self.accelerator.unwrap_model(self.model), self.args), \
                self._ref_context():
            logps = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                          ti_head=TIHeadRequest(labels=labels)).log_probs
        packed, _ = pack_left(logps, inputs["completion_mask"][:, 1:])  # (2B, L)
        packed = F.pad(packed, (0, self.args.max_length - packed.size(1)))  # (2B, max_length)
        return packed.chunk(2, dim=0)

    def _unpack_ref(self, inputs, shift_mask):
        packed = torch.cat([inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]], dim=0)  # (2B, max_length)
        counts = shift_mask.sum(dim=1, keepdim=True)  # (2B, 1)
        keep = torch.arange(packed.size(1), device=packed.device).unsqueeze(0) < counts
        out = torch.zeros(shift_mask.shape, dtype=packed.dtype, device=packed.device)
        return out.masked_scatter(shift_mask.bool(), packed[keep])  # (2B, T-1)

    # ---- anchors ------------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _generation_model(self, model):
        """The policy unwrapped for generation (ZeRO-3 parameters gathered by TRL's helper under DeepSpeed)."""
        if self.is_deepspeed_enabled:
            with unwrap_model_for_generation(model, self.accelerator,
                                             gradient_checkpointing_kwargs=self.args.gradient_checkpointing_kwargs) as m:
                yield m.get_base_model() if is_peft_model(m) else m
        else:  # PEFT: the base model holds the injected adapters and keeps HF's KV-cache signature
            m = self.accelerator.unwrap_model(model)
            yield m.get_base_model() if is_peft_model(m) else m

    def _batch_seed(self, input_ids: torch.Tensor) -> int:
        """A seed that depends on (seed, global step, batch contents): reproducible across resume and ranks."""
        content = int(input_ids[:, : min(16, input_ids.size(1))].sum().item())
        return (self.args.seed * 1_000_003 + self.state.global_step * 7_919 + content) % (2**62)

    def _anchors(self, model, prompts: list[list[int]], needed: list[int] | None = None) -> list[list[int]]:
        """One anchor per prompt: sampled from the current policy, or reused from the cache (``anchor_reuse_steps``).

        A prompt that appears twice is sampled once (its seed depends on the prompt only, so both would get the same
        anchor). ``needed``: per prompt, the anchor tokens the loss can use (the pair's longer response: the triplet
        distance sums over positions valid in both sequences); without a cache, sampling stops there.
        """
        a = self.args
        step = self.state.global_step
        keys = [tuple(p) for p in prompts]

        def stale(k):
            if k not in self._anchor_cache:
                return True
            return a.anchor_reuse_steps > 0 and step - self._anchor_cache[k][0] >= a.anchor_reuse_steps

        first = {k: i for i, k in reversed(list(enumerate(keys)))}  # each distinct prompt's first row
        need = sorted({first[k] for k in keys if stale(k)})
        fresh: dict[int, list[int]] = {}
        if need:
            budget = a.anchor_max_new_tokens
            if a.max_length is not None:
                budget = min(budget, a.max_length - max(len(prompts[i]) for i in need))
            if needed is not None and a.anchor_reuse_steps == 1:  # not cached: later tokens are never scored
                budget = min(budget, max(max(needed[j] for j, k in enumerate(keys) if k == keys[i]) for i in need))
            with self._generation_model(model) as gen_model:
                if self._anchor_generator is None:
                    self._anchor_generator = make_anchor_generator(gen_model, self.processing_class, "hf")
                seeds = [(a.seed * 1_000_003 + step * 7_919 + 31 * sum(prompts[i]) + len(prompts[i])) % (2**31)
                         for i in need]  # (seed, step, prompt): independent of batch composition and rank
                out = sample_anchor_ids(
                    self._anchor_generator, gen_model, [prompts[i] for i in need], max(1, budget),
                    a.anchor_temperature, a.anchor_top_k, a.anchor_top_p, self.processing_class.eos_token_id, seeds)
            fresh = dict(zip(need, out, strict=True))
        result = []
        for k in keys:
            ids = fresh.get(first[k])
            if ids is None:
                ids = self._anchor_cache[k][1]
            elif a.anchor_reuse_steps != 1:
                self._anchor_cache[k] = (step, ids)
            result.append(ids)
        return result

    # ---- loss ---------------------------------------------------------------------------------------------------
    def token_weights(self, model, inputs, logps=None):
        """Token weights ``(2B, T)`` of a collated batch, exactly as the loss computes them.

        ``logps``: the policy's label log-probs ``(2B, T-1)`` for the 'confidence' source (computed if missing).
        The gradient source uses the separate attribution pass here (equal to the fused one, see the tests).
        """
        a = self.args
        ids, mask, comp = inputs["input_ids"], inputs["attention_mask"], inputs["completion_mask"]
        if a.token_weighting == "importance" and a.importance == "confidence" and logps is None:
            labels = ids.masked_fill(comp == 0, -100)
            with torch.no_grad():
                logps = model(input_ids=ids, attention_mask=mask, ti_head=TIHeadRequest(labels=labels)).log_probs
        imp = None
        if a.token_weighting == "importance" and a.importance == "gradient":
            imp = compute_gradient_attribution(self.accelerator.unwrap_model(model), ids, mask)
        return self._weights_from(imp, ids, mask, comp, logps)[0]

    def _weights_from(self, importance, ids, mask, comp, logps):
        a = self.args
        span = comp if a.importance_span == "response" else mask
        if a.token_weighting == "uniform":
            importance = torch.zeros(ids.shape, device=ids.device)
        elif a.importance == "confidence":
            importance = compute_confidence_importance(logps, comp[:, 1:])
        elif a.importance == "random":
            g = torch.Generator().manual_seed(self._batch_seed(ids) + 1)
            importance = compute_random_importance(mask, g)
        return compute_token_weights(importance, span, a.ti_lambda, a.prior_sigma_div, a.weight_normalization,
                                     a.token_weighting, a.prior)

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        a = self.args
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        completion_mask = inputs["completion_mask"]
        n2 = input_ids.size(0)  # 2B: [chosen; rejected]
        B = n2 // 2
        triplet = a.gamma > 0
        ids, mask, comp = input_ids, attention_mask, completion_mask
        anchor_lens = None
        if triplet:  # [chosen; rejected; anchor] in one batch, right-padded
            prompts = prompt_token_lists(input_ids[:B], attention_mask[:B], completion_mask[:B])
            longer = torch.maximum(completion_mask[:B].sum(dim=1), completion_mask[B:].sum(dim=1)).tolist()  # (B,)
            anchors = trim_anchors(self._anchors(model, prompts, longer), longer)
            ids, mask, comp = _append_rows(input_ids, attention_mask, completion_mask, prompts, anchors,
                                           self.processing_class.pad_token_id)
            anchor_lens = torch.tensor([len(x) for x in anchors], dtype=torch.float32, device=ids.device)
        shift_mask = comp[:, 1:]  # (R, T-1): label t+1 is a response token
        labels = ids.masked_fill(comp == 0, -100)
        kl_on = a.alpha_kl > 0
        gradient = a.token_weighting == "importance" and a.importance == "gradient"
        fused = gradient and self.attribution_mode == "fused"

        layout = None
        if self.batch_layout == "shared_prompt":  # one packed row per pair, the prompt once (ti_dpo.packing)
            layout = pack_shared_prompt(ids, mask, comp, B, self.processing_class.pad_token_id or 0)
            if layout is None:
                self.padded_fallbacks += 1  # same loss, only slower: counted and warned once
                if self.padded_fallbacks == 1:
                    logger.warning("a batch whose chosen/rejected rows do not share their prompt tokens was scored "
                                   "in the padded layout (counted in trainer.padded_fallbacks)")

        importance = None
        if gradient and not fused:  # the release's separate eval-mode pass (dropout off, no checkpointing)
            importance = compute_gradient_attribution(self.accelerator.unwrap_model(model), ids[:n2], mask[:n2])

        # reference: per-token log-probs (or, for the KL, its final hidden states: log-probs come with the KL)
        ref_hidden = ref_logps = None
        if self.precompute_ref_logps:
            ref_logps = torch.zeros(shift_mask.shape, device=ids.device)
            ref_logps[:n2] = self._unpack_ref(inputs, shift_mask[:n2])
            if triplet:
                ref_logps[n2:] = self._ref_forward(ids[n2:], mask[n2:], TIHeadRequest(labels=labels[n2:])).log_probs
        elif kl_on:
            ref_hidden = self._ref_forward(ids, mask, TIHeadRequest(return_hidden=True, layout=layout)).hidden
        else:
            ref_logps = self._ref_forward(ids, mask, TIHeadRequest(labels=labels, layout=layout)).log_probs

        out = model(input_ids=ids, attention_mask=mask, ti_head=TIHeadRequest(
            labels=labels, attribution_rows=n2 if fused else 0, ref_hidden=ref_hidden,
            ref_head=self._ref_head() if kl_on else None, kl_rows=n2, layout=layout))
        logps = out.log_probs  # (R, T-1)
        if kl_on:
            ref_logps = out.ref_log_probs
        if fused:
            importance = out.importance
        weights, wmetrics = self._weights_from(importance, ids[:n2], mask[:n2], comp[:n2], logps[:n2])  # (2B, T)
        shift_w = weights[:, 1:]  # the label token y_t gets the importance of its own input position
        logratios = (logps - ref_logps) * shift_mask  # (R, T-1)
        chosen_m, rejected_m = compute_weighted_margin(logratios[:n2], shift_w, shift_mask[:n2]).chunk(2)  # (B,)
        chosen_kl = rejected_kl = None
        if kl_on:
            chosen_kl, rejected_kl = (out.kl[:n2] * shift_mask[:n2]).sum(dim=1).chunk(2)
        dpo_losses, _ = compute_ti_dpo_loss(chosen_m, rejected_m, a.beta, a.alpha_kl, chosen_kl, rejected_kl)
        loss = dpo_losses.mean()
        m = {"loss/dpo": dpo_losses.detach(), "rewards/chosen": a.beta * chosen_m.detach(),
             "rewards/rejected": a.beta * rejected_m.detach()}
        if triplet:
            d, d_mask = pack_left(logratios[n2:], shift_mask[n2:])  # (B, A)
            b, b_mask = pack_left(logratios[:B], shift_mask[:B])
            c, c_mask = pack_left(logratios[B:n2], shift_mask[B:n2])
            trip, dist = compute_triplet_loss(d, d_mask, b, b_mask, c, c_mask, a.triplet_margin)
            loss = loss + a.gamma * trip.mean()
            m.update({"loss/triplet": trip.detach(), "triplet/d_pos": dist["d_pos"].detach(),
                      "triplet/d_neg": dist["d_neg"].detach(), "anchor/length": anchor_lens})
        if kl_on:
            m.update({"kl/chosen": chosen_kl.detach(), "kl/rejected": rejected_kl.detach()})
        self._log_metrics(mode, m, logratios[:n2], shift_mask[:n2], shift_w, wmetrics)
        if return_outputs:  # as the parent: logits for compute_metrics, from an extra no-grad forward
            with torch.no_grad():
                return loss, model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return loss

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
        zero = torch.tensor([wmetrics["zero_importance_rows"]], device=logratios.device)
        self._metrics[mode]["weights/zero_importance_rows"].append(gather(zero).sum().item())


def _append_rows(input_ids, attention_mask, completion_mask, prompts, anchors, pad_id):
    """``[rows; prompt_i + anchor_i]``: the anchor rows appended to a right-padded batch (all padded to one width)."""
    rows = [p + x for p, x in zip(prompts, anchors, strict=True)]
    T = max(input_ids.size(1), max(len(r) for r in rows))
    dev = input_ids.device
    A = len(rows)
    a_ids = torch.full((A, T), pad_id if pad_id is not None else 0, dtype=input_ids.dtype, device=dev)
    a_mask = torch.zeros((A, T), dtype=attention_mask.dtype, device=dev)
    a_comp = torch.zeros((A, T), dtype=completion_mask.dtype, device=dev)
    for i, (p, x) in enumerate(zip(prompts, anchors, strict=True)):
        a_ids[i, :len(p) + len(x)] = torch.tensor(p + x, dtype=input_ids.dtype)
        a_mask[i, :len(p) + len(x)] = 1
        a_comp[i, len(p):len(p) + len(x)] = 1
    pad = T - input_ids.size(1)
    ids = torch.cat([F.pad(input_ids, (0, pad), value=pad_id if pad_id is not None else 0), a_ids])
    return ids, torch.cat([F.pad(attention_mask, (0, pad)), a_mask]), torch.cat([F.pad(completion_mask, (0, pad)),
                                                                                a_comp])


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
