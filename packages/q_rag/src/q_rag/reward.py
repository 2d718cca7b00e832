"""Ground-truth feedback: the terminal reward for having retrieved every support fact (spec: MDP).

The reward is 0 at every step except a one-time bonus at the step where the retrieved set first contains all
support facts (by chunk *index*: identical sentences elsewhere in the document do not count).
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["compute_terminal_reward"]


def compute_terminal_reward(
    retrieved: Collection[int],
    sf_idx: Collection[int],
    already_rewarded: bool = False,
    penalize_extra_steps: bool = True,
) -> float:
    r"""Reward after the latest retrieval step.

    .. math:: r = 0.5 + 0.5\,\frac{|SF|}{|\text{retrieved}| + 10^{-5}} \quad\text{(or 1 without the penalty)}

    paid once, when ``SF`` first becomes a subset of ``retrieved``.

    Args:
        retrieved: chunk indices retrieved so far (including this step's).
        sf_idx: support-fact chunk indices.
        already_rewarded: whether the bonus was already paid earlier in the episode.
        penalize_extra_steps: shrink the bonus by ``|SF| / |retrieved|`` (used in every paper config).

    Returns:
        The scalar reward.

    Example:
        >>> round(compute_terminal_reward([4, 1, 7, 9], [1, 4]), 4)  # 0.5 + 0.5 * 2/4
        0.75
    """
    sf = set(sf_idx)
    if already_rewarded or not sf or not sf.issubset(set(retrieved)):
        return 0.0
    if not penalize_extra_steps:
        return 1.0
    return 0.5 + 0.5 * len(sf) / (len(retrieved) + 1e-5)
