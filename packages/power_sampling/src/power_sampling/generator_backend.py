"""Algorithm 1 on any ``rlcore.rollout`` Generator (``VLLMGenerator`` for speed, ``HFGenerator`` for tests).

Each MCMC move of all unfinished chains is one batched ``generate`` call on ``prompt + x_<m``; the generator's
per-token ``logprobs`` (sampling distribution) and ``raw_logprobs`` (raw model) are exactly the log q and log p
the MH ratio needs. There is no cross-call KV reuse here beyond what the backend does itself (vLLM's automatic
prefix caching recovers most of it), so prefer :class:`~power_sampling.PowerSampler` with an HF model unless
vLLM is available. All rows of a call share ``max_new_tokens`` (the longest suffix of the batch); each
completion is truncated to its own suffix length, which leaves a valid proposal sample. Chains are reproducible
given (seed, prompt, chain index) when the generator honours per-row ``seeds`` (rlcore API E2, HF and vLLM).

The vLLM path is untested in this repository (no GPU in the build environment); the algorithm is tested through
the same interface with a row-wise toy generator and with ``HFGenerator``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .chain_rng import ChainStreams, chain_seeds, prompt_seed
from .metropolis_hastings import compute_move_log_ratio
from .power_sampler import PowerSample

__all__ = ["GeneratorPowerSampler"]


def _padded(values: list[list[float]], offsets: list[int], width: int) -> torch.Tensor:
    """``(R, width)`` float64: row r holds ``values[r]`` starting at column ``offsets[r]``, zeros elsewhere."""
    out = torch.zeros((len(values), width), dtype=torch.float64)
    for r, (v, o) in enumerate(zip(values, offsets)):
        out[r, o:o + len(v)] = torch.tensor(v, dtype=torch.float64)
    return out


class GeneratorPowerSampler:
    """Power sampling through a Generator (``generate(prompt_ids=..., params=...) -> [[Completion]]``).

    Args mirror :class:`~power_sampling.PowerSampler`; ``generator`` replaces the model, and
    ``eos_token_id`` (None = never stop) is passed as ``stop_token_ids``.
    """

    def __init__(self, generator: Any, alpha: float = 4.0, block_size: int = 192, mcmc_steps: int = 10,
                 max_new_tokens: int = 3072, proposal_temperature: float | None = None, top_k: int = 50,
                 top_p: float = 1.0, eos_token_id: int | None = None, seed: int = 0, mh_ratio: str = "exact"):
        if not alpha >= 1:
            raise ValueError(f"alpha must be >= 1 (the target is p^alpha), got {alpha}")
        if block_size <= 0 or max_new_tokens <= 0 or mcmc_steps < 0:
            raise ValueError("block_size and max_new_tokens must be > 0 and mcmc_steps >= 0")
        if proposal_temperature is None:
            if math.isinf(alpha):
                raise ValueError("alpha=inf needs an explicit proposal_temperature")
            proposal_temperature = 1.0 / alpha
        self.generator, self.alpha, self.block_size, self.mcmc_steps = generator, float(alpha), block_size, mcmc_steps
        self.max_new_tokens, self.tau, self.top_k, self.top_p = max_new_tokens, proposal_temperature, top_k, top_p
        if mh_ratio not in ("exact", "official"):
            raise ValueError(f"mh_ratio must be exact or official, got {mh_ratio!r}")
        self.eos_token_id, self.seed, self.mh_ratio = eos_token_id, seed, mh_ratio

    def _propose(self, prompts, gen, rows, m, end, move):
        """Sample suffixes for ``rows`` keeping ``gen[i][:m_i]`` up to length ``end_i``; per row (tokens, log q, log p).

        Row i's tokens come from the generator's per-row seed ``hash(chain seed, move number)`` (rlcore API E2), so
        they do not depend on which other chains share the call.
        """
        from rlcore.rollout import SamplingParams

        n_max = max(end[i] - m[i] for i in rows)
        params = SamplingParams(max_new_tokens=n_max, temperature=self.tau, top_k=self.top_k, top_p=self.top_p,
                                stop_token_ids=[] if self.eos_token_id is None else [self.eos_token_id])
        seeds = [prompt_seed(self._chain_seed[i], [move[i]]) for i in rows]
        outs = self.generator.generate(prompt_ids=[prompts[i] + gen[i][: m[i]] for i in rows], params=params,
                                       seeds=seeds)
        res = {}
        for i, out in zip(rows, outs):
            c, n = out[0], end[i] - m[i]
            res[i] = (list(c.token_ids[:n]), [float(x) for x in c.logprobs[:n]], [float(x) for x in c.raw_logprobs[:n]])
        return res

    def sample(self, prompts: Sequence[str] | None = None, input_ids: Sequence[Sequence[int]] | None = None,
               num_chains: int = 1, callback: Any = None, seeds: Sequence[int] | None = None) -> list[PowerSample]:
        """Same contract as :meth:`PowerSampler.sample` (``callback(n_finished, n_chains)`` after each block).

        Chain j of prompt i is seeded ``seeds[i] + j`` (default: a hash of (seed, prompt ids) + j): index draws and
        MH uniforms come from its own stream and its proposals from per-row generator seeds.
        """
        if (prompts is None) == (input_ids is None):
            raise ValueError("pass exactly one of prompts= or input_ids=")
        if num_chains < 1:
            raise ValueError(f"num_chains must be >= 1, got {num_chains}")
        if prompts is not None:
            tok = getattr(self.generator, "tokenizer", None)
            if tok is None:
                raise ValueError("string prompts need a generator with a tokenizer; pass input_ids= instead")
            input_ids = [tok(p).input_ids for p in prompts]
        ids = [list(map(int, p)) for p in input_ids]
        rows_p = [p for p in ids for _ in range(num_chains)]
        N = len(rows_p)
        self._chain_seed = chain_seeds(self.seed, ids, num_chains, seeds)
        rng = ChainStreams(self._chain_seed, "mh")
        gen, lq, lp = [[] for _ in range(N)], [[] for _ in range(N)], [[] for _ in range(N)]
        done, tokens, proposed, accepted, move = [False] * N, [0] * N, [0] * N, [0] * N, [0] * N
        for k in range(1, -(-self.max_new_tokens // self.block_size) + 1):
            target = min(k * self.block_size, self.max_new_tokens)
            rows = [i for i in range(N) if not done[i]]
            mask = torch.zeros(N, dtype=torch.bool)
            mask[rows] = True
            for step in range(self.mcmc_steps + 1):
                if step == 0:
                    m = {i: len(gen[i]) for i in rows}
                else:
                    u = rng.uniform(mask).tolist()
                    m = {i: min(int(u[i] * len(gen[i])), len(gen[i]) - 1) for i in rows}
                end = {i: len(gen[i]) if (step > 0 and self.mh_ratio == "official") else target for i in rows}
                new = self._propose(rows_p, gen, rows, m, end, move)
                for i in rows:
                    move[i] += 1
                if step > 0:
                    width = max(max(len(gen[i]), m[i] + len(new[i][0])) for i in rows) + 1
                    log_r = compute_move_log_ratio(
                        _padded([new[i][2] for i in rows], [m[i] for i in rows], width),
                        _padded([new[i][1] for i in rows], [m[i] for i in rows], width),
                        _padded([lp[i] for i in rows], [0] * len(rows), width),
                        _padded([lq[i] for i in rows], [0] * len(rows), width),
                        torch.tensor([m[i] for i in rows]), torch.tensor([m[i] + len(new[i][0]) for i in rows]),
                        torch.tensor([len(gen[i]) for i in rows]), self.alpha, self.mh_ratio)
                    uu = rng.uniform(mask)[rows]
                    acc = (torch.log(uu) < log_r).tolist()
                for j, i in enumerate(rows):
                    tokens[i] += len(new[i][0])
                    if step > 0:
                        proposed[i] += 1
                        accepted[i] += int(acc[j])
                    if step == 0 or acc[j]:
                        gen[i], lq[i], lp[i] = (gen[i][: m[i]] + new[i][0], lq[i][: m[i]] + new[i][1],
                                                lp[i][: m[i]] + new[i][2])
            for i in rows:
                done[i] = target >= self.max_new_tokens or (bool(gen[i]) and gen[i][-1] == self.eos_token_id)
            if callback is not None:
                callback(sum(done), N)
            if all(done):
                break
        tok = getattr(self.generator, "tokenizer", None)
        return [PowerSample(i // num_chains, i % num_chains, gen[i],
                            tok.decode(gen[i], skip_special_tokens=True) if tok is not None else "", sum(lp[i]),
                            accepted[i] / proposed[i] if proposed[i] else math.nan, tokens[i],
                            "eos" if gen[i] and gen[i][-1] == self.eos_token_id else "length") for i in range(N)]
