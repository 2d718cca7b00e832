r"""TI-DPO objective (paper §4.2-4.3, Eq. 9-14): weighted DPO margin, TDPO2 sequence KL, and the triplet term.

Per-token log-ratios are :math:`r_t(y) = \log\pi_\theta(y_t|x,y_{<t}) - \log\pi_{ref}(y_t|x,y_{<t})`, given as
``(B, T)`` tensors with a 0/1 ``mask`` of the response tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "compute_weighted_margin",
    "compute_sequential_kl",
    "compute_ti_dpo_loss",
    "compute_triplet_loss",
    "pack_left",
]


def compute_weighted_margin(logratios: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""Weighted sequence log-ratio (Eq. 10): :math:`m(y) = \sum_t w_t\, r_t(y)` over response tokens.

    Args:
        logratios: ``(B, T)`` per-token log-ratios r_t.
        weights: ``(B, T)`` token weights w_t (constants).
        mask: ``(B, T)`` 0/1 response mask.

    Returns:
        ``(B,)`` weighted margins.

    Example:
        >>> compute_weighted_margin(torch.tensor([[1.0, -2.0, 5.0]]), torch.tensor([[2.0, 0.5, 9.0]]),
        ...                         torch.tensor([[1, 1, 0]]))
        tensor([1.])
    """
    return (logratios * weights.detach() * mask.to(logratios.dtype)).sum(dim=1)


