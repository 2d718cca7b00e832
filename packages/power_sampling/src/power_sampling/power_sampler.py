"""Power sampling: blockwise autoregressive MCMC towards p^alpha (paper Algorithm 1), batched over chains.

For block k = 1..ceil(T/B): extend every unfinished chain by B tokens from the proposal (temperature 1/alpha),
then run N_MCMC Metropolis-Hastings steps, each resampling the suffix after a uniform index over *all* generated
positions; after the block, chains whose sequence ended with EOS are done. Per-token log q (proposal) and log p
(raw model) are cached for each chain's current state, so the acceptance ratio needs no rescoring pass.

All chains (prompts x num_chains) move together: one forward pass per decode step for the whole batch, with each
chain's kept prefix served from the KV cache (:mod:`power_sampling.kv_cache`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rlcore.rollout import process_logits

from .kv_cache import make_chain_store
from .metropolis_hastings import compute_acceptance, compute_acceptance_log_ratio, compute_suffix_sums

__all__ = ["PowerSampler", "PowerSample"]


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


def _model_device(model: Any) -> torch.device:
    dev = getattr(model, "device", None)
    if isinstance(dev, torch.device):
        return dev
    try:
        return next(iter(model.parameters())).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")


def _default_eos(model: Any, tokenizer: Any) -> int | None:
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
        top_k, top_p: proposal truncation (0 / 1.0 = none); the proposal log q is that of the truncated
            distribution actually sampled, so MH stays exact on its support.
        eos_token_id: stop token; default from the tokenizer / model config; ``None`` disables stopping.
        seed: seeds the index draws, the uniform u of each test and token sampling.
        use_kv_cache: ``None`` = use it when the model takes one.
    """

    def __init__(self, model: Any, tokenizer: Any = None, alpha: float = 4.0, block_size: int = 192,
                 mcmc_steps: int = 10, max_new_tokens: int = 3072, proposal_temperature: float | None = None,
                 top_k: int = 0, top_p: float = 1.0, eos_token_id: int | None = _UNSET, seed: int = 0,
                 use_kv_cache: bool | None = None):
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
        if top_k < 0 or not 0 < top_p <= 1:
            raise ValueError(f"top_k must be >= 0 and top_p in (0, 1], got top_k={top_k}, top_p={top_p}")
        self.model, self.tokenizer = model, tokenizer
        self.alpha, self.block_size, self.mcmc_steps = float(alpha), block_size, mcmc_steps
        self.max_new_tokens, self.proposal_temperature = max_new_tokens, float(proposal_temperature)
        self.top_k, self.top_p, self.seed, self.use_kv_cache = top_k, top_p, seed, use_kv_cache
        self.eos_token_id = _default_eos(model, tokenizer) if eos_token_id is _UNSET else eos_token_id
        self.device = _model_device(model)
        self.stats: dict[str, float] = {}

    # ------------------------------------------------------------------ inputs
    def _encode(self, prompts: Sequence[str] | None, input_ids: Sequence[Sequence[int]] | None) -> list[list[int]]:
        if (prompts is None) == (input_ids is None):
            raise ValueError("pass exactly one of prompts= or input_ids=")
        if prompts is not None:
            if self.tokenizer is None:
                raise ValueError("string prompts need a tokenizer; pass input_ids= instead")
            input_ids = [self.tokenizer(p).input_ids for p in prompts]
        ids = [list(map(int, p)) for p in input_ids]
        if not ids:
            raise ValueError("no prompts given")
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        for i, p in enumerate(ids):
            if not p:
                raise ValueError(f"prompt {i} is empty (no tokens)")
            if isinstance(limit, int) and len(p) + self.max_new_tokens > limit:
                raise ValueError(f"prompt {i} has {len(p)} tokens; with max_new_tokens={self.max_new_tokens} it "
                                 f"exceeds the model's context of {limit} tokens")
        return ids

    # ------------------------------------------------------------------ public
    @torch.no_grad()
    def sample(self, prompts: Sequence[str] | None = None, input_ids: Sequence[Sequence[int]] | None = None,
               num_chains: int = 1, callback: Callable[[int, int], None] | None = None) -> list[PowerSample]:
        """Run ``num_chains`` independent chains per prompt; returns them prompt-major (prompt 0's chains first).

        ``callback(block, n_blocks)`` is called after each block (progress bars).
        """
        if num_chains < 1:
            raise ValueError(f"num_chains must be >= 1, got {num_chains}")
        ids = self._encode(prompts, input_ids)
        rows = [p for p in ids for _ in range(num_chains)]
        N, T, dev = len(rows), self.max_new_tokens, self.device
        self._g_tok = torch.Generator(device=dev).manual_seed(self.seed)
        self._g_mh = torch.Generator().manual_seed(self.seed + 1)
        pad = self.eos_token_id if self.eos_token_id is not None else 0
        self._store = make_chain_store(self.model, rows, dev, pad, self.use_kv_cache, T)
        self._prompt_last = torch.as_tensor([p[-1] for p in rows], device=dev)
        self._prompt_len = torch.as_tensor([len(p) for p in rows], device=dev)
        # column T is scratch: masked-out writes of _splice land there, so scatter indices never collide
        self.gen = torch.full((N, T + 1), pad, dtype=torch.long, device=dev)  # (N, T+1) current states
        self.logq = torch.zeros((N, T + 1), device=dev)  # (N, T+1) cached proposal log-probs
        self.logp = torch.zeros((N, T + 1), device=dev)  # (N, T+1) cached raw model log-probs
        self.length = torch.zeros(N, dtype=torch.long, device=dev)  # (N,) generated length
        done = torch.zeros(N, dtype=torch.bool, device=dev)
        self._tokens = torch.zeros(N, dtype=torch.long, device=dev)
        proposed = torch.zeros(N, dtype=torch.long, device=dev)
        accepted = torch.zeros(N, dtype=torch.long, device=dev)
        n_blocks = -(-T // self.block_size)
        for k in range(1, n_blocks + 1):
            target = min(k * self.block_size, T)
            active = ~done
            self._step(self.length.clone(), active, target, always_accept=True)  # extend by up to B tokens
            for _ in range(self.mcmc_steps):
                m = self._draw_index(active)
                acc = self._step(m, active, target, always_accept=False)
                proposed += active.long()
                accepted += acc.long()
            done |= self._ends_with_eos()
            if callback is not None:
                callback(k, n_blocks)
            if bool(done.all()):
                break
        self.stats = {"proposed": int(proposed.sum()), "accepted": int(accepted.sum()),
                      "tokens_generated": int(self._tokens.sum())}
        return self._collect(len(ids), num_chains, proposed, accepted)

    # ------------------------------------------------------------------ internals
    def _draw_index(self, active: torch.Tensor) -> torch.Tensor:
        """m ~ U{0, ..., |x|-1} per chain (the reference's ``random.randint(c, t-1)``): any generated position."""
        u = torch.rand(self.length.shape, generator=self._g_mh).to(self.device)
        m = (u * self.length.to(u.dtype)).long().clamp(max=(self.length - 1).clamp(min=0))
        return torch.where(active, m, self.length)

    def _ends_with_eos(self) -> torch.Tensor:
        if self.eos_token_id is None:
            return torch.zeros_like(self.length, dtype=torch.bool)
        last = self.gen.gather(1, (self.length - 1).clamp(min=0)[:, None]).squeeze(1)
        return (self.length > 0) & (last == self.eos_token_id)

    def _sample_token(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Draw from the proposal; return (token, log q(token), log p(token)), each ``(N,)``."""
        logits = logits.float()  # (N, V)
        proc = process_logits(logits, self.proposal_temperature, self.top_k, self.top_p)  # (N, V)
        logq_all = torch.log_softmax(proc, -1)
        tok = torch.multinomial(logq_all.exp(), 1, generator=self._g_tok).squeeze(-1)  # (N,)
        lq = logq_all.gather(-1, tok[:, None]).squeeze(-1)
        lp = logits.gather(-1, tok[:, None]).squeeze(-1) - torch.logsumexp(logits, -1)
        return tok, lq, lp

    def _step(self, m: torch.Tensor, active: torch.Tensor, target: int, always_accept: bool) -> torch.Tensor:
        """Regenerate positions m.. (up to ``target`` or EOS) for the active chains, then accept or reject."""
        dev = self.device
        running = active & (m < target)
        steps = int((target - m)[running].max()) if bool(running.any()) else 0
        prev = self.gen.gather(1, (m - 1).clamp(min=0)[:, None]).squeeze(1)
        pending = torch.where(m > 0, prev, self._prompt_last)
        self._store.begin(self._prompt_len + m, pending)
        new = torch.zeros((len(m), max(steps, 1)), dtype=torch.long, device=dev)  # (N, K)
        lq = torch.zeros(new.shape, device=dev)
        lp = torch.zeros(new.shape, device=dev)
        n_new = torch.zeros_like(m)
        for j in range(steps):
            logits = self._store.next_logits(running)
            logits = torch.where(running[:, None], logits, torch.zeros((), dtype=logits.dtype, device=dev))  # junk rows
            tok, lq_j, lp_j = self._sample_token(logits)
            new[:, j], lq[:, j], lp[:, j] = tok, lq_j, lp_j
            self._store.push(tok, running)
            n_new += running.long()
            running = running & (m + n_new < target)
            if self.eos_token_id is not None:
                running = running & (tok != self.eos_token_id)
            if not bool(running.any()):
                break
        self._tokens += n_new
        new_len = m + n_new
        if always_accept:
            accept = active.clone()
        else:
            zero = torch.zeros_like(m)
            log_r = compute_acceptance_log_ratio(
                logp_new=compute_suffix_sums(lp, zero, n_new), logp_cur=compute_suffix_sums(self.logp, m, self.length),
                logq_new=compute_suffix_sums(lq, zero, n_new), logq_cur=compute_suffix_sums(self.logq, m, self.length),
                alpha=self.alpha, len_new=new_len, len_cur=self.length)
            accept = active & compute_acceptance(log_r.cpu(), self._g_mh).to(dev)
        self._store.end(accept)
        self._splice(m, new, lq, lp, n_new, accept)
        return accept

    def _splice(self, m, new, lq, lp, n_new, accept) -> None:
        """Write accepted suffixes into the cached state arrays (positions m .. m + n_new - 1)."""
        scratch, K = self.gen.shape[1] - 1, new.shape[1]
        j = torch.arange(K, device=self.device)[None, :]  # (1, K)
        write = accept[:, None] & (j < n_new[:, None])  # (N, K)
        cols = torch.where(write, m[:, None] + j, scratch)  # (N, K): unwritten entries all go to the scratch column
        for arr, val in ((self.gen, new), (self.logq, lq), (self.logp, lp)):
            arr.scatter_(1, cols, torch.where(write, val, arr.gather(1, cols)))
        self.length = torch.where(accept, m + n_new, self.length)

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
