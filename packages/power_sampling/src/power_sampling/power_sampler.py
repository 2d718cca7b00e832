"""Power sampling: blockwise autoregressive MCMC towards p^alpha (paper Algorithm 1), batched over chains.

For block k = 1..ceil(T/B): extend the chain by B tokens from the proposal (temperature 1/alpha), then run
N_MCMC Metropolis-Hastings steps, each resampling the suffix after a uniform index over *all* generated
positions; after the block, a chain whose sequence ended with EOS is done. Per-token log q (proposal) and log p
(raw model) are cached for each chain's current state, so the acceptance ratio needs no rescoring pass.

All chains (prompts x num_chains) share one forward pass per decode step, each chain's kept prefix served from
the KV cache (:mod:`power_sampling.kv_cache`). Chains are independent and run on their own schedules
(continuous batching of MCMC moves): a chain whose proposal ends starts its next move at the next step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from rlcore.rollout import decode_context, encode_prompts, model_device, process_logits

from .chain_rng import ChainStreams, chain_seeds
from .kv_cache import make_chain_store
from .metropolis_hastings import compute_move_log_ratio, compute_suffix_sums

__all__ = ["PowerSampler", "PowerSample", "MH_RATIOS", "METHODS"]

MH_RATIOS = ("exact", "official")
METHODS = ("mh", "smc")


@dataclasses.dataclass
class PowerSample:
    """One chain's final state."""

    prompt_index: int
    chain_index: int
    token_ids: list[int]  # generated tokens (ends with EOS when finish_reason == "eos")
    text: str  # decoded generated text ("" without a tokenizer), special tokens skipped
    logprob: float  # log p(generated | prompt) under the raw base model
    acceptance_rate: float  # accepted / proposed MH moves (nan when none were proposed)
    tokens_generated: int  # every token sampled for this chain: extensions + all proposals
    finish_reason: str  # "eos" or "length"
    particle_weights: list[float] | None = None  # SMC: the chain's K normalised particle weights at the end
    resample_count: int = 0  # SMC: resampling events of the chain


