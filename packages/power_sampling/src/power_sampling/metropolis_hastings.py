"""The Metropolis-Hastings acceptance test of power sampling (paper Sec. 4.2, Eq. 9) and its cost (Eq. 12).

The chain's state is a generated sequence x; a proposal keeps the prefix x_<m and resamples the suffix from the
proposal distribution p_prop (the base model at temperature 1/alpha). Prefix terms cancel in both the target
p^alpha and the proposal density, so only suffix sums enter the ratio.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "compute_suffix_sums",
    "compute_acceptance_log_ratio",
    "compute_acceptance",
    "compute_move_log_ratio",
    "compute_expected_proposal_tokens",
    "compute_token_multiplier",
]


def compute_suffix_sums(values: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Sum of ``values[i, start_i:end_i]`` per row: the suffix term of a cached per-token log-prob array.

    Args:
        values: ``(N, T)`` per-token log-probs (entries outside ``[start, end)`` are ignored, whatever they hold).
        start: ``(N,)`` first position of the suffix (the resample index m).
        end: ``(N,)`` one past the last position (the sequence length).

    Returns:
        ``(N,)`` float sums.

    Example:
        >>> v = torch.tensor([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])
        >>> compute_suffix_sums(v, torch.tensor([1, 0]), torch.tensor([3, 2]))
        tensor([ 6., 24.])
    """
    pos = torch.arange(values.shape[1], device=values.device)[None, :]  # (1, T)
    mask = (pos >= start[:, None]) & (pos < end[:, None])  # (N, T)
    return torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum(-1)


def compute_acceptance_log_ratio(
    logp_new: torch.Tensor,
    logp_cur: torch.Tensor,
    logq_new: torch.Tensor,
    logq_cur: torch.Tensor,
    alpha: float,
    len_new: torch.Tensor | None = None,
    len_cur: torch.Tensor | None = None,
) -> torch.Tensor:
    """Log r of the MH test for a suffix-resampling move with target p^alpha (Eq. 9, Sec. 4.2).

    log r = alpha * (sum_{t>=m} log p(x'_t) - sum_{t>=m} log p(x_t))
            + sum_{t>=m} log q(x_t) - sum_{t>=m} log q(x'_t)
            + log|x| - log|x'|

    The last term is the probability of drawing the same index m uniformly from the other state's positions
    (1/|x'| forward, 1/|x| backward). It is zero when both sequences have the same length, which is the case the
    paper writes down; it matters when one of them stopped early at EOS (the reference code instead truncates the
    current suffix to the proposal's length, issue #11). Pass ``len_new``/``len_cur`` to include it.

    With ``alpha = inf`` (the reference's ``max_swap``) the ratio is +inf when the proposed suffix is strictly
    more likely under p and -inf otherwise, so the move is a greedy hill-climb.

    Args:
        logp_new: ``(N,)`` suffix sum of raw model log-probs log p of the proposed suffix.
        logp_cur: ``(N,)`` the same for the current suffix.
        logq_new: ``(N,)`` suffix sum of proposal log-probs log q (normalised, tempered, truncated), proposed.
        logq_cur: ``(N,)`` the same for the current suffix.
        alpha: the power exponent (>= 1, or ``math.inf``).
        len_new: ``(N,)`` generated length |x'| (optional).
        len_cur: ``(N,)`` generated length |x| (optional).

    Returns:
        ``(N,)`` log acceptance ratios (accept when log u < log r, u ~ U(0, 1)).

    Example:
        >>> lr = compute_acceptance_log_ratio(torch.tensor([-1.0]), torch.tensor([-2.0]),
        ...                                   torch.tensor([-0.5]), torch.tensor([-1.5]), alpha=2.0)
        >>> lr  # 2 * (-1 + 2) + (-1.5 + 0.5) = 1.0
        tensor([1.])
    """
    if math.isinf(alpha):
        better = logp_new > logp_cur
        return torch.where(better, torch.full_like(logp_new, math.inf), torch.full_like(logp_new, -math.inf))
    log_r = alpha * (logp_new - logp_cur) + (logq_cur - logq_new)  # (N,)
    if len_new is not None and len_cur is not None:
        log_r = log_r + torch.log(len_cur.to(log_r.dtype)) - torch.log(len_new.to(log_r.dtype))
    return log_r


