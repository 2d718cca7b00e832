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

__all__ = ["compute_averaged_advantages"]


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
