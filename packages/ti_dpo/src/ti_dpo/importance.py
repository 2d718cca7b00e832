"""Token importance (paper §4.1, Eq. 5-8): gradient attribution, the Gaussian prior, and their mixture.

All tensors are right- or left-padded ``(B, T)`` batches with a 0/1 ``span_mask`` marking the tokens that share one
weight distribution (the response tokens by default, or prompt+response as in the official release).
"""

from __future__ import annotations

from typing import Any

import torch
from rlcore.lm import supports_logits_to_keep

__all__ = [
    "compute_gradient_attribution",
    "compute_gaussian_prior",
    "compute_token_weights",
    "compute_confidence_importance",
    "compute_random_importance",
    "last_valid_index",
    "NORMALIZATIONS",
    "WEIGHTINGS",
    "IMPORTANCE_SOURCES",
    "PRIORS",
]

NORMALIZATIONS = ("mean_one", "sum_one")
WEIGHTINGS = ("importance", "uniform")
#: Where the importance I comes from: gradient attribution (paper Eq. 5-6), the policy's own confidence
#: (ConfPO-style, no extra compute) or uniform noise (Table 2 "random-weight" ablation).
IMPORTANCE_SOURCES = ("gradient", "confidence", "random")
#: The distribution mixed with I: the Gaussian positional prior (Eq. 7) or a softmax over the importance
#: (Table 2 "softmax-prior" ablation).
PRIORS = ("gaussian", "softmax")


def last_valid_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last non-pad position of each row of ``attention_mask`` ``(B, T)`` -> ``(B,)`` (any padding side)."""
    T = attention_mask.size(1)
    pos = torch.arange(T, device=attention_mask.device).expand_as(attention_mask)  # (B, T)
    return torch.where(attention_mask.bool(), pos, torch.full_like(pos, -1)).max(dim=1).values


def compute_gradient_attribution(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    r"""Gradient attribution of each input token (Eq. 5-6): :math:`I_i = \lVert \nabla_{e_i} \max_v L_{T-1}[v] \rVert_1`.

    ``L_{T-1}`` are the next-token logits at the last valid (non-pad) position of each row; the target is their max
    (the model's own top prediction, not the gold token). The input embeddings are detached leaves, so the model's
    parameters get no gradient, and one ``autograd.grad`` on the sum over rows serves the whole batch (rows do not
    attend to each other), so chosen and rejected sequences share a single forward+backward. The model runs in eval
    mode (no dropout; HF models also skip gradient checkpointing in eval mode) and its mode is restored afterwards.
    The result is a constant: no graph is kept.

    Args:
        model: an HF causal LM (or PEFT wrapper) accepting ``inputs_embeds``, ``attention_mask``, ``logits_to_keep``.
        input_ids: ``(B, T)`` token ids.
        attention_mask: ``(B, T)`` 1 for real tokens.

    Returns:
        ``(B, T)`` non-negative importances, 0 at pad positions.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            embeds = model.get_input_embeddings()(input_ids).detach().requires_grad_(True)  # (B, T, H)
            last = last_valid_index(attention_mask)  # (B,)
            keep, slot = torch.unique(last, sorted=True, return_inverse=True)  # (K,), (B,)
            base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT wraps the LM
            kw = {"logits_to_keep": keep} if supports_logits_to_keep(base) else {}
            logits = model(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False, **kw).logits
            logits = logits if kw else logits[:, keep]  # (B, K, V): logits at the kept positions only
            rows = torch.arange(input_ids.size(0), device=input_ids.device)
            target = logits[rows, slot].float().max(dim=-1).values  # (B,)
            (grad,) = torch.autograd.grad(target.sum(), embeds)  # (B, T, H)
    finally:
        model.train(was_training)
    return grad.detach().float().abs().sum(dim=-1) * attention_mask.to(torch.float32)  # (B, T)


def compute_confidence_importance(label_logps: torch.Tensor, label_mask: torch.Tensor) -> torch.Tensor:
    r"""ConfPO-style importance from the policy's own confidence (Yoon et al., ICML 2025): low-probability tokens.

    A token is preference-critical when its probability under the current policy is at most the mean token
    probability of its sequence (ConfPO's threshold): :math:`I_t = 1[p_t \le \bar p]`. The log-probs are the ones the
    DPO forward already computes, so this costs nothing extra. Uniform confidence selects every token (uniform I).

    Args:
        label_logps: ``(B, T-1)`` log-prob of label token t+1 (the trainer's shifted layout).
        label_mask: ``(B, T-1)`` 0/1 response labels.

    Returns:
        ``(B, T)`` importance aligned with *input* positions (label t+1 -> position t+1; column 0 is 0), constants.

    Example:
        >>> compute_confidence_importance(torch.log(torch.tensor([[0.9, 0.1, 0.5, 0.2]])), torch.tensor([[1, 1, 1, 0]]))
        tensor([[0., 0., 1., 1., 0.]])
    """
    m = label_mask.to(torch.float32)
    p = label_logps.detach().float().exp() * m  # (B, T-1)
    mean = p.sum(dim=1, keepdim=True) / m.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, 1)
    low = (p <= mean * (1.0 + 1e-5)).float() * m  # relative tolerance: equal probabilities all count as "low"
    return torch.nn.functional.pad(low, (1, 0))


