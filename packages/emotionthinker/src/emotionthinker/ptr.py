r"""GRPO-PTR (Progressive-Trust-aware-Reasoning reward) formulas, as pure functions.

Per rollout :math:`i` of prompt group :math:`g` (``G`` rollouts, groups contiguous, ``B = P * G``):

.. math:: r_i = r^{fmt}_i + r^{out}_i + w_t \, \tau_g \, r^{rsn}_i

:math:`w_t` the progressive schedule (:func:`compute_ptr_weight`), :math:`\tau_g` the group trust weight
(:func:`compute_trust_weights`, Trust-GRPO's definition from SophiaVL-R1), :math:`r^{rsn}` the judge's score of the
``<think>`` trace. Gating (:func:`compute_judge_mask`): no reasoning reward in groups whose answers are all right or
all wrong; the judge is called only where its score can change an advantage.
"""

from __future__ import annotations

import math

import torch

__all__ = ["compute_ptr_weight", "compute_trust_weights", "compute_judge_mask", "compute_ptr_rewards"]


def compute_ptr_weight(step: int, schedule: str = "linear", w_max: float = 1.0, t0: int = 0, t1: int = 1,
                       anneal_alpha: float = 0.3, anneal_T: float = 500.0) -> float:
    r"""Reasoning-reward weight :math:`w_t` at optimizer step ``step`` (capped at ``w_max``).

    - ``step``: :math:`w_{max} \cdot [t \ge t_0]`.
    - ``linear``: :math:`w_{max} \cdot \mathrm{clip}((t - t_0)/(t_1 - t_0), 0, 1)`.
    - ``sigmoid``: :math:`w_{max} (\sigma(10(x - 0.5)) - \sigma(-5)) / (\sigma(5) - \sigma(-5))`,
      :math:`x = \mathrm{clip}((t-t_0)/(t_1-t_0), 0, 1)`: exactly 0 at :math:`t_0`, :math:`w_{max}` at :math:`t_1`.
    - ``constant``: :math:`w_{max}` (plain Trust-GRPO without a schedule).
    - ``anneal``: SophiaVL-R1's decreasing :math:`\min(w_{max}, \alpha e^{-t/T})`, for comparison.

    Example:
        >>> [compute_ptr_weight(t, "linear", 1.0, 10, 20) for t in (5, 10, 15, 25)]
        [0.0, 0.0, 0.5, 1.0]
        >>> compute_ptr_weight(10, "step", 0.8, 10)
        0.8
    """
    if schedule == "constant":
        return float(w_max)
    if schedule == "anneal":
        return float(min(w_max, anneal_alpha * math.exp(-step / anneal_T)))
    if schedule == "step":
        return float(w_max) if step >= t0 else 0.0
    if t1 <= t0:
        raise ValueError(f"{schedule} schedule needs t1 > t0, got t0={t0}, t1={t1}")
    x = min(max((step - t0) / (t1 - t0), 0.0), 1.0)
    if schedule == "linear":
        return float(w_max * x)
    if schedule == "sigmoid":
        sig = lambda z: 1.0 / (1.0 + math.exp(-z))  # noqa: E731
        return float(w_max * (sig(10 * (x - 0.5)) - sig(-5)) / (sig(5) - sig(-5)))
    raise ValueError(f"unknown schedule {schedule!r}; choose from step, linear, sigmoid, constant, anneal")


