"""Soft Q-learning pieces: twin-head Q-values, the top-k soft value, top-k Boltzmann acting, the critic loss.

Spec: "Q-function parameterisation", "Acting", "Soft value", "Loss".
"""

from __future__ import annotations

import torch

__all__ = ["compute_twin_q", "compute_soft_value", "sample_top_k_action", "compute_q_loss"]


def compute_twin_q(state_emb: torch.Tensor, action_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Twin heads by splitting dimensions: ``Q1 = <s[:d/2], a[:d/2]>``, ``Q2 = <s[d/2:], a[d/2:]>``.

    Args:
        state_emb: ``(B, d)`` or ``(d,)`` state embeddings.
        action_emb: ``(B, d)`` (paired) rotated action embeddings, or ``(B, N, d)`` with ``state_emb (B, d)`` to
            score ``N`` candidates per state.

    Returns:
        ``(q1, q2)`` each ``(B,)`` (paired) or ``(B, N)``; ``Q = q1 + q2`` is used for acting.

    Example:
        >>> q1, q2 = compute_twin_q(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
        >>> q1.tolist(), q2.tolist()  # 1+2, 3+0
        ([3.0], [3.0])
    """
    h = state_emb.shape[-1] // 2
    if action_emb.dim() == state_emb.dim() + 1:
        state_emb = state_emb.unsqueeze(-2)  # (B, 1, d)
    q1 = (state_emb[..., :h] * action_emb[..., :h]).sum(-1)
    q2 = (state_emb[..., h:] * action_emb[..., h:]).sum(-1)
    return q1, q2


def _top_k_lse(q: torch.Tensor, mask: torch.Tensor, alpha: float, top_k: int) -> torch.Tensor:
    q = q.masked_fill(~mask, float("-inf"))  # (B, N)
    k = min(top_k, q.shape[-1])
    top = torch.topk(q, k, dim=-1).values / alpha  # (B, k)
    lse = torch.logsumexp(top, dim=-1)  # (B,)
    return torch.where(torch.isfinite(lse), alpha * lse, torch.zeros_like(lse))


def compute_soft_value(
    q1: torch.Tensor, q2: torch.Tensor, mask: torch.Tensor, alpha: float, top_k: int = 5
) -> torch.Tensor:
    r"""Soft state value over the top-k available actions, per twin head.

    .. math:: V(s) = \alpha \log\sum_{j\in\text{top}_k(Q_1)} e^{Q_1(s,a_j)/\alpha}
                   + \alpha \log\sum_{j\in\text{top}_k(Q_2)} e^{Q_2(s,a_j)/\alpha}

    (top-k chosen separately per head among available actions; a state with none available has value 0).

    Args:
        q1: ``(B, N)`` target-network head-1 Q-values of every candidate.
        q2: ``(B, N)`` head-2 Q-values.
        mask: ``(B, N)`` bool, True where the action is available.
        alpha: temperature.
        top_k: actions kept (5).

    Returns:
        ``(B,)`` soft values.

    Example:
        >>> q = torch.tensor([[0.0, 0.0, 5.0]]); m = torch.tensor([[True, True, False]])
        >>> round(float(compute_soft_value(q, q, m, alpha=1.0, top_k=5)[0]), 4)  # 2 * log(e^0 + e^0)
        1.3863
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    return _top_k_lse(q1, mask, alpha, top_k) + _top_k_lse(q2, mask, alpha, top_k)


def sample_top_k_action(
    q: torch.Tensor, mask: torch.Tensor, alpha: float, top_k: int = 5, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""Sample ``a ~ softmax((Q - max Q) / alpha)`` restricted to the top-k available actions.

    Args:
        q: ``(B, N)`` Q-values (``Q1 + Q2``) of the acting network.
        mask: ``(B, N)`` bool availability.
        alpha: temperature (``alpha_t``).
        top_k: candidates kept (5).
        generator: torch RNG.

    Returns:
        ``(B,)`` int64 chosen candidate indices.
    """
    if not bool(mask.any(-1).all()):
        raise ValueError("every state needs at least one available action")
    q = q.masked_fill(~mask, float("-inf"))  # (B, N)
    k = min(top_k, q.shape[-1])
    vals, idx = torch.topk(q, k, dim=-1)  # (B, k)
    logits = (vals - vals[:, :1]) / max(alpha, 1e-12)
    probs = torch.softmax(logits, dim=-1).nan_to_num(0.0)  # -inf rows of unavailable entries -> 0
    pick = torch.multinomial(probs, 1, generator=generator).squeeze(-1)  # (B,)
    return idx.gather(-1, pick[:, None]).squeeze(-1)


def compute_q_loss(q1: torch.Tensor, q2: torch.Tensor, returns: torch.Tensor) -> torch.Tensor:
    r"""Critic loss ``L = 0.5 MSE(2 Q1, G) + 0.5 MSE(2 Q2, G)`` (each head regresses half of the target).

    Args:
        q1: ``(B,)`` head-1 Q-values of the taken actions.
        q2: ``(B,)`` head-2 Q-values.
        returns: ``(B,)`` lambda-returns ``G``.

    Example:
        >>> compute_q_loss(torch.tensor([0.5]), torch.tensor([0.0]), torch.tensor([1.0])).item()  # 0.5*0 + 0.5*1
        0.5
    """
    mse = torch.nn.functional.mse_loss
    return 0.5 * mse(2 * q1, returns) + 0.5 * mse(2 * q2, returns)
