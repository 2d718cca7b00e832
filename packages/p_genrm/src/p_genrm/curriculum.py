"""Stage 3, hard-negative-aware curriculum: the share of hard pairs in each batch rises over training.

The paper shows the positive/hard-negative ratio rising over steps but gives neither the hardness measure nor the
schedule. Ours: hardness from PRISM's scores when present (``1 - |s+ - s-| / 10``: close scores are hard), else the
word-overlap (Jaccard) of chosen and rejected (near-duplicates are hard); the top ``hard_fraction`` are hard
negatives; batch b of B holds a share ``p_b = hn_start + (hn_end - hn_start) * b / (B - 1)`` of them.
"""

from __future__ import annotations

import random
import re

__all__ = ["compute_hardness", "label_hard_negatives", "compute_curriculum_order"]

_TOK = re.compile(r"\w+")


def compute_hardness(chosen: str, rejected: str, chosen_score: float | None = None,
                     rejected_score: float | None = None) -> float:
    """Hardness in [0, 1] of one pair.

    Example:
        >>> compute_hardness("a b", "a c")  # Jaccard {a} / {a, b, c}
        0.3333333333333333
        >>> compute_hardness("x", "y", 8.0, 6.0)  # 1 - 2 / 10
        0.8
    """
    if chosen_score is not None and rejected_score is not None:
        return max(0.0, 1.0 - abs(float(chosen_score) - float(rejected_score)) / 10.0)
    a, b = set(_TOK.findall(chosen.lower())), set(_TOK.findall(rejected.lower()))
    return len(a & b) / len(a | b) if a | b else 1.0


def label_hard_negatives(hardness: list[float], hard_fraction: float) -> list[bool]:
    """Flag the ``hard_fraction`` hardest pairs (ties broken by position)."""
    n_hard = round(hard_fraction * len(hardness))
    ranked = sorted(range(len(hardness)), key=lambda i: (-hardness[i], i))
    hard = set(ranked[:n_hard])
    return [i in hard for i in range(len(hardness))]


def compute_curriculum_order(hard: list[bool], batch_size: int, hn_start: float, hn_end: float,
                             seed: int = 0) -> list[int]:
    """Row order whose b-th batch of ``batch_size`` holds about ``p_b`` hard rows (linear ``hn_start -> hn_end``).

    Every row appears once; when one pool runs out the other fills the batch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    rng = random.Random(seed)
    pools = [[i for i, h in enumerate(hard) if not h], [i for i, h in enumerate(hard) if h]]
    for p in pools:
        rng.shuffle(p)
    n_batches = max(1, -(-len(hard) // batch_size))
    order: list[int] = []
    for b in range(n_batches):
        share = hn_start + (hn_end - hn_start) * (b / (n_batches - 1) if n_batches > 1 else 1.0)
        size = min(batch_size, len(hard) - len(order))
        want_hard = min(round(share * size), len(pools[1]))
        want_hard = max(want_hard, size - len(pools[0]))
        batch = [pools[1].pop() for _ in range(want_hard)] + [pools[0].pop() for _ in range(size - want_hard)]
        rng.shuffle(batch)
        order += batch
    return order
