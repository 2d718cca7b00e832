"""Rotary position encoding of chunk (action) embeddings (spec: "Q-function parameterisation").

Q-RAG rotates the *action* vector only, with RoPE of rotary dimension ``d/2`` applied separately to each half of
the ``d``-dim embedding (the halves are the two twin heads). Frequencies follow the "lang" RoPE of
``rotary-embedding-torch`` (theta 10000, interleaved pairs ``(x0, x1), (x2, x3), ...``). Positions are integers
(the official code truncates fractional positions with ``int``).

Because a rotation is orthogonal, ``<s, R(p) a> = <R(-p) s, a>``: rotating the *query* by ``-p`` scores every
chunk at position ``p`` against unrotated cached vectors. :mod:`q_rag.index` uses this for exact search.
"""

from __future__ import annotations

import torch

__all__ = ["rope_frequencies", "compute_rope"]


def rope_frequencies(dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Angular frequencies ``theta^(-2i/dim)`` for ``i = 0..dim/2-1``, shape ``(dim/2,)`` (float64)."""
    if dim % 2:
        raise ValueError(f"rotary dim must be even, got {dim}")
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))


def compute_rope(x: torch.Tensor, positions: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    r"""Rotate each half of ``x`` by RoPE at ``positions``.

    For each half ``h`` (dim ``m = d/2``) and pair ``i``: with angle ``\phi = p\,\omega_i``,
    ``(h_{2i}, h_{2i+1}) -> (h_{2i}\cos\phi - h_{2i+1}\sin\phi,\; h_{2i+1}\cos\phi + h_{2i}\sin\phi)``,
    ``\omega_i = \theta^{-2i/m}``.

    Args:
        x: embeddings ``(..., d)`` with ``d`` divisible by 4.
        positions: integer positions broadcastable to ``x.shape[:-1]`` (``(...,)``); negative positions rotate
            backwards (``compute_rope(compute_rope(x, p), -p) == x``).
        theta: RoPE base.

    Returns:
        Rotated embeddings ``(..., d)``, same dtype as ``x``.

    Example:
        >>> x = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
        >>> compute_rope(x, torch.tensor([0])).tolist()
        [[1.0, 0.0, 1.0, 0.0]]
    """
    d = x.shape[-1]
    if d % 4:
        raise ValueError(f"embedding dim must be divisible by 4 for half-wise RoPE, got {d}")
    m = d // 2
    freqs = rope_frequencies(m, theta).to(x.device)  # (m/2,)
    angles = positions.to(torch.float64).unsqueeze(-1) * freqs  # (..., m/2)
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    pairs = x.reshape(*x.shape[:-1], 2, m // 2, 2)  # (..., half, pair, 2)
    a, b = pairs[..., 0], pairs[..., 1]  # (..., 2, m/2)
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)  # (..., 1, m/2)
    out = torch.stack((a * cos - b * sin, b * cos + a * sin), dim=-1)  # (..., 2, m/2, 2)
    return out.reshape(x.shape)
