r"""One policy forward per step: label log-probs, the TDPO2 KL and the attribution, from one backbone pass.

:func:`add_ti_head` patches a causal LM's ``forward`` (per instance, like TRL's fused LM head, so calls still go
through DDP/DeepSpeed wrappers): ``model(input_ids=..., attention_mask=..., ti_head=TIHeadRequest(...))`` runs the
backbone once and returns a :class:`TIHeadOutput`:

- ``log_probs`` ``(B, T-1)``: log-prob of each label token (0 where the label is -100). The LM head runs only on
  labelled positions, in chunks; a chunk is recomputed in the backward pass (``torch.utils.checkpoint``) when the
  whole ``(N, V)`` float32 block would exceed ``max_chunk_elems``, so no ``(B, T, V)`` tensor is ever kept.
- ``kl`` and ``ref_log_probs`` ``(B, T-1)``: :math:`\mathrm{KL}(\pi_{ref}(\cdot|s_t) \| \pi_\theta(\cdot|s_t))` at the labelled positions,
  from the reference's final hidden states (``ref_hidden``) and LM head, chunked the same way (TDPO2 sequential KL
  without materialising full-vocabulary log-softmaxes of policy or reference).
- ``importance`` ``(R, T)``: gradient attribution (Eq. 5-6) of the first ``attribution_rows`` rows, taken with one
  ``autograd.grad`` on the *same* graph (``retain_graph=True``) before the loss backward: the input embeddings of
  this forward are the attribution's inputs, so no second forward is needed. Valid when the forward is
  deterministic (no active dropout) and not under reentrant activation checkpointing (which forbids
  ``autograd.grad``); the trainer then uses the separate eval-mode pass (:func:`ti_dpo.importance.
  compute_gradient_attribution`) instead.
- ``hidden`` ``(B, T, H)``: the final hidden states (``return_hidden=True``; the reference pass).

With ``layout`` (a :class:`ti_dpo.packing.SharedPromptLayout`) the backbone runs on the packed rows (each pair's
prompt once, a 4D mask) and the hidden states are gathered back to the padded ``(B, T)`` rows, so everything above
is unchanged; ``kl_rows`` limits the KL to the rows whose KL the loss uses (not the triplet anchors).

Without ``ti_head`` the forward is the previous one (generation, TRL's fused head) unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import types
from typing import Any

import torch
from torch.utils.checkpoint import checkpoint
from transformers.utils import ModelOutput

from .importance import last_valid_index
from .packing import SharedPromptLayout

__all__ = ["TIHeadRequest", "TIHeadOutput", "add_ti_head", "chunked_label_logps_and_kl", "has_active_dropout"]

#: Default budget of one LM-head chunk, in float32 elements of ``(rows, V)`` (64 MB).
MAX_CHUNK_ELEMS = 1 << 24


@dataclasses.dataclass
class TIHeadRequest:
    """What a ``ti_head`` forward computes (see the module docstring)."""

    labels: torch.Tensor | None = None  # (B, T) with -100 where no log-prob is wanted
    attribution_rows: int = 0
    ref_hidden: torch.Tensor | None = None  # (B, T, H) reference final hidden states (no grad) -> kl
    ref_head: Any = None  # the reference's LM head module
    kl_rows: int | None = None  # KL for the first kl_rows rows only (None: all)
    return_hidden: bool = False
    max_chunk_elems: int = MAX_CHUNK_ELEMS
    layout: SharedPromptLayout | None = None  # run the backbone on the packed rows (ti_dpo.packing)


@dataclasses.dataclass
class TIHeadOutput(ModelOutput):
    """Result of a ``ti_head`` forward; fields not requested are ``None``."""

    log_probs: torch.Tensor | None = None
    kl: torch.Tensor | None = None
    importance: torch.Tensor | None = None
    hidden: torch.Tensor | None = None
    ref_log_probs: torch.Tensor | None = None


def has_active_dropout(model: Any) -> bool:
    """Whether a forward of ``model`` in training mode is random (a dropout module or an attention dropout > 0)."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout) and m.p > 0:
            return True
    cfg = getattr(model, "config", None)
    for key in ("attention_dropout", "hidden_dropout", "dropout", "resid_pdrop", "attn_pdrop", "embd_pdrop"):
        v = getattr(cfg, key, 0.0)
        if isinstance(v, int | float) and v > 0:
            return True
    return False


def _chunk_fn(head, ref_head, labels, with_ref, with_kl):
    def fn(h, ref_h):
        logits = head(h).float()  # (n, V)
        lse = torch.logsumexp(logits, dim=-1)  # (n,)
        logp = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - lse
        if not with_ref:
            return logp, logp.new_zeros(()), logp.new_zeros(())
        with torch.no_grad():
            ref_lp = ref_head(ref_h).float().log_softmax(dim=-1)  # (n, V), constant
            ref_label = ref_lp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        if not with_kl:  # rows whose KL the loss does not use (the triplet anchors)
            return logp, torch.zeros_like(logp), ref_label
        pol_lp = logits - lse.unsqueeze(-1)
        kl = (ref_lp.exp() * (ref_lp - pol_lp)).sum(dim=-1)  # (n,)
        return logp, kl, ref_label
    return fn