def compute_move_log_ratio(prop_logp: torch.Tensor, prop_logq: torch.Tensor, cur_logp: torch.Tensor,
                           cur_logq: torch.Tensor, m: torch.Tensor, len_new: torch.Tensor, len_cur: torch.Tensor,
                           alpha: float, mode: str = "exact") -> torch.Tensor:
    """Log r of one suffix-resampling move from the cached per-token arrays of the proposal and the current state.

    ``mode="exact"``: the whole current suffix [m, |x|) and the index term log|x| - log|x'|. ``mode="official"``:
    the released code's slice ``[m-c : s-c]`` (issue #11): the current suffix is cut to the proposal's length
    [m, min(|x'|, |x|)) and there is no index term, which is inexact when the proposal stopped early at EOS.

    Args:
        prop_logp: ``(N, T)`` raw log p of the proposed state (valid on [m, len_new)).
        prop_logq: ``(N, T)`` proposal log q of the proposed state.
        cur_logp: ``(N, T)`` raw log p of the current state (valid on [0, len_cur)).
        cur_logq: ``(N, T)`` proposal log q of the current state.
        m: ``(N,)`` resample index.
        len_new: ``(N,)`` proposed length |x'|.
        len_cur: ``(N,)`` current length |x|.
        alpha: the power exponent.
        mode: ``"exact"`` or ``"official"``.

    Example:
        >>> t = lambda *v: torch.tensor([list(v)])
        >>> args = (t(-0.1, 0.0, 0.0), t(-0.2, 0.0, 0.0), t(-1.0, -2.0, -3.0), t(-0.5, -0.5, -0.5),
        ...         torch.tensor([0]), torch.tensor([1]), torch.tensor([3]))
        >>> round(float(compute_move_log_ratio(*args, alpha=2.0, mode="official")), 4)  # 2*(-0.1+1) + (-0.5+0.2)
        1.5
        >>> round(float(compute_move_log_ratio(*args, alpha=2.0)), 4)  # 2*(-0.1+6) + (-1.5+0.2) + log 3
        11.5986
    """
    if mode == "official":
        cur_end, lens = torch.minimum(len_new, len_cur), {}
    elif mode == "exact":
        cur_end, lens = len_cur, {"len_new": len_new, "len_cur": len_cur.clamp(min=1)}
    else:
        raise ValueError(f"mode must be exact or official, got {mode!r}")
    return compute_acceptance_log_ratio(
        logp_new=compute_suffix_sums(prop_logp, m, len_new), logp_cur=compute_suffix_sums(cur_logp, m, cur_end),
        logq_new=compute_suffix_sums(prop_logq, m, len_new), logq_cur=compute_suffix_sums(cur_logq, m, cur_end),
        alpha=alpha, **lens)


def compute_acceptance(log_r: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Accept each move with probability min(1, exp(log r)): ``log u < log r`` with u ~ U(0, 1). ``(N,)`` -> bool."""
    u = torch.rand(log_r.shape, generator=generator, device=log_r.device, dtype=torch.float64)
    return torch.log(u) < log_r.to(torch.float64)


def compute_expected_proposal_tokens(mcmc_steps: int, max_new_tokens: int, block_size: int) -> float:
    """Expected proposal tokens of Algorithm 1 (Eq. 12): N_MCMC * sum_{k=1}^{ceil(T/B)} L_k / 2.

    L_k = min(kB, T) is the length after block k; a uniform resample index regenerates half of it on average
    (exactly (L_k + 1) / 2, which we use). Ignores early EOS. The extension tokens (T) are not included.

    Example:
        >>> compute_expected_proposal_tokens(2, 4, 2)  # 2 * ((2 + 1) / 2 + (4 + 1) / 2) = 8
        8.0
    """
    n_blocks = -(-max_new_tokens // block_size)
    return float(mcmc_steps * sum((min(k * block_size, max_new_tokens) + 1) / 2 for k in range(1, n_blocks + 1)))


def compute_token_multiplier(mcmc_steps: int, max_new_tokens: int, block_size: int) -> float:
    """The paper's approximate token multiplier over standard decoding, N_MCMC * T / (4B) (Eq. 12).

    Example:
        >>> round(compute_token_multiplier(10, 679, 192), 2)  # the paper's 8.84x for MATH500
        8.84
    """
    return mcmc_steps * max_new_tokens / (4 * block_size)
