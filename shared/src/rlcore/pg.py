"""Policy-gradient formulas: group advantages, clipped surrogate, KL estimators, loss aggregation.

One function per formula; the defaults follow TRL 1.x (``GRPOTrainer``), and verl's conventions are named options
beside them (``size_one="verl"``, ``clip_ratio_c``, ``max_log_ratio``, ``compute_k3_kl(clamp=...)``,
``seq-mean-token-sum``, ``aggregate_loss(num_tokens=..., dp_size=...)``; see ``specs/rl_infra.md``).
Shapes: ``B`` completions, ``G`` group size (``B = P * G``, groups contiguous), ``T`` completion tokens.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = [
    "compute_grpo_advantages",
    "compute_dr_grpo_advantages",
    "compute_batch_scaled_advantages",
    "compute_per_reward_normalized_advantages",
    "compute_clipped_surrogate",
    "compute_k3_kl",
    "aggregate_loss",
    "register_loss_agg",
    "get_loss_agg",
    "LOSS_AGG_REGISTRY",
    "TRL_STD_EPS",
    "VERL_STD_EPS",
    "VERL_CLIP_RATIO_C",
    "VERL_K3_CLAMP",
    "VERL_MAX_LOG_RATIO",
]

TRL_STD_EPS = 1e-4  # TRL GRPOTrainer: A = (r - mean) / (std + 1e-4)
VERL_STD_EPS = 1e-6  # verl compute_grpo_outcome_advantage: (s - mean) / (std + 1e-6)
VERL_CLIP_RATIO_C = 3.0  # verl actor.clip_ratio_c (dual-clip lower bound for A < 0)
VERL_K3_CLAMP = 10.0  # verl kl_penalty low_var_kl: k3 clamped to [-10, 10]
VERL_MAX_LOG_RATIO = 20.0  # verl/OpenRLHF clamp the log-ratio to +-20 before exp
_SIZE_ONE = ("trl", "verl")


def _check_size_one(size_one: str) -> None:
    if size_one not in _SIZE_ONE:
        raise ValueError(f"unknown size_one convention {size_one!r}; choose from {list(_SIZE_ONE)}")


def _grouped(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be 1-D (B,), got shape {tuple(rewards.shape)}")
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if rewards.numel() == 0:
        raise ValueError("empty batch: no rewards to normalise")
    if rewards.numel() % group_size:
        raise ValueError(f"batch of {rewards.numel()} rewards is not a multiple of group_size={group_size}")
    return rewards.view(-1, group_size)  # (P, G)


def _nanmean(x: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.nanmean(x, dim=dim, keepdim=True)


def _nanstd(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Unbiased (Bessel) std ignoring NaN, as TRL's ``nanstd``; a single valid value gives NaN -> treated as 0."""
    mean = _nanmean(x, dim)
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=True).to(x.dtype)
    var = torch.nansum((x - mean) ** 2, dim=dim, keepdim=True) / (count - 1).clamp(min=1)
    return var.sqrt()


def compute_grpo_advantages(
    rewards: torch.Tensor, group_size: int, eps: float = TRL_STD_EPS, *, size_one: str = "trl"
) -> torch.Tensor:
    r"""GRPO group-relative advantage: :math:`A_i = (r_i - \mathrm{mean}_g(r)) / (\mathrm{std}_g(r) + \epsilon)`.

    TRL ``scale_rewards="group"``: unbiased std (n-1), ``eps = 1e-4``. A NaN reward (a ``None`` from every reward
    function) is left out of the group statistics and gets advantage 0. A group whose rewards are all equal gets
    advantage 0 everywhere (no NaN).

    Args:
        rewards: ``(B,)`` scalar rewards, groups contiguous.
        group_size: ``G``.
        eps: added to the std (verl: :data:`VERL_STD_EPS` = 1e-6).
        size_one: groups of one sample (``group_size=1``). ``"trl"``: advantage 0 (no signal); ``"verl"``:
            mean 0 and std 1, so :math:`A = r / (1 + \epsilon)` (verl ``compute_grpo_outcome_advantage``).

    Returns:
        ``(B,)`` advantages.

    Example:
        >>> compute_grpo_advantages(torch.tensor([1.0, 0.0, 1.0, 1.0]), 2).tolist()  # std of (1,0) = 0.7071
        [0.7070..., -0.7070..., 0.0, 0.0]

    """
    _check_size_one(size_one)
    r = _grouped(rewards, group_size)
    if size_one == "verl" and group_size == 1:
        return torch.nan_to_num(r / (1.0 + eps), nan=0.0).view(-1)
    adv = (r - _nanmean(r, 1)) / (_nanstd(r, 1) + eps)
    return torch.nan_to_num(adv, nan=0.0).view(-1)


