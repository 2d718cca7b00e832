r"""Advantage averaging (paper §RQ1): normalise each reward within its group, then average the z-scores.

.. math::
    A_{k,i} = \frac{r_{k,i} - \mathrm{mean}_j r_{k,j}}{\mathrm{std}_j r_{k,j} + \epsilon}, \qquad
    A_i = \frac{1}{K} \sum_k A_{k,i}

Raw rewards are never summed, so rewards on different scales (a length ratio in [0, 1], an unbounded RM logit, a
format score in [-1, 1]) weigh the same. The formula lives in :func:`rlcore.pg.compute_per_reward_normalized_advantages`;
this module adds the trainer-side rules (unscorable rows, process slicing) used by
:class:`longwriter_zero.trainer.LongWriterGRPOTrainer`.

**How it differs from TRL's** ``multi_objective_aggregation="normalize_then_sum"`` (trl 1.16): TRL also z-scores
each reward per group, but then takes the weighted *sum* and normalises that sum a second time over the *whole
batch* (``(s - mean_B s) / (std_B s + 1e-4)``). Ours stops after the weighted mean: the advantage scale is that of
one z-score and does not change from batch to batch with how correlated the rewards happen to be, and a group's
advantages never depend on other groups in the batch.
"""

from __future__ import annotations

import torch
from rlcore.pg import compute_per_reward_normalized_advantages

__all__ = ["compute_averaged_advantages", "compute_gated_advantages"]


def compute_averaged_advantages(
    rewards_per_func: torch.Tensor, group_size: int, weights: torch.Tensor | None = None, eps: float = 1e-4
) -> torch.Tensor:
    """LongWriter-Zero's advantage for a ``(B, K)`` reward matrix, groups of ``group_size`` contiguous rows.

    A ``NaN`` entry (a reward returned ``None``, e.g. the length reward of a ``[0, 0]`` query) is left out of that
    reward's group statistics and contributes 0 to the average (the average still divides by the total weight).
    A row where *every* reward is ``NaN`` is unscorable and gets advantage 0.

    Args:
        rewards_per_func: ``(B, K)``.
        group_size: ``G`` (``B % G == 0``).
        weights: ``(K,)`` non-negative, not all 0 (default all 1, the paper's plain average).
        eps: added to each group std (TRL's 1e-4).

    Returns:
        ``(B,)`` advantages.

    Example:
        >>> r = torch.tensor([[0.0, 10.0], [1.0, 30.0]])  # z-scores: (-0.707, -0.707), (0.707, 0.707)
        >>> [round(a, 3) for a in compute_averaged_advantages(r, 2).tolist()]
        [-0.707, 0.707]
    """
    if rewards_per_func.ndim != 2:
        raise ValueError(f"rewards_per_func must be (B, K), got shape {tuple(rewards_per_func.shape)}")
    K = rewards_per_func.shape[1]
    w = torch.ones(K) if weights is None else weights.detach().float().cpu()
    if w.shape != (K,) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be {K} non-negative values, not all 0; got {w.tolist()}")
    r = rewards_per_func.detach().float().cpu()
    adv = compute_per_reward_normalized_advantages(r, group_size, weights=w, eps=eps)  # (B,)
    adv[torch.isnan(r).all(dim=1)] = 0.0
    return adv.to(rewards_per_func.device)


def compute_gated_advantages(
    rewards_per_func: torch.Tensor, group_size: int, compliant: torch.Tensor, weights: torch.Tensor | None = None,
    margin: float = 1.0, eps: float = 1e-4,
) -> torch.Tensor:
    r"""Verifier-gated advantages (RLMR-style; beyond the paper).

    Averaged advantages, then every violator of a group that has at least one compliant member is pushed below
    all of them.

    .. math::
        A_i = \min\big(0, \min_{j \in g,\ c_j} \bar A_j\big) - m \quad \text{if } \lnot c_i, \qquad
        A_i = \bar A_i \text{ otherwise}

    with :math:`\bar A` from :func:`compute_averaged_advantages`, :math:`c` the verifier's verdicts and :math:`m`
    the ``margin``: a violator's advantage is negative and below every compliant member's, whatever its RM score.
    A group with no compliant member (or no violator) keeps :math:`\bar A`.

    Args:
        rewards_per_func: ``(B, K)`` rewards (give the verifier's own column weight 0).
        group_size: ``G``.
        compliant: ``(B,)`` bool, the verifier's verdicts.
        weights: ``(K,)`` as in :func:`compute_averaged_advantages`.
        margin: how far below the lowest compliant advantage (and below 0) violators land.
        eps: group std epsilon.

    Returns:
        ``(B,)`` advantages.

    Example:
        >>> r = torch.tensor([[0.0], [1.0], [2.0], [3.0]])  # one group of 4; the best RM score violates
        >>> c = torch.tensor([True, True, True, False])
        >>> [round(a, 3) for a in compute_gated_advantages(r, 4, c, eps=0.0).tolist()]
        [-1.162, -0.387, 0.387, -2.162]
    """
    base = compute_averaged_advantages(rewards_per_func, group_size, weights, eps)  # (B,)
    ok = compliant.to(torch.bool).reshape(-1, group_size).cpu()  # (B/G, G)
    adv = base.detach().float().cpu().reshape(-1, group_size).clone()  # (B/G, G)
    if ok.shape[0] * group_size != base.shape[0]:
        raise ValueError(f"compliant must have {base.shape[0]} entries, got {compliant.numel()}")
    floor = adv.masked_fill(~ok, float("inf")).min(dim=1, keepdim=True).values.clamp(max=0.0) - margin  # (B/G, 1)
    mixed = ok.any(dim=1, keepdim=True) & (~ok).any(dim=1, keepdim=True)  # (B/G, 1)
    adv = torch.where(mixed & ~ok, floor.expand_as(adv), adv)
    return adv.reshape(-1).to(rewards_per_func.device)
