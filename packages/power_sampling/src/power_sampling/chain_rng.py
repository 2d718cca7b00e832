"""Per-chain random streams: a chain's samples depend only on (seed, prompt, chain index).

Every chain owns two counter-free streams, one for token sampling and one for the MH test (resample index and
uniform u), each a CPU ``torch.Generator`` seeded from the chain seed. Draws are buffered per chain and consumed only
by the chains that need a number at that step, so neither the batch composition, ``batch_size``, the number of
chains nor other prompts change what a chain sees (rlcore's per-row seed convention, API E2: chain j of prompt i
uses ``seeds[i] + j``; with no ``seeds`` the prompt seed is a hash of (seed, prompt token ids)).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

__all__ = ["prompt_seed", "chain_seeds", "ChainStreams"]


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 2


def prompt_seed(seed: int, prompt_ids: Sequence[int]) -> int:
    """A stable per-prompt seed from the run seed and the prompt's token ids (no dependence on its batch position).

    Example:
        >>> prompt_seed(0, [1, 2, 3]) == prompt_seed(0, [1, 2, 3]) != prompt_seed(1, [1, 2, 3])
        True
    """
    return _hash64(f"{seed}:{','.join(map(str, prompt_ids))}")


def chain_seeds(seed: int, prompts: Sequence[Sequence[int]], num_chains: int,
                seeds: Sequence[int] | None = None) -> list[int]:
    """Seed of every chain, prompt-major: ``seeds[i] + j`` (or ``prompt_seed(seed, prompt_i) + j``)."""
    if seeds is not None and len(seeds) != len(prompts):
        raise ValueError(f"seeds has {len(seeds)} entries for {len(prompts)} prompts")
    base = list(seeds) if seeds is not None else [prompt_seed(seed, p) for p in prompts]
    return [int(b) + j for b in base for j in range(num_chains)]


class ChainStreams:
    """One independent uniform stream per chain, drawn in buffered blocks.

    Args:
        seeds: one seed per chain.
        stream: a name mixed into the seed ("token", "mh", ...), so a chain's streams are independent.
        device: where :meth:`uniform` returns its values.
        block: uniforms drawn per refill of one chain.
    """

    def __init__(self, seeds: Sequence[int], stream: str, device: torch.device | str = "cpu", block: int = 64):
        self.gens = [torch.Generator().manual_seed(_hash64(f"{s}:{stream}")) for s in seeds]
        self.block, self.device = block, torch.device(device)
        self.buf = torch.empty((len(seeds), block), dtype=torch.float64)  # (N, K)
        self.ptr = torch.full((len(seeds),), block, dtype=torch.long)  # (N,) next unused column; K = empty
        self._ptr_max = block  # upper bound of ptr.max(): the refill scan is skipped while it is below block

    def uniform(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``(N,)`` float64 U[0, 1) draws; only chains in ``rows`` (bool ``(N,)``) consume one (others get 0.5)."""
        rows = torch.ones(len(self.gens), dtype=torch.bool) if rows is None else rows.to("cpu", torch.bool)
        if self._ptr_max >= self.block:  # some chain may have used up its block: refill those that draw now
            for i in torch.nonzero(rows & (self.ptr >= self.block)).flatten().tolist():
                torch.rand(self.block, generator=self.gens[i], dtype=torch.float64, out=self.buf[i])
                self.ptr[i] = 0
            self._ptr_max = int(self.ptr.max())
        vals = self.buf.gather(1, self.ptr.clamp(max=self.block - 1)[:, None]).squeeze(1)
        self.ptr += rows.long()
        self._ptr_max += 1
        return torch.where(rows, vals, 0.5).to(self.device)