def compute_trust_weights(reason: torch.Tensor, answer: torch.Tensor, group_size: int,
                          correct_threshold: float = 0.5) -> torch.Tensor:
    r"""Group trust weight :math:`\tau_g` (Trust-GRPO): do correct rollouts out-reason wrong ones?

    :math:`\mu_c` / :math:`\mu_w` = mean reasoning score over the group's correct / wrong rollouts
    (answer score :math:`\ge` ``correct_threshold``). :math:`\tau = 1` if :math:`\mu_c \ge \mu_w`, else
    :math:`e^{\mu_c - \mu_w} \in (0, 1)`. A group without a correct or without a wrong rollout gets 1
    (undefined comparison; such groups are gated anyway).

    Args:
        reason: ``(B,)`` judge scores.
        answer: ``(B,)`` answer scores.
        group_size: ``G``.
        correct_threshold: answer score counted as correct.

    Returns:
        ``(P,)`` trust weights.

    Example:
        >>> r = torch.tensor([0.2, 0.4, 0.9, 0.7]); a = torch.tensor([1.0, 1.0, 0.0, 0.0])
        >>> round(compute_trust_weights(r, a, 4).item(), 4)  # mu_c=0.3, mu_w=0.8: exp(-0.5)
        0.6065
    """
    r = reason.view(-1, group_size)  # (P, G)
    correct = (answer.view(-1, group_size) >= correct_threshold).to(r.dtype)  # (P, G)
    n_c, n_w = correct.sum(1), (1 - correct).sum(1)  # (P,)
    mu_c = (r * correct).sum(1) / n_c.clamp(min=1)
    mu_w = (r * (1 - correct)).sum(1) / n_w.clamp(min=1)
    tau = torch.where(mu_c >= mu_w, torch.ones_like(mu_c), torch.exp(mu_c - mu_w))
    return torch.where((n_c > 0) & (n_w > 0), tau, torch.ones_like(tau))


def compute_judge_mask(answer: torch.Tensor, group_size: int, weight: float, gate_uniform_groups: bool = True,
                       uniform_high: float = 0.9, uniform_low: float = 0.1,
                       judge_min_answer: float = 0.0) -> torch.Tensor:
    """Where the judge is called: ``(B,)`` bool.

    Nowhere while ``weight == 0`` (the schedule has not started); with ``gate_uniform_groups``, nowhere in a group
    whose answer scores are all ``>= uniform_high`` or all ``<= uniform_low`` (Sophia (i): the reasoning reward is
    0 there); never for a rollout whose answer score is below ``judge_min_answer`` (Sophia (ii) uses 0.2).

    Example:
        >>> a = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0])
        >>> compute_judge_mask(a, 3, 0.5).tolist()  # group 1 all right -> skipped
        [False, False, False, True, True, True]
    """
    a = answer.view(-1, group_size)  # (P, G)
    mask = torch.full_like(a, weight > 0, dtype=torch.bool)
    if gate_uniform_groups:
        uniform = (a >= uniform_high).all(1) | (a <= uniform_low).all(1)  # (P,)
        mask &= ~uniform.unsqueeze(1)
    mask &= a >= judge_min_answer
    return mask.view(-1)


def compute_ptr_rewards(fmt: torch.Tensor, answer: torch.Tensor, reason: torch.Tensor, judged: torch.Tensor,
                        group_size: int, weight: float, use_trust: bool = True, correct_threshold: float = 0.5,
                        format_weight: float = 1.0, outcome_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Total reward :math:`r_i = c_f r^{fmt}_i + c_o r^{out}_i + w_t \tau_g r^{rsn}_i` (unjudged: :math:`r^{rsn}=0`).

    Args:
        fmt: ``(B,)`` format scores.
        answer: ``(B,)`` answer scores.
        reason: ``(B,)`` judge scores.
        judged: ``(B,)`` bool judge mask.
        group_size: ``G``.
        weight: :math:`w_t`.
        use_trust: multiply by :math:`\tau_g` (else 1).
        correct_threshold: answer score counted as correct for :math:`\tau`.
        format_weight: :math:`c_f`.
        outcome_weight: :math:`c_o`.

    Returns:
        ``(total (B,), tau (P,))``. :math:`\tau` is computed from the judged rollouts' scores (0 elsewhere).

    Example:
        >>> f = torch.ones(4); a = torch.tensor([1.0, 1.0, 0.0, 0.0]); r = torch.tensor([0.2, 0.4, 0.9, 0.7])
        >>> tot, tau = compute_ptr_rewards(f, a, r, torch.ones(4, dtype=torch.bool), 4, 0.5)
        >>> [round(x, 4) for x in tot.tolist()]  # 1 + a + 0.5 * exp(-0.5) * r
        [2.0607, 2.1213, 1.2729, 1.2123]
    """
    reason = torch.where(judged, reason, torch.zeros_like(reason))
    tau = compute_trust_weights(reason, answer, group_size, correct_threshold) if use_trust \
        else torch.ones(reason.numel() // group_size, dtype=reason.dtype)
    tau_b = tau.repeat_interleave(group_size)  # (B,)
    total = format_weight * fmt + outcome_weight * answer + weight * tau_b * reason
    return total, tau