def compute_dr_grpo_advantages(rewards: torch.Tensor, group_size: int, *, size_one: str = "trl") -> torch.Tensor:
    r"""Dr. GRPO advantage (Liu et al. 2025): :math:`A_i = r_i - \mathrm{mean}_g(r)` (no std division).

    TRL ``scale_rewards="none"``; verl ``norm_adv_by_std_in_grpo=False``. Shapes: ``(B,) -> (B,)``.
    ``size_one="verl"``: a group of one sample has mean 0, so :math:`A = r` (TRL: 0).

    Example:
        >>> compute_dr_grpo_advantages(torch.tensor([1.0, 0.0, 3.0, 1.0]), 2).tolist()
        [0.5, -0.5, 1.0, -1.0]

    """
    _check_size_one(size_one)
    r = _grouped(rewards, group_size)
    if size_one == "verl" and group_size == 1:
        return torch.nan_to_num(r, nan=0.0).view(-1)
    return torch.nan_to_num(r - _nanmean(r, 1), nan=0.0).view(-1)


def compute_batch_scaled_advantages(rewards: torch.Tensor, group_size: int, eps: float = TRL_STD_EPS):
    r"""Group mean, batch std (Lite-PPO; TRL ``scale_rewards="batch"``): :math:`(r_i - \mu_g)/(\sigma_B + \epsilon)`.

    Shapes: ``(B,) -> (B,)``. The batch std is unbiased, over all non-NaN rewards.
    """
    r = _grouped(rewards, group_size)
    flat = r.reshape(1, -1)
    adv = (r - _nanmean(r, 1)) / (_nanstd(flat, 1) + eps)
    return torch.nan_to_num(adv, nan=0.0).view(-1)


def compute_per_reward_normalized_advantages(
    rewards: torch.Tensor, group_size: int, weights: torch.Tensor | None = None, eps: float = TRL_STD_EPS
) -> torch.Tensor:
    r"""Normalise each reward within its group, then take the weighted mean (LongWriter-Zero's rule).

    :math:`A_i = \sum_k w_k \, (r_{i,k} - \mu_{g,k}) / (\sigma_{g,k} + \epsilon) / \sum_k w_k`, unbiased std.
    Unlike TRL's ``normalize_then_sum`` there is no second, batch-level normalisation of the sum, and the result is
    an average (so it stays on the scale of one z-score). It is invariant to any positive scale and any offset of
    each reward. A NaN entry (``None``) is left out of that reward's statistics and contributes 0.

    Args:
        rewards: ``(B, K)`` one column per reward function.
        group_size: ``G``.
        weights: ``(K,)`` (default: all 1).
        eps: added to each std.

    Returns:
        ``(B,)`` advantages.

    """
    if rewards.ndim != 2:
        raise ValueError(f"rewards must be (B, K), got shape {tuple(rewards.shape)}")
    B, K = rewards.shape
    cols = [compute_grpo_advantages(rewards[:, k].contiguous(), group_size, eps) for k in range(K)]
    z = torch.stack(cols, dim=1)  # (B, K)
    w = torch.ones(K, dtype=rewards.dtype, device=rewards.device) if weights is None else weights.to(rewards)
    return (z * w).sum(dim=1) / w.sum()


