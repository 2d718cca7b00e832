"""The power distribution p^alpha vs low-temperature sampling, exactly, on LMs small enough to enumerate (Sec. 3).

Low-temperature sampling renormalises each conditional, p_temp(x_t | x_<t) ∝ p(x_t | x_<t)^alpha (Eq. 3), which
weights a token by an *exponent of a sum* over its futures; the power distribution's conditional weights it by a
*sum of exponents* (Eq. 4, 7). They differ whenever a prefix has more than one future, which is why the MCMC
correction is needed. These helpers give both distributions exactly, for tests and for the paper's Example 1.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from rlcore.lm import lm_forward
from rlcore.rollout import process_logits

__all__ = ["compute_power_distribution", "enumerate_sequences", "compute_total_variation"]


def compute_power_distribution(logp: torch.Tensor, alpha: float) -> torch.Tensor:
    """Normalised power distribution over an enumerated support: pi(x) = p(x)^alpha / sum_y p(y)^alpha (Eq. 2).

    Args:
        logp: ``(S,)`` log p(x) of every sequence in the support.
        alpha: exponent (>= 1; ``math.inf`` puts uniform mass on the argmax set).

    Returns:
        ``(S,)`` probabilities summing to 1.

    Example:
        >>> # paper Example 1, alpha=2: p(ab)=.4, p(ba)=.25, p(bb)=.25 -> weights .16, .0625, .0625
        >>> compute_power_distribution(torch.tensor([0.4, 0.25, 0.25]).log(), 2.0)
        tensor([0.5614, 0.2193, 0.2193])
    """
    if math.isinf(alpha):
        best = logp == logp.max()
        return best.to(logp.dtype) / best.sum()
    return torch.softmax(alpha * logp, dim=-1)


def compute_total_variation(p: dict[Any, float], q: dict[Any, float]) -> float:
    """TV(p, q) = 1/2 sum_x |p(x) - q(x)| over the union of supports.

    Example:
        >>> compute_total_variation({"a": 0.5, "b": 0.5}, {"a": 1.0})
        0.5
    """
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


@torch.no_grad()
def enumerate_sequences(model: Any, prompt_ids: list[int], max_new_tokens: int, eos_token_id: int | None = None,
                        temperature: float = 1.0) -> dict[tuple[int, ...], tuple[float, float]]:
    """Every completion of ``prompt_ids`` (length ``max_new_tokens`` or ending at EOS) with its log-probs.

    Returns:
        ``{tokens: (log p(tokens), log p_temp(tokens))}`` where p is the raw model and p_temp the product of
        conditionals at ``temperature`` (low-temperature sampling, Eq. 3). Cost: V^T sequences; toy LMs only.
    """
    frontier: list[tuple[tuple[int, ...], float, float]] = [((), 0.0, 0.0)]
    done: dict[tuple[int, ...], tuple[float, float]] = {}
    for t in range(max_new_tokens):
        if not frontier:
            break
        ids = torch.tensor([list(prompt_ids) + list(s) for s, _, _ in frontier])  # (F, P + t)
        pos = torch.arange(ids.shape[1])[None, :].expand_as(ids)
        logits, _ = lm_forward(model, ids, torch.ones_like(ids), pos, None)
        last = logits[:, -1].float()  # (F, V)
        lp = torch.log_softmax(last, -1)
        lq = torch.log_softmax(process_logits(last, temperature), -1)
        nxt = []
        for f, (seq, a, b) in enumerate(frontier):
            for v in range(last.shape[-1]):
                item = (seq + (v,), a + float(lp[f, v]), b + float(lq[f, v]))
                if v == eos_token_id or t == max_new_tokens - 1:
                    done[item[0]] = item[1:]
                else:
                    nxt.append(item)
        frontier = nxt
    return done
