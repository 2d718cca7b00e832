"""Per-user pairwise accuracy (PersonalRewardBench protocol) with a test-time scaler.

For each test row of each user: the history is a seeded sample of the user's *train* rows (spec: seed 42), the
chosen response is placed at position 1 or 2 by a seeded coin (so the "ties -> response 1" rule is not biased
towards the gold answer), and the pair is correct when the scaler prefers the chosen response. A pair with no
parsable chain at all is counted as wrong and reported in ``unscored``; ties are reported in ``ties``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from .data import UserData, make_request, sample_history

__all__ = ["evaluate_users", "summarize_seeds"]


def evaluate_users(scaler: Any, users: dict[str, UserData], history_size: int = 6, seed: int = 42,
                   batch_size: int = 64) -> dict[str, Any]:
    """Accuracy of ``scaler`` over the users' test rows: mean of per-user accuracies and pooled.

    Raises:
        ValueError: no user has a test row.
    """
    rng = random.Random(seed)
    items = []
    for u in users.values():
        for r in u.test:
            hist = sample_history(u.train, history_size, seed, key=f"{u.user_id}:{r.row_id}")
            first = rng.random() < 0.5
            items.append((u.user_id, 0 if first else 1, make_request(r, hist, first, u.stated_criteria)))
    if not items:
        raise ValueError("evaluate_users: no user has test rows")
    results = []
    for s in range(0, len(items), batch_size):
        results += scaler.score([req for _, _, req in items[s:s + batch_size]])
    per_user: dict[str, list[int]] = {}
    ties = unscored = short = 0
    for (uid, gold, _), res in zip(items, results):
        per_user.setdefault(uid, []).append(int(res.preferred == gold))
        ties += int(res.final is not None and res.final[0] == res.final[1])
        unscored += int(res.final is None)
        short += int(res.neighbors_requested > 0 and res.n_neighbors < res.neighbors_requested)
    accs = [float(np.mean(v)) for v in per_user.values()]
    return {"accuracy": float(np.mean(accs)), "pooled_accuracy": float(np.mean([c for v in per_user.values()
                                                                                 for c in v])),
            "users": len(per_user), "pairs": len(items), "ties": ties, "unscored": unscored,
            "short_neighbours": short}


def summarize_seeds(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Mean and std (over seeds) of the accuracy, as the paper reports ``mean +- std`` over 3 runs."""
    acc = np.array([r["accuracy"] for r in runs], dtype=np.float64)
    return {"accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()), "seeds": len(runs)}
