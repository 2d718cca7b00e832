"""Position processors: the positions fed to RoPE for every chunk, given what was retrieved (spec: positions).

- ``relative`` (BabiLong default, official ``RelativePositionProcessor``): the sorted retrieved indices cut the
  document into segments and **each retrieved index opens the next segment**: with cuts ``j_1 < ... < j_k``,
  segment 0 is ``[0, j_1)``, segment ``m`` is ``[j_m, j_{m+1})`` and the last is ``[j_k, N)``; a chunk of segment
  ``m`` gets ``linspace(0, max_value, len(segment)) + step_size * m`` (``step_size=20``, ``max_value =
  int(0.9*step_size) = 18``), stored as float32 and truncated with ``int`` at lookup. An empty segment (a cut at
  0, or two adjacent cuts) still advances the offset by ``step_size``. This tells the Q-function whether a
  candidate lies before, between or after the facts already retrieved ("where was X before Y").
  Example (N=10, retrieved {2, 6}): ``[0, 18, 20, 26, 32, 38, 40, 46, 52, 58]``.
- ``absolute``: the chunk index.
- ``none``: no rotation (HotpotQA, MuSiQue, NIAH).

Retrieved chunks are unavailable actions (masked by the caller) whatever position they get.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "POSITION_PROCESSORS",
    "register_position_processor",
    "get_position_processor",
    "compute_relative_positions",
    "compute_absolute_positions",
    "position_runs",
]

PositionFn = Callable[[int, Sequence[int]], "np.ndarray | None"]
POSITION_PROCESSORS: dict[str, PositionFn] = {}


def register_position_processor(name: str) -> Callable[[PositionFn], PositionFn]:
    """Register ``fn(n_chunks, retrieved) -> positions (N,) int64 or None`` under ``name``."""

    def deco(fn: PositionFn) -> PositionFn:
        if name in POSITION_PROCESSORS and POSITION_PROCESSORS[name] is not fn:
            raise ValueError(f"position processor {name!r} is already registered")
        POSITION_PROCESSORS[name] = fn
        return fn

    return deco


def get_position_processor(name: str) -> PositionFn:
    """The processor registered as ``name``; raises ``ValueError`` listing the valid names."""
    if name not in POSITION_PROCESSORS:
        raise ValueError(f"unknown position processor {name!r}; valid: {sorted(POSITION_PROCESSORS)}")
    return POSITION_PROCESSORS[name]


@register_position_processor("relative")
def compute_relative_positions(
    n_chunks: int, retrieved: Sequence[int], step_size: int = 20, max_value: int | None = None
) -> np.ndarray:
    """Relative positions of all chunks given the retrieved ones (the official segment rule).

    ``pos_i = int(float32(linspace(0, max_value, L_m)[rank of i in segment m] + step_size * m))`` where the sorted
    retrieved indices ``j_1 < ... < j_k`` bound the segments ``[0, j_1), [j_1, j_2), ..., [j_k, N)`` (a retrieved
    index opens the next segment) and ``L_m`` is the segment's length.

    Args:
        n_chunks: document length ``N`` in chunks.
        retrieved: retrieved chunk indices (any order; duplicates ignored).
        step_size: offset between segments (20).
        max_value: largest within-segment position; default ``int(0.9 * step_size)`` = 18.

    Returns:
        ``(N,)`` int64 positions.

    Example:
        >>> compute_relative_positions(10, [6, 2]).tolist()
        [0, 18, 20, 26, 32, 38, 40, 46, 52, 58]
    """
    if max_value is None:
        max_value = int(0.9 * step_size)
    cuts = sorted(set(int(r) for r in retrieved))
    if cuts and (cuts[0] < 0 or cuts[-1] >= n_chunks):
        raise ValueError(f"retrieved index out of range [0, {n_chunks}): {cuts}")
    pos = np.zeros(n_chunks, dtype=np.float32)  # the official array is float32; int() truncates at lookup
    start, offset = 0, 0
    for end in [*cuts, n_chunks]:
        if end > start:
            pos[start:end] = np.linspace(0, max_value, end - start) + offset
            start = end
        offset += step_size
    return pos.astype(np.int64)


@register_position_processor("absolute")
def compute_absolute_positions(n_chunks: int, retrieved: Sequence[int]) -> np.ndarray:
    """Absolute positions: ``pos_j = j``, shape ``(N,)``."""
    return np.arange(n_chunks, dtype=np.int64)


@register_position_processor("none")
def _no_positions(n_chunks: int, retrieved: Sequence[int]) -> None:
    """No rotation (returns None)."""
    return None


def position_runs(positions: np.ndarray, available: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs ``(start, end, pos)`` of consecutive *available* chunks sharing one position.

    With ``relative`` positions there are at most ``(max_value + 1) * (k + 1)`` runs after ``k`` steps however
    long the document, which is what makes range-restricted exact search cheap.

    Args:
        positions: ``(N,)`` int positions.
        available: ``(N,)`` bool mask of chunks that may still be retrieved.
    """
    n = len(positions)
    key = np.where(available, positions, np.iinfo(np.int64).min)
    change = np.flatnonzero(np.diff(key) != 0) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [n]))
    return [(int(s), int(e), int(positions[s])) for s, e in zip(starts, ends, strict=True) if available[s]]
