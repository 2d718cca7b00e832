"""The LM interface rlcore's samplers use, and a version-tolerant forward call.

An *LM* is any callable ``lm(input_ids (B, T), attention_mask=None, position_ids=None, cache=None, use_cache=...)``
returning an object with ``.logits`` ``(B, T, V)`` and a KV cache (``.cache`` in transformers >= 5.x, where
``past_key_values`` was renamed; ``.past_key_values`` before), or ``None`` for a model without one (then callers
re-encode the whole sequence). HF causal LMs and :class:`rlcore.testing.TableLM` both qualify.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import torch

__all__ = ["lm_forward", "cache_kwarg", "supports_logits_to_keep"]


@functools.lru_cache(maxsize=64)
def _forward_params(cls: type) -> frozenset[str]:
    try:
        return frozenset(inspect.signature(cls.forward).parameters)
    except (TypeError, ValueError, AttributeError):
        return frozenset()


def cache_kwarg(model: Any) -> str | None:
    """The name of the KV-cache argument of ``model.forward`` (``cache`` or ``past_key_values``), or None."""
    params = _forward_params(type(model))
    if "cache" in params:
        return "cache"
    if "past_key_values" in params:
        return "past_key_values"
    return None


def supports_logits_to_keep(model: Any) -> bool:
    """Whether ``model.forward`` accepts ``logits_to_keep`` (apply the LM head to the last N positions only)."""
    return "logits_to_keep" in _forward_params(type(model))


def lm_forward(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    cache: Any = None,
    logits_to_keep: int = 0,
    **kwargs: Any,
) -> tuple[torch.Tensor, Any]:
    """One forward pass of an LM; returns ``(logits (B, T', V), cache or None)``.

    ``T' = logits_to_keep`` when the model supports it and it is > 0 (else all ``T`` positions, sliced here).
    """
    call: dict[str, Any] = dict(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    if position_ids is not None:
        call["position_ids"] = position_ids
    name = cache_kwarg(model)
    if name is not None:
        call[name] = cache
        call["use_cache"] = True
    keep_here = logits_to_keep > 0 and not supports_logits_to_keep(model)
    if logits_to_keep > 0 and not keep_here:
        call["logits_to_keep"] = logits_to_keep
    out = model(**call)
    logits = out.logits
    if keep_here:
        logits = logits[:, -logits_to_keep:]
    new_cache = getattr(out, "cache", None)
    if new_cache is None:
        new_cache = getattr(out, "past_key_values", None)
    return logits, new_cache