def chunked_label_logps_and_kl(hidden: torch.Tensor, head: Any, labels: torch.Tensor,
                               ref_hidden: torch.Tensor | None = None, ref_head: Any = None,
                               max_chunk_elems: int = MAX_CHUNK_ELEMS, kl_rows: int | None = None,
                               ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    r"""Per-token label log-probs and (optionally) :math:`\mathrm{KL}(\pi_{ref}\|\pi_\theta)`, chunked over tokens.

    Args:
        hidden: ``(B, T, H)`` policy hidden states *aligned with* ``labels`` (already shifted: position t predicts
            ``labels[:, t]``).
        head: the policy LM head (``(., H) -> (., V)``).
        labels: ``(B, T)`` target ids, ``-100`` where nothing is computed.
        ref_hidden: ``(B, T, H)`` reference hidden states (same alignment) for the KL; ``None``: no KL.
        ref_head: the reference LM head.
        max_chunk_elems: at most this many float32 ``(rows, V)`` elements per chunk; with more labelled tokens than
            fit, each chunk is recomputed in the backward pass instead of storing its logits.
        kl_rows: the KL is computed for the first ``kl_rows`` rows only (0 in the others, which still get their
            reference log-probs); ``None``: all rows.

    Returns:
        ``(B, T)`` log-probs, ``(B, T)`` KL and ``(B, T)`` reference log-probs of the labels (both ``None`` without
        ``ref_hidden``), 0 where ``labels == -100``.
    """
    mask = labels != -100
    h, y = hidden[mask], labels[mask]  # (N, H), (N,)
    with_kl = ref_hidden is not None
    rh = ref_hidden[mask].detach() if with_kl else h.new_zeros(h.size(0), 0)
    V = head.weight.size(0) if hasattr(head, "weight") else 1
    n_chunk = max(1, max_chunk_elems // max(V, 1))
    recompute = torch.is_grad_enabled() and h.requires_grad and h.size(0) > n_chunk
    # tokens are in row-major order: those of the first kl_rows rows come first
    n_kl = h.size(0) if kl_rows is None else int(mask[:kl_rows].sum())
    parts: list[tuple[torch.Tensor, ...]] = []
    for lo, hi, kl_here in ((0, n_kl, with_kl), (n_kl, h.size(0), False)):
        for s in range(lo, hi, n_chunk):
            e = min(s + n_chunk, hi)
            fn = _chunk_fn(head, ref_head, y[s:e], with_kl, kl_here)
            if recompute:
                parts.append(checkpoint(fn, h[s:e], rh[s:e], use_reentrant=False))
            else:
                parts.append(fn(h[s:e], rh[s:e]))
    zeros = torch.zeros(labels.shape, dtype=torch.float32, device=hidden.device)

    def scatter(k):
        flat = torch.cat([p[k] for p in parts]) if parts else zeros.new_zeros(0)
        return zeros.masked_scatter(mask, flat)

    if not with_kl:
        return scatter(0), None, None
    return scatter(0), scatter(1), scatter(2)


def _backbone(model: Any) -> Any:
    return model.base_model


def add_ti_head(model: Any) -> None:
    """Patch ``model.forward`` (an HF causal LM, before PEFT wrapping or its PEFT base) to accept ``ti_head``.

    Idempotent: a model patched once keeps a single wrapper.
    """
    if getattr(model, "_ti_head_patched", False):
        return
    previous = model.forward

    @functools.wraps(type(model).forward)
    def _forward(self, *args, ti_head: TIHeadRequest | None = None, **kwargs):
        if ti_head is None:
            return previous(*args, **kwargs)
        return _ti_forward(self, ti_head, **kwargs)

    model.forward = types.MethodType(_forward, model)
    model._ti_head_patched = True


def _ti_forward(model: Any, req: TIHeadRequest, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                **kwargs: Any) -> TIHeadOutput:
    lay = req.layout
    embeds = model.get_input_embeddings()(input_ids if lay is None else lay.input_ids)  # (B, T, H) or (G, W, H)
    attribute = req.attribution_rows > 0
    if attribute and not embeds.requires_grad:  # frozen embeddings (PEFT): attribute to a leaf copy
        embeds = embeds.detach().requires_grad_(True)
    extra = {k: v for k, v in kwargs.items() if k == "position_ids" and v is not None}
    mask = attention_mask
    if lay is not None:  # packed rows: a 4D mask and each token's padded-layout position
        extra["position_ids"] = lay.position_ids
        mask = lay.attention_mask(embeds.dtype, model.config._attn_implementation)
    head = model.get_output_embeddings()
    out = TIHeadOutput()
    with torch.enable_grad() if attribute else contextlib.nullcontext():  # eval passes need the graph too
        hidden = _backbone(model)(inputs_embeds=embeds, attention_mask=mask, use_cache=False,
                                  **extra).last_hidden_state  # (B, T, H) or packed (G, W, H)
        if lay is not None:
            hidden = lay.gather(hidden)  # (B, T, H): the padded layout again
        if attribute:
            R = req.attribution_rows
            last = last_valid_index(attention_mask[:R])  # (R,)
            top = head(hidden[torch.arange(R, device=hidden.device), last]).float().max(dim=-1).values  # (R,)
            (grad,) = torch.autograd.grad(top.sum(), embeds, retain_graph=True)
            grad = grad if lay is None else lay.gather(grad)  # (B, T, H); prompt slots: summed over the pair
            out.importance = grad[:R].detach().float().abs().sum(dim=-1) * attention_mask[:R].float()  # (R, T)
    if req.return_hidden:
        out.hidden = hidden
    if req.labels is not None:
        ref_h = req.ref_hidden[:, :-1] if req.ref_hidden is not None else None
        out.log_probs, out.kl, out.ref_log_probs = chunked_label_logps_and_kl(
            hidden[:, :-1], head, req.labels[:, 1:], ref_h, req.ref_head, req.max_chunk_elems, req.kl_rows)
    return out
