"""The three-stage curriculum (warm-up, stage I with KeyChain, stage II on mined hard items) and hard-item mining.

Stage II mining (paper notes): roll out ``n`` responses per item with the current policy and drop the items whose
``n`` rollouts are all correct; the paper reports 60-70% of items dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from .reward import reward_kind, score_response

__all__ = ["Stage", "build_curriculum", "mine_hard_items"]


@dataclasses.dataclass(frozen=True)
class Stage:
    """One curriculum stage: its name, optimizer steps, data sources, and whether its data is mined first."""

    name: str
    steps: int
    sources: tuple[str, ...]
    hard_mining: bool = False


def build_curriculum(warmup_steps: int, stage1_steps: int, stage2_steps: int, has_extra: bool = False) -> list[Stage]:
    """Stages with non-zero steps: warm-up (no KeyChain), stage I (+KeyChain), stage II (stage I mix, mined).

    Example:
        >>> [s.name for s in build_curriculum(0, 168, 135)]  # the 14B recipe skips the warm-up
        ['stage1', 'stage2']
    """
    extra = ("extra",) if has_extra else ()
    stages = [
        Stage("warmup", warmup_steps, ("multihop", *extra)),
        Stage("stage1", stage1_steps, ("keychain", "multihop", *extra)),
        Stage("stage2", stage2_steps, ("keychain", "multihop", *extra), hard_mining=True),
    ]
    return [s for s in stages if s.steps > 0]


def mine_hard_items(rows: Sequence[dict[str, Any]], sampler: Any, n: int = 8,
                    credit_empty_prediction: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Drop rows whose ``n`` rollouts all score 1 under the row's reward (``data_source`` routed.

    sub-EM for QA, exact match for needles, math-verify for math); rows need ``prompt`` (messages) and
    ``answers``.

    Returns:
        The kept rows and stats ``{"scored", "kept", "dropped_fraction", "mean_accuracy"}``.
    """
    if not rows:
        raise ValueError("hard mining needs at least one row")
    responses = sampler.sample([r["prompt"] for r in rows], n)
    kept, accs = [], []
    for row, rs in zip(rows, responses):
        kind = reward_kind(row.get("data_source"))
        scores = [score_response(t, row["answers"], kind, credit_empty_prediction) for t in rs]
        accs.append(sum(scores) / n)
        if sum(scores) < n:
            kept.append(row)
    return kept, {"scored": len(rows), "kept": len(kept), "dropped_fraction": 1 - len(kept) / len(rows),
                  "mean_accuracy": sum(accs) / len(accs)}