def compute_sequential_kl(ref_logps: torch.Tensor, logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    r"""TDPO sequential KL: :math:`K(y) = \sum_t \mathrm{KL}(\pi_{ref}(\cdot|x,y_{<t}) \,\|\, \pi_\theta(\cdot|x,y_{<t}))`.

    Unweighted, over response positions (the official release; Zeng et al. 2024, TDPO2).

    Args:
        ref_logps: ``(B, T, V)`` reference log-softmax at each position.
        logps: ``(B, T, V)`` policy log-softmax at each position.
        mask: ``(B, T)`` 0/1 response mask.

    Returns:
        ``(B,)`` summed KL.
    """
    kl = (ref_logps.exp() * (ref_logps - logps)).sum(dim=-1)  # (B, T)
    return (kl * mask.to(kl.dtype)).sum(dim=1)


def compute_ti_dpo_loss(
    chosen_margin: torch.Tensor,
    rejected_margin: torch.Tensor,
    beta: float,
    alpha_kl: float = 0.0,
    chosen_kl: torch.Tensor | None = None,
    rejected_kl: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Weighted DPO loss (Eq. 12, β inside the sigmoid as in Algorithm 1) with the optional TDPO2 KL correction.

    :math:`z = (m_w - m_l) - \alpha_{KL}(K_l - \mathrm{sg}(K_w))`, :math:`\mathcal L = -\log\sigma(\beta z)`.
    With ``alpha_kl = 0`` this is exactly Eq. 12; with mean-one uniform weights it is DPO's sigmoid loss.

    Args:
        chosen_margin: ``(B,)`` weighted margin m(y_w).
        rejected_margin: ``(B,)`` weighted margin m(y_l).
        beta: β (paper Table B13: 0.1).
        alpha_kl: TDPO KL weight α (Table B13: 0.5); 0 disables the KL term.
        chosen_kl: ``(B,)`` K(y_w), required when ``alpha_kl > 0``.
        rejected_kl: ``(B,)`` K(y_l), required when ``alpha_kl > 0``.

    Returns:
        ``(B,)`` per-pair losses and ``(B,)`` logits z.

    Example:
        >>> loss, z = compute_ti_dpo_loss(torch.tensor([2.0]), torch.tensor([-1.0]), beta=0.5, alpha_kl=0.5,
        ...                               chosen_kl=torch.tensor([1.0]), rejected_kl=torch.tensor([3.0]))
        >>> z, loss.round(decimals=4)
        (tensor([2.]), tensor([0.3133]))
    """
    z = chosen_margin - rejected_margin  # (B,)
    if alpha_kl != 0.0:
        if chosen_kl is None or rejected_kl is None:
            raise ValueError("alpha_kl > 0 needs chosen_kl and rejected_kl")
        z = z - alpha_kl * (rejected_kl - chosen_kl.detach())
    return -F.logsigmoid(beta * z), z


def pack_left(values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's masked entries to the front, keeping order, zero-padding the rest.

    Args:
        values: ``(B, T)``.
        mask: ``(B, T)`` 0/1.

    Returns:
        ``(B, L)`` packed values and ``(B, L)`` 0/1 mask, ``L = max row count`` (at least 1).

    Example:
        >>> pack_left(torch.tensor([[0.0, 7.0, 8.0], [9.0, 0.0, 0.0]]), torch.tensor([[0, 1, 1], [1, 0, 0]]))
        (tensor([[7., 8.],
                [9., 0.]]), tensor([[1, 1],
                [1, 0]]))
    """
    m = mask.bool()
    counts = m.sum(dim=1)  # (B,)
    L = max(int(counts.max()) if counts.numel() else 0, 1)
    packed_mask = torch.arange(L, device=values.device).unsqueeze(0) < counts.unsqueeze(1)  # (B, L)
    packed = values.new_zeros(values.size(0), L)
    packed = packed.masked_scatter(packed_mask, values[m])
    return packed, packed_mask.to(mask.dtype)


def compute_triplet_loss(
    anchor: torch.Tensor,
    anchor_mask: torch.Tensor,
    positive: torch.Tensor,
    positive_mask: torch.Tensor,
    negative: torch.Tensor,
    negative_mask: torch.Tensor,
    margin: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    r"""Triplet loss on per-token log-ratio vectors (Eq. 13, App. A.4 Eq. 34-38).

    :math:`D(y, y_w) = \sum_t (d_t - b_t)^2`, :math:`D(y, y_l) = \sum_t (c_t - d_t)^2`, each summed over the
    positions valid in *both* left-packed sequences (mask intersection), and
    :math:`\mathcal L_{trp} = \max(0, D(y,y_w) - D(y,y_l) + \alpha_{trp})`. Inputs are unweighted log-ratios,
    left-packed (token k of each response at column k); gradients flow through all three.

    Args:
        anchor: ``(B, La)`` anchor log-ratios d_t (an on-policy sample y).
        anchor_mask: ``(B, La)``.
        positive: ``(B, Lw)`` chosen log-ratios b_t.
        positive_mask: ``(B, Lw)``.
        negative: ``(B, Ll)`` rejected log-ratios c_t.
        negative_mask: ``(B, Ll)``.
        margin: α_trp.

    Returns:
        ``(B,)`` per-pair losses, and ``{"d_pos": (B,), "d_neg": (B,)}``.

    Example:
        >>> loss, d = compute_triplet_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[1, 1]]),
        ...     torch.tensor([[0.0, 2.0, 5.0]]), torch.tensor([[1, 1, 1]]),
        ...     torch.tensor([[3.0]]), torch.tensor([[1]]), margin=0.5)
        >>> loss, d["d_pos"], d["d_neg"]
        (tensor([0.]), tensor([1.]), tensor([4.]))
    """

    def dist(a: torch.Tensor, am: torch.Tensor, b: torch.Tensor, bm: torch.Tensor) -> torch.Tensor:
        L = max(a.size(1), b.size(1))
        a, am = F.pad(a, (0, L - a.size(1))), F.pad(am, (0, L - am.size(1)))
        b, bm = F.pad(b, (0, L - b.size(1))), F.pad(bm, (0, L - bm.size(1)))
        both = (am.bool() & bm.bool()).to(a.dtype)  # (B, L)
        return ((a - b) ** 2 * both).sum(dim=1)  # (B,)

    d_pos = dist(anchor, anchor_mask, positive, positive_mask)
    d_neg = dist(negative, negative_mask, anchor, anchor_mask)
    return torch.relu(d_pos - d_neg + margin), {"d_pos": d_pos, "d_neg": d_neg}
