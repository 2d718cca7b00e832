"""PQN lambda-returns over an on-policy rollout (Gallici et al. 2024; spec: "Targets").

The official code's second-to-last target reuses ``V(s_T)`` instead of ``V(s_{T-1})``; this module implements the
standard recursion (checked against the n-step-return definition in the tests).
"""

from __future__ import annotations

import torch

__all__ = ["compute_lambda_returns"]


def compute_lambda_returns(
    rewards: torch.Tensor, dones: torch.Tensor, next_values: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    r"""Backward lambda-return recursion.

    .. math::
        G_t = r_t + \gamma (1 - d_t)\,[(1-\lambda) V(s_{t+1}) + \lambda G_{t+1}], \qquad
        G_{T-1} = r_{T-1} + \gamma (1 - d_{T-1}) V(s_T)

    so ``G_t = r_t`` when the episode ends at ``t``.

    Args:
        rewards: ``(T, E)`` rewards of ``T`` consecutive steps in ``E`` environments.
        dones: ``(T, E)`` 1.0 where the episode ended after step ``t`` (float or bool).
        next_values: ``(T, E)`` bootstrap values ``V(s_{t+1})`` (soft values from the target nets).
        gamma: discount.
        lam: lambda.

    Returns:
        ``(T, E)`` lambda-returns.

    Example:
        >>> r = torch.tensor([[0.0], [1.0]]); d = torch.tensor([[0.0], [1.0]]); v = torch.tensor([[0.5], [9.0]])
        >>> compute_lambda_returns(r, d, v, gamma=1.0, lam=0.5).tolist()  # G1 = 1; G0 = 0 + (0.5*0.5 + 0.5*1)
        [[0.75], [1.0]]
    """
    if not (rewards.shape == dones.shape == next_values.shape) or rewards.dim() != 2:
        raise ValueError(
            f"rewards, dones, next_values must share a (T, E) shape; got {tuple(rewards.shape)}, "
            f"{tuple(dones.shape)}, {tuple(next_values.shape)}"
        )
    masks = 1.0 - dones.to(rewards.dtype)  # (T, E)
    returns = torch.empty_like(rewards)
    nxt = next_values[-1]  # G_{T} stand-in: the last step bootstraps fully from V(s_T)
    for t in range(rewards.shape[0] - 1, -1, -1):
        if t == rewards.shape[0] - 1:
            boot = next_values[t]
        else:
            boot = (1.0 - lam) * next_values[t] + lam * nxt
        returns[t] = rewards[t] + gamma * masks[t] * boot
        nxt = returns[t]
    return returns