def sample_from_logits(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_k: int = 0,
                       top_p: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample one token per row from rlcore's processed distribution by inverse CDF at ``u`` (per-row uniforms).

    Returns ``(token, log q(token), log p(token))``: q the processed (tempered, truncated) distribution, p the raw
    model. Zero-probability tokens (outside top-k/top-p) are never drawn.
    """
    logits = logits.float()  # (N, V)
    logq_all = torch.log_softmax(process_logits(logits, temperature, top_k, top_p), -1)  # (N, V)
    cdf = logq_all.exp().cumsum(-1)  # (N, V)
    v = (u.to(cdf.dtype) * cdf[:, -1])[:, None]
    tok = torch.searchsorted(cdf, v, right=True).squeeze(1).clamp(max=logits.shape[-1] - 1)  # (N,)
    lq = logq_all.gather(-1, tok[:, None]).squeeze(-1)
    # rlcore's selective_log_softmax for fp32 rows (picked logit - logsumexp), written out: one batched
    # logsumexp over (N, V) instead of its per-row loop and stack (logits is fp32 here, so the same numbers)
    lp = logits.gather(-1, tok[:, None]).squeeze(-1) - torch.logsumexp(logits, -1)
    return tok, lq, lp


def default_eos(model: Any, tokenizer: Any) -> int | None:
    for src in (tokenizer, getattr(model, "generation_config", None), getattr(model, "config", None)):
        eos = getattr(src, "eos_token_id", None)
        if isinstance(eos, list | tuple):
            eos = eos[0] if eos else None
        if isinstance(eos, int):
            return eos
    return None


_UNSET: Any = object()


class PowerSampler:
    """Sample from p^alpha with the blockwise MH sampler of "Reasoning with Sampling" (Karan & Du, ICLR 2026).

    Args:
        model: an HF causal LM or any rlcore LM (``lm(input_ids, attention_mask, ...) -> .logits``).
        tokenizer: needed for string prompts and ``text``; optional with ``input_ids``.
        alpha: power exponent (>= 1); ``math.inf`` accepts a proposal iff its suffix is more likely (max-swap).
        block_size: B, tokens per block (paper: 192). The last block is shorter when B does not divide T.
        mcmc_steps: N_MCMC per block (paper: 10); 0 gives plain low-temperature sampling.
        max_new_tokens: T (paper: 3072).
        proposal_temperature: defaults to 1/alpha (must be given for alpha = inf).
        top_k, top_p: proposal truncation (0 / 1.0 = none); default top_k=50 as in the official code, which inherits
            HF ``generate``'s default. The proposal log q is that of the truncated distribution actually sampled, so
            MH stays exact on its support.
        mh_ratio: ``"exact"`` (default) sums the *whole* current suffix and adds the index term log|x| - log|x'|;
            ``"official"`` reproduces the released code (issue #11): an MH proposal regenerates at most up to the
            current length and the current suffix is truncated to the proposal's length, with no length term.
        method: ``"mh"`` (the paper's blockwise Metropolis-Hastings) or ``"smc"`` (Sequential Monte Carlo with
            ``num_particles`` particles per chain, :mod:`power_sampling.smc`; block_size / mcmc_steps unused).
        num_particles: SMC particles per chain.
        ess_threshold: SMC resamples a chain when its ESS < ess_threshold * num_particles.
        bridge_tokens: SMC exponent bridging: alpha anneals 1 -> alpha over this many first tokens (0 = off).
        eos_token_id: stop token; default from the tokenizer / model config; ``None`` disables stopping.
        seed: seeds the index draws, the uniform u of each test and token sampling.
        use_kv_cache: ``None`` = use it when the model takes one.
    """

    def __init__(self, model: Any, tokenizer: Any = None, alpha: float = 4.0, block_size: int = 192,
                 mcmc_steps: int = 10, max_new_tokens: int = 3072, proposal_temperature: float | None = None,
                 top_k: int = 50, top_p: float = 1.0, eos_token_id: int | None = _UNSET, seed: int = 0,
                 use_kv_cache: bool | None = None, mh_ratio: str = "exact", method: str = "mh",
                 num_particles: int = 8, ess_threshold: float = 0.5, bridge_tokens: int = 0):
        if not alpha >= 1:
            raise ValueError(f"alpha must be >= 1 (the target is p^alpha), got {alpha}")
        if block_size <= 0:
            raise ValueError(f"block_size must be > 0, got {block_size}")
        if mcmc_steps < 0:
            raise ValueError(f"mcmc_steps must be >= 0, got {mcmc_steps}")
        if max_new_tokens <= 0:
            raise ValueError(f"max_new_tokens must be > 0, got {max_new_tokens}")
        if proposal_temperature is None:
            if math.isinf(alpha):
                raise ValueError("alpha=inf needs an explicit proposal_temperature (the reference max_swap used 0.25)")
            proposal_temperature = 1.0 / alpha
        if not proposal_temperature > 0:
            raise ValueError(f"proposal_temperature must be > 0, got {proposal_temperature}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if num_particles < 1:
            raise ValueError(f"num_particles must be >= 1, got {num_particles}")
        if not 0 <= ess_threshold <= 1:
            raise ValueError(f"ess_threshold must be in [0, 1], got {ess_threshold}")
        if bridge_tokens < 0:
            raise ValueError(f"bridge_tokens must be >= 0, got {bridge_tokens}")
        if method == "smc" and math.isinf(alpha):
            raise ValueError("method='smc' needs a finite alpha")
        if mh_ratio not in MH_RATIOS:
            raise ValueError(f"mh_ratio must be one of {MH_RATIOS}, got {mh_ratio!r}")
        if top_k < 0 or not 0 < top_p <= 1:
            raise ValueError(f"top_k must be >= 0 and top_p in (0, 1], got top_k={top_k}, top_p={top_p}")
        self.model, self.tokenizer = model, tokenizer
        self.alpha, self.block_size, self.mcmc_steps = float(alpha), block_size, mcmc_steps
        self.max_new_tokens, self.proposal_temperature = max_new_tokens, float(proposal_temperature)
        self.top_k, self.top_p, self.seed, self.use_kv_cache = top_k, top_p, seed, use_kv_cache
        self.mh_ratio, self.method = mh_ratio, method
        self.num_particles, self.ess_threshold, self.bridge_tokens = num_particles, float(ess_threshold), bridge_tokens
        self.eos_token_id = default_eos(model, tokenizer) if eos_token_id is _UNSET else eos_token_id
        self.device = model_device(model)
        self.stats: dict[str, float] = {}

    # ------------------------------------------------------------------ inputs
    def _encode(self, prompts: Sequence[str] | None, input_ids: Sequence[Sequence[int]] | None) -> list[list[int]]:
        ids = encode_prompts(self.tokenizer, prompts, input_ids, ids_arg="input_ids")
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        for i, p in enumerate(ids):
            if isinstance(limit, int) and len(p) + self.max_new_tokens > limit:
                raise ValueError(f"prompt {i} has {len(p)} tokens; with max_new_tokens={self.max_new_tokens} it "
                                 f"exceeds the model's context of {limit} tokens")
        return ids

    # ------------------------------------------------------------------ public
    def sample(self, prompts: Sequence[str] | None = None, input_ids: Sequence[Sequence[int]] | None = None,
               num_chains: int = 1, callback: Callable[[int, int], None] | None = None,
               seeds: Sequence[int] | None = None) -> list[PowerSample]:
        """Run ``num_chains`` independent chains per prompt; returns them prompt-major (prompt 0's chains first).

        Chain j of prompt i draws all its randomness (tokens, resample indices, MH uniforms) from its own streams
        seeded ``seeds[i] + j`` (default: a hash of (``seed``, prompt ids) + j), so its sample depends only on
        (seed, prompt, j): not on the other prompts in the batch, the batch size or the number of chains.

        Each chain runs Algorithm 1 on its own schedule: a chain whose proposal ends starts its next move (next MH
        step, or the next block's extension) at the following decode step, so no chain waits for the longest
        proposal of the batch. ``callback(n_finished, n_chains)`` is called whenever chains finish (progress).
        """
        with decode_context(self.model):  # inference mode; nothing it creates is returned
            return self._sample(prompts, input_ids, num_chains, callback, seeds)

    def _sample(self, prompts, input_ids, num_chains, callback, seeds) -> list[PowerSample]:
        if num_chains < 1:
            raise ValueError(f"num_chains must be >= 1, got {num_chains}")
        ids = self._encode(prompts, input_ids)
        if self.method == "smc":
            from .smc import run_smc

            return run_smc(self, ids, num_chains, seeds, callback)
        rows = [p for p in ids for _ in range(num_chains)]
        N, T, dev = len(rows), self.max_new_tokens, self.device
        cs = chain_seeds(self.seed, ids, num_chains, seeds)
        self._rng_tok, self._rng_mh = ChainStreams(cs, "token", dev), ChainStreams(cs, "mh", dev)
        pad = self.eos_token_id if self.eos_token_id is not None else 0
        self._store = make_chain_store(self.model, rows, dev, pad, self.use_kv_cache, T)
        self._prompt_last = torch.as_tensor([p[-1] for p in rows], device=dev)
        self._prompt_len = torch.as_tensor([len(p) for p in rows], device=dev)
        # current states and their cached per-token log-probs; column T is scratch for masked-out writes
        self.gen = torch.full((N, T + 1), pad, dtype=torch.long, device=dev)  # (N, T+1)
        self.logq = torch.zeros((N, T + 1), device=dev)  # (N, T+1) proposal log q
        self.logp = torch.zeros((N, T + 1), device=dev)  # (N, T+1) raw model log p
        self.length = torch.zeros(N, dtype=torch.long, device=dev)  # (N,) generated length |x|
        # the proposal in flight, per chain, aligned with generated positions
        self._prop = (self.gen.clone(), self.logq.clone(), self.logp.clone())
        self._m = torch.zeros(N, dtype=torch.long, device=dev)  # (N,) resample index of the move in flight
        self._n_new = torch.zeros(N, dtype=torch.long, device=dev)  # (N,) tokens proposed so far in this move
        self._target = torch.full((N,), min(self.block_size, T), dtype=torch.long, device=dev)  # (N,) L_k
        self._end = self._target.clone()  # (N,) where the move in flight stops (L_k, or |x| for mh_ratio=official)
        self._is_ext = torch.ones(N, dtype=torch.bool, device=dev)  # (N,) move in flight is a block extension
        self._moves_left = torch.full((N,), self.mcmc_steps, dtype=torch.long, device=dev)  # (N,) MH steps left
        self._done = torch.zeros(N, dtype=torch.bool, device=dev)
        self._tokens = torch.zeros(N, dtype=torch.long, device=dev)
        self._proposed = torch.zeros(N, dtype=torch.long, device=dev)
        self._accepted = torch.zeros(N, dtype=torch.long, device=dev)
        self._store.begin(~self._done, self._prompt_len.clone(), self._prompt_last)
        steps = 0
        while not bool(self._done.all()):
            self._decode_step()
            steps += 1
            if callback is not None:
                callback(int(self._done.sum()), N)
        self.stats = {"proposed": int(self._proposed.sum()), "accepted": int(self._accepted.sum()),
                      "tokens_generated": int(self._tokens.sum()), "decode_steps": steps}
        return self._collect(len(ids), num_chains, self._proposed, self._accepted)

    # ------------------------------------------------------------------ internals
    def _decode_step(self) -> None:
        """One batched forward: every unfinished chain samples one token of the move it is running."""
        running = ~self._done
        logits = self._store.next_logits(running)
        logits = torch.where(running[:, None], logits, torch.zeros((), dtype=logits.dtype, device=self.device))
        tok, lq, lp = self._sample_token(logits, self._rng_tok.uniform(running))
        pos = self._m + self._n_new  # (N,) generated position of this token
        at = torch.where(running, pos, self.gen.shape[1] - 1)[:, None]  # (N, 1); column T is scratch
        for arr, val in zip(self._prop, (tok, lq, lp)):
            arr.scatter_(1, at, val[:, None])
        self._store.push(tok, running)
        step = running.long()
        self._n_new += step
        self._tokens += step
        fin = running & (pos >= self._end - 1)
        if self.eos_token_id is not None:
            fin = fin | (running & (tok == self.eos_token_id))
        if bool(fin.any()):
            self._finish_moves(fin)

    def _finish_moves(self, fin: torch.Tensor) -> None:
        """Accept/reject the moves that just ended, then start each chain's next move (or mark it done)."""
        m, new_len = self._m, self._m + self._n_new
        mh = fin & ~self._is_ext
        prop_tok, prop_lq, prop_lp = self._prop
        accept = fin
        if bool(mh.any()):  # only block extensions ended: accepted without a test (and no uniform is drawn)
            log_r = compute_move_log_ratio(prop_lp, prop_lq, self.logp, self.logq, m, new_len, self.length,
                                           self.alpha, self.mh_ratio)
            u = self._rng_mh.uniform(mh)
            accept = fin & (self._is_ext | (torch.log(u) < log_r.to(torch.float64)))
        self._store.end(fin, accept)
        col = torch.arange(self.gen.shape[1], device=self.device)[None, :]
        write = accept[:, None] & (col >= m[:, None]) & (col < new_len[:, None])  # (N, T+1)
        for arr, val in ((self.gen, prop_tok), (self.logq, prop_lq), (self.logp, prop_lp)):
            arr.copy_(torch.where(write, val, arr))
        self.length = torch.where(accept, new_len, self.length)
        self._proposed += mh.long()
        self._accepted += (mh & accept).long()
        # schedule: another MH step in this block, else the next block's extension, else done
        step = fin & (self._moves_left > 0)
        block_end = fin & ~step
        finished = block_end & (self._ends_with_eos() | (self._target >= self.max_new_tokens))
        extend = block_end & ~finished
        self._done |= finished
        self._moves_left = torch.where(step, self._moves_left - 1, self._moves_left)
        self._moves_left = torch.where(extend, self.mcmc_steps, self._moves_left)
        self._target = torch.where(extend, (self._target + self.block_size).clamp(max=self.max_new_tokens),
                                   self._target)
        start = step | extend
        self._m = torch.where(step, self._draw_index(step), torch.where(extend, self.length, self._m))
        step_end = self.length if self.mh_ratio == "official" else self._target
        self._end = torch.where(step, step_end, torch.where(extend, self._target, self._end))
        self._is_ext = torch.where(start, extend, self._is_ext)
        self._n_new = torch.where(start, 0, self._n_new)
        prev = self.gen.gather(1, (self._m - 1).clamp(min=0)[:, None]).squeeze(1)
        pending = torch.where(self._m > 0, prev, self._prompt_last)
        self._store.begin(start, self._prompt_len + self._m, pending)

    def _draw_index(self, rows: torch.Tensor) -> torch.Tensor:
        """M ~ U{0, ..., |x|-1} per chain (the reference's ``random.randint(c, t-1)``): any generated position."""
        u = self._rng_mh.uniform(rows)
        return (u * self.length.to(u.dtype)).long().clamp(max=(self.length - 1).clamp(min=0))

    def _ends_with_eos(self) -> torch.Tensor:
        if self.eos_token_id is None:
            return torch.zeros_like(self.length, dtype=torch.bool)
        last = self.gen.gather(1, (self.length - 1).clamp(min=0)[:, None]).squeeze(1)
        return (self.length > 0) & (last == self.eos_token_id)

    def _sample_token(self, logits: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw from the proposal by inverting its CDF at each chain's own uniform ``u``.

        Returns (token, log q(token), log p(token)), each ``(N,)``.
        """
        return sample_from_logits(logits, u, self.proposal_temperature, self.top_k, self.top_p)

    def _collect(self, n_prompts: int, num_chains: int, proposed, accepted) -> list[PowerSample]:
        eos = self._ends_with_eos().tolist()
        total_lp = compute_suffix_sums(self.logp, torch.zeros_like(self.length), self.length).tolist()
        out = []
        for i in range(n_prompts * num_chains):
            ids = self.gen[i, : int(self.length[i])].tolist()
            text = self.tokenizer.decode(ids, skip_special_tokens=True) if self.tokenizer is not None else ""
            n_prop = int(proposed[i])
            out.append(PowerSample(
                prompt_index=i // num_chains, chain_index=i % num_chains, token_ids=ids, text=text,
                logprob=float(total_lp[i]), acceptance_rate=(int(accepted[i]) / n_prop) if n_prop else math.nan,
                tokens_generated=int(self._tokens[i]), finish_reason="eos" if eos[i] else "length"))
        return out