def compute_clipped_surrogate(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    *,
    clip_ratio_c: float | None = None,
    max_log_ratio: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""PPO clipped surrogate per token: :math:`L_t = -\min(\rho_t A, \mathrm{clip}(\rho_t, 1-\epsilon_l, 1+\epsilon_h) A)`.

    :math:`\rho_t = \exp(\log\pi_\theta - \log\pi_{old})`. ``epsilon_high`` defaults to ``epsilon_low`` (TRL's
    ``epsilon`` / ``epsilon_high``; DAPO's clip-higher uses 0.28).

    verl options (off by default, as in TRL): ``clip_ratio_c`` (verl default :data:`VERL_CLIP_RATIO_C` = 3.0)
    is the dual clip: where :math:`A < 0` the loss is further capped, :math:`L_t = \min(L_t, -c A)`, so a huge
    ratio on a negative-advantage token cannot blow up the loss. ``max_log_ratio`` (verl 20) clamps the log-ratio
    before ``exp``.

    Args:
        logprobs: ``(B, T)`` current policy log-probs.
        old_logprobs: ``(B, T)`` behaviour-policy log-probs.
        advantages: ``(B,)`` or ``(B, T)``.
        epsilon_low: lower clip range (TRL ``epsilon``, default 0.2).
        epsilon_high: upper clip range (TRL ``epsilon_high``); ``None`` = ``epsilon_low``.
        clip_ratio_c: dual-clip constant ``c > 1`` (verl ``clip_ratio_c``); ``None`` = no dual clip (TRL).
        max_log_ratio: clamp of the log-ratio before ``exp`` (verl 20); ``None`` = no clamp (TRL).

    Returns:
        ``(B, T)`` per-token loss, and metrics ``clip_low`` / ``clip_high`` (and ``clip_dual`` with
        ``clip_ratio_c``) as ``(B, T)`` booleans.

    Raises:
        ValueError: ``clip_ratio_c <= 1`` (verl asserts the same).

    """
    eh = epsilon_low if epsilon_high is None else epsilon_high
    adv = advantages.unsqueeze(-1) if advantages.ndim == 1 else advantages  # (B, 1) or (B, T)
    log_ratio = logprobs - old_logprobs
    if max_log_ratio is not None:
        log_ratio = torch.clamp(log_ratio, -max_log_ratio, max_log_ratio)
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + eh)
    loss = -torch.min(ratio * adv, clipped * adv)
    metrics = {"clip_low": (ratio < 1 - epsilon_low) & (adv < 0), "clip_high": (ratio > 1 + eh) & (adv > 0)}
    if clip_ratio_c is not None:
        if clip_ratio_c <= 1:
            raise ValueError(f"clip_ratio_c must be > 1 (dual clip), got {clip_ratio_c}")
        cap = -clip_ratio_c * adv
        dual = (adv < 0) & (loss > cap)
        loss = torch.where(adv < 0, torch.minimum(loss, cap), loss)
        metrics["clip_dual"] = dual.expand_as(loss)
    return loss, metrics


def compute_k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, clamp: float | None = None) -> torch.Tensor:
    r"""k3 estimator of :math:`KL(\pi_\theta\|\pi_{ref})` per token: :math:`e^{\delta} - \delta - 1`, :math:`\delta = \log\pi_{ref} - \log\pi_\theta`.

    Non-negative; TRL adds ``beta * k3`` to the per-token loss without clamping (``clamp=None``, the default).
    verl's ``low_var_kl`` (``clamp=`` :data:`VERL_K3_CLAMP` = 10): :math:`\delta` clamped to ``[-20, 20]`` and
    k3 to ``[-clamp, clamp]``. Shapes: ``(B, T) -> (B, T)``.

    Example:
        >>> round(compute_k3_kl(torch.tensor([0.0]), torch.tensor([1.0])).item(), 4)  # e - 1 - 1
        0.7183

    """
    delta = ref_logprobs - logprobs
    if clamp is None:
        return torch.exp(delta) - delta - 1
    delta = torch.clamp(delta, -VERL_MAX_LOG_RATIO, VERL_MAX_LOG_RATIO)
    return torch.clamp(torch.exp(delta) - delta - 1, -clamp, clamp)


LOSS_AGG_REGISTRY: dict[str, Callable[..., torch.Tensor]] = {}


def register_loss_agg(name: str):
    """Register a loss-aggregation mode under ``name``; a second, different function under it is an error."""

    def deco(fn):
        if name in LOSS_AGG_REGISTRY and LOSS_AGG_REGISTRY[name] is not fn:
            raise ValueError(f"loss aggregation {name!r} is already registered")
        LOSS_AGG_REGISTRY[name] = fn
        return fn

    return deco


def get_loss_agg(name: str) -> Callable[..., torch.Tensor]:
    """Look up a loss-aggregation mode; raises ``ValueError`` listing the valid names."""
    try:
        return LOSS_AGG_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown loss aggregation {name!r}; choose from {sorted(LOSS_AGG_REGISTRY)}") from None


@register_loss_agg("seq-mean-token-mean")
def _seq_mean_token_mean(loss: torch.Tensor, mask: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Original GRPO (TRL ``grpo``): mean over sequences of each sequence's token mean."""
    per_seq = (loss * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return per_seq.mean()


@register_loss_agg("token-mean")
def _token_mean(loss: torch.Tensor, mask: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """DAPO / TRL ``bnpo`` on one process: sum over all tokens / number of active tokens."""
    return (loss * mask).sum() / mask.sum().clamp(min=1)


@register_loss_agg("seq-mean-token-sum")
def _seq_mean_token_sum(loss: torch.Tensor, mask: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Verl's ``seq-mean-token-sum``: the mean over sequences of each sequence's token *sum* (no length norm)."""
    return (loss * mask).sum(-1).mean()


@register_loss_agg("seq-mean-token-sum-norm")
def _dr_grpo(loss: torch.Tensor, mask: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Dr. GRPO (TRL ``dr_grpo``): sum over all tokens / (B * max_completion_length), a constant."""
    T = loss.shape[-1] if max_len is None else max_len
    return (loss * mask).sum() / (loss.shape[0] * T)


def aggregate_loss(
    loss: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "token-mean",
    max_len: int | None = None,
    num_tokens: float | torch.Tensor | None = None,
    dp_size: int = 1,
):
    r"""Reduce a ``(B, T)`` per-token loss with ``mask`` ``(B, T)`` by a named mode (verl's ``agg_loss`` names).

    Modes: ``seq-mean-token-mean`` (TRL ``grpo``), ``token-mean`` (TRL ``bnpo``/``dapo`` on one process),
    ``seq-mean-token-sum`` (verl), ``seq-mean-token-sum-norm`` (TRL ``dr_grpo``; ``max_len`` is the constant,
    default ``T``).

    ``num_tokens`` (``token-mean`` only) is the *global* number of active tokens of the whole optimizer step: all
    micro-batches (gradient accumulation) of all ``dp_size`` processes. The result is then
    :math:`\sum m L / N_{tok} \cdot dp\_size` (verl's formula; TRL ``dapo`` divides by ``num_items_in_batch /
    num_processes``, the same number): summing it over the micro-batches, and averaging the gradients over the
    processes as DDP does, gives exactly the token mean of the whole batch, however it is split.

    Raises:
        ValueError: ``num_tokens`` with a mode other than ``token-mean``, or ``num_tokens <= 0``.

    """
    m = mask.to(loss.dtype)
    if num_tokens is not None:
        if mode != "token-mean":
            raise ValueError(f"num_tokens applies to the token-mean mode only, not {mode!r}")
        if float(num_tokens) <= 0:
            raise ValueError(f"num_tokens must be > 0, got {float(num_tokens)}")
        return (loss * m).sum() / num_tokens * dp_size
    return get_loss_agg(mode)(loss, m, max_len)