def compute_random_importance(attention_mask: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Table 2 "random-weight" ablation: I_t ~ U(0, 1) i.i.d. on real tokens (0 on padding), ``(B, T)``."""
    u = torch.rand(attention_mask.shape, generator=generator, device="cpu").to(attention_mask.device)
    return u * attention_mask.to(torch.float32)


def _span_positions(span_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Position of each token within its span ``(B, T)`` (0-based, garbage outside) and span lengths ``(B,)``."""
    m = span_mask.to(torch.float32)
    return m.cumsum(dim=1) - 1.0, m.sum(dim=1)


def compute_gaussian_prior(span_mask: torch.Tensor, sigma_div: float = 4.0) -> torch.Tensor:
    r"""Gaussian positional prior (Eq. 7), normalised to sum 1 over each row's span.

    :math:`P(t) \propto \exp(-\tfrac12((t-\mu)/\sigma)^2)`, :math:`t = 0..n-1` the position inside the span of
    length :math:`n`, :math:`\mu = (n-1)/2`, :math:`\sigma = n / \text{sigma\_div}` (paper: 4; release: 8).

    Args:
        span_mask: ``(B, T)`` 0/1, the tokens of each row's span (need not be contiguous).
        sigma_div: divisor of the span length giving sigma.

    Returns:
        ``(B, T)`` prior, 0 outside the span, each non-empty row summing to 1.

    Example:
        >>> compute_gaussian_prior(torch.tensor([[1, 1, 1]]), sigma_div=4.0).round(decimals=4)
        tensor([[0.2256, 0.5488, 0.2256]])
    """
    t, n = _span_positions(span_mask)  # (B, T), (B,)
    mu = ((n - 1.0) / 2.0).unsqueeze(1)  # (B, 1)
    sigma = (n / sigma_div).clamp(min=1e-6).unsqueeze(1)  # (B, 1)
    p = torch.exp(-0.5 * ((t - mu) / sigma) ** 2) * span_mask.to(torch.float32)  # (B, T)
    return p / p.sum(dim=1, keepdim=True).clamp(min=1e-30)


def compute_token_weights(
    importance: torch.Tensor,
    span_mask: torch.Tensor,
    lam: float = 0.7,
    sigma_div: float = 4.0,
    normalization: str = "mean_one",
    weighting: str = "importance",
    prior: str = "gaussian",
) -> tuple[torch.Tensor, dict[str, float]]:
    r"""Token weights (Eq. 8): :math:`W = \lambda I_{norm} + (1-\lambda) P_{prior}`, then normalised.

    :math:`I_{norm} = I / \sum I` over the span. A row whose importances sum to 0 uses the prior alone (counted in
    ``metrics["zero_importance_rows"]``). ``normalization="sum_one"`` keeps the paper's distribution
    (:math:`\sum_t W_t = 1`); ``"mean_one"`` (the release, our default) rescales by the span length ``n`` so the mean
    weight is 1 and uniform weights reduce the loss exactly to DPO. ``weighting="uniform"`` is the Table 2
    "uniform-weight" ablation: every span token gets the same weight. ``prior="softmax"`` (Table 2 "softmax-prior"
    ablation; the paper does not define it further) replaces the Gaussian by :math:`\mathrm{softmax}(n I_{norm})`
    over the span (the mean-one importance, so the scale of I does not matter).

    Args:
        importance: ``(B, T)`` non-negative attribution scores.
        span_mask: ``(B, T)`` 0/1 span of the distribution.
        lam: mixing weight λ ∈ [0, 1] of the importance (paper Table B13: 0.7).
        sigma_div: σ = n / sigma_div for the prior (paper: 4).
        normalization: ``"mean_one"`` or ``"sum_one"``.
        weighting: ``"importance"`` or ``"uniform"``.
        prior: ``"gaussian"`` (Eq. 7) or ``"softmax"``.

    Returns:
        ``(B, T)`` weights (0 outside the span; constants), and metrics.

    Example:
        >>> w, _ = compute_token_weights(torch.tensor([[1.0, 3.0]]), torch.tensor([[1, 1]]), lam=1.0)
        >>> w
        tensor([[0.5000, 1.5000]])
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam (λ) must lie in [0, 1], got {lam}")
    mask = span_mask.to(torch.float32)  # (B, T)
    n = mask.sum(dim=1, keepdim=True)  # (B, 1)
    if weighting == "uniform":
        w = mask / n.clamp(min=1.0)
        zero_rows = 0
    else:
        imp = importance.detach().to(torch.float32) * mask  # (B, T)
        total = imp.sum(dim=1, keepdim=True)  # (B, 1)
        gauss = compute_gaussian_prior(span_mask, sigma_div)  # (B, T)
        zero = (total <= 0) & (n > 0)  # (B, 1): no gradient signal -> prior alone
        i_norm = torch.where(zero, gauss, imp / total.clamp(min=1e-30))
        if prior == "softmax":
            logits = (i_norm * n).masked_fill(mask == 0, float("-inf"))
            p = torch.softmax(logits, dim=1).nan_to_num(0.0) * mask  # empty rows: 0
        else:
            p = gauss
        w = lam * i_norm + (1.0 - lam) * p
        zero_rows = int(zero.sum())
    if normalization == "mean_one":
        w = w * n
    return w.detach(), {"zero_importance_rows": float(zero_rows)}
