"""Per-user pairwise accuracy (PersonalRewardBench protocol) with a test-time scaler, under two protocols.

For each test row of each user: the history is a seeded sample of the user's *train* rows (spec: seed 42), the
chosen response is placed at position 1 or 2 by a seeded coin, and the pair is correct when the scaler's final
score of the chosen response is strictly higher. Two accuracies are reported:

* ``accuracy`` (ours): every pair counts; a pair with no parsable chain (``unscored``) or equal final scores
  (``ties``) is an error.
* ``release_accuracy`` (the released batch evaluator): unscored pairs and ties are dropped from the denominator;
  ``dropped_unscored`` / ``dropped_ties`` say how many.

Both are means of per-user accuracies (a user with every pair dropped is left out of the release mean);
``pooled_*`` pool all pairs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np

from .data import UserData, make_request, sample_history

__all__ = ["evaluate_users", "summarize_seeds", "score_outcome", "accuracy_report"]


def score_outcome(final: tuple[float, float] | None, gold: int) -> str:
    """``"correct"``, ``"wrong"``, ``"tie"`` or ``"unscored"`` for final scores and the chosen position ``gold``.

    Example:
        >>> score_outcome((5.4, 8.0), 1), score_outcome((6.0, 6.0), 0), score_outcome(None, 0)
        ('correct', 'tie', 'unscored')
    """
    if final is None:
        return "unscored"
    if final[0] == final[1]:
        return "tie"
    return "correct" if (0 if final[0] > final[1] else 1) == gold else "wrong"


def accuracy_report(outcomes: dict[str, list[str]]) -> dict[str, Any]:
    """Both protocols from per-user outcome lists (see the module docstring).

    Example:
        >>> r = accuracy_report({"a": ["correct", "tie", "unscored", "wrong"], "b": ["correct"]})
        >>> r["accuracy"], r["release_accuracy"], r["dropped_ties"], r["dropped_unscored"]
        (0.625, 0.75, 1, 1)
    """
    ours = [float(np.mean([o == "correct" for o in v])) for v in outcomes.values() if v]
    kept = {u: [o for o in v if o in ("correct", "wrong")] for u, v in outcomes.items()}
    release = [float(np.mean([o == "correct" for o in v])) for v in kept.values() if v]
    flat = [o for v in outcomes.values() for o in v]
    flat_kept = [o for v in kept.values() for o in v]
    return {
        "accuracy": float(np.mean(ours)) if ours else 0.0,
        "pooled_accuracy": float(np.mean([o == "correct" for o in flat])) if flat else 0.0,
        "release_accuracy": float(np.mean(release)) if release else None,
        "release_pooled_accuracy": float(np.mean([o == "correct" for o in flat_kept])) if flat_kept else None,
        "users": len(ours), "release_users": len(release), "pairs": len(flat),
        "dropped_unscored": flat.count("unscored"), "dropped_ties": flat.count("tie"),
    }


def evaluate_users(scaler: Any, users: dict[str, UserData], history_size: int = 6, seed: int = 42,
                   batch_size: int = 64, on_result: Callable[[dict[str, Any]], None] | None = None,
                   done: set[str] | frozenset[str] = frozenset(), previous: list[dict[str, Any]] | None = None,
                   progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Accuracy of ``scaler`` over the users' test rows under both protocols (see the module docstring).

    Streaming: ``on_result(record)`` is called for each scored pair (``id``, ``user_id``, ``gold``, ``final``,
    ``outcome``, ...) as soon as its batch is done; pairs whose ``id`` is in ``done`` are not scored again and
    their ``previous`` records (from an earlier, interrupted run) are counted instead. ``progress(k)`` is called
    with the number of pairs finished in each batch.

    Raises:
        ValueError: no user has a test row.
    """
    rng = random.Random(seed)
    items = []
    for u in users.values():
        for r in u.test:
            hist = sample_history(u.train, history_size, seed, key=f"{u.user_id}:{r.row_id}")
            first = rng.random() < 0.5
            items.append((f"{u.user_id}:{r.row_id}", u.user_id, 0 if first else 1,
                          make_request(r, hist, first, u.stated_criteria)))
    if not items:
        raise ValueError("evaluate_users: no user has test rows")
    outcomes: dict[str, list[str]] = {uid: [] for _, uid, _, _ in items}
    short = 0
    prev = {rec["id"]: rec for rec in previous or [] if rec.get("id") in done}
    todo = [it for it in items if it[0] not in prev]
    for rec in prev.values():
        outcomes.setdefault(rec["user_id"], []).append(rec["outcome"])
        short += int(rec.get("short_neighbours", False))
    for s in range(0, len(todo), batch_size):
        chunk = todo[s:s + batch_size]
        for (pid, uid, gold, _), res in zip(chunk, scaler.score([req for _, _, _, req in chunk])):
            outcome = score_outcome(res.final, gold)
            is_short = res.neighbors_requested > 0 and res.n_neighbors < res.neighbors_requested
            outcomes[uid].append(outcome)
            short += int(is_short)
            if on_result is not None:
                on_result({"id": pid, "user_id": uid, "gold": gold, "final": res.final, "outcome": outcome,
                           "chains_used": res.n_self, "neighbors_used": res.n_neighbors, "prototype": res.prototype,
                           "short_neighbours": is_short})
        if progress is not None:
            progress(len(chunk))
    return {**accuracy_report(outcomes), "short_neighbours": short}


def summarize_seeds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std (over seeds) of both accuracies, as the paper reports ``mean +- std`` over 3 runs."""
    acc = np.array([r["accuracy"] for r in runs], dtype=np.float64)
    rel = np.array([r["release_accuracy"] for r in runs if r.get("release_accuracy") is not None], dtype=np.float64)
    return {"accuracy_mean": float(acc.mean()), "accuracy_std": float(acc.std()),
            "release_accuracy_mean": float(rel.mean()) if len(rel) else None,
            "release_accuracy_std": float(rel.std()) if len(rel) else None, "seeds": len(runs)}
