r"""Power sampling by Sequential Monte Carlo (``method="smc"``; Power-SMC, arXiv 2602.10273), from first principles.

Target: p(x)^alpha over generated sequences, as for the MH sampler. Each of K particles proposes its next token
from the tempered model q_t(v) \propto p(v | x_<t)^alpha (temperature 1/alpha, with the sampler's top-k/top-p),
and carries the importance weight of the sequence target against that proposal. The incremental log-weight of
token x_t is

    log w_t = alpha * log p(x_t | x_<t) - log q_t(x_t)

which, for the untruncated tempered proposal, is the log normaliser log Z_t = log sum_v p(v | x_<t)^alpha (it
does not depend on the token drawn). When the effective sample size ESS = 1 / sum_k w_k^2 of a chain's
normalised weights drops below ``ess_threshold * K``, its particles are resampled (systematic resampling) and the
weights reset; the KV cache rows are reordered by the same index (a gather, no re-prefill). A particle that emits
EOS stops (its weight stays). At the end one particle per chain is returned, drawn by weight; ``PowerSample``
carries all K normalised weights and the number of resampling events.

Exponent bridging (``bridge_tokens`` > 0): the exponent anneals linearly from 1 to alpha over the first
``bridge_tokens`` tokens, alpha_t = 1 + (alpha - 1) * min(t / bridge_tokens, 1); the intermediate targets are
pi_t \propto p(x_{1:t})^{alpha_t}, the proposal at step t is temperature 1/alpha_t, and the incremental weight gains
the bridging term (alpha_t - alpha_{t-1}) * log p(x_{1:t-1}).

All particles of all chains decode as one batch on the same per-row chain store as the MH sampler (the prompt is
prefilled once per distinct prompt and its KV rows shared), with randomness drawn per particle / per chain so a
chain's result depends only on (seed, prompt, chain index).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .chain_rng import ChainStreams, chain_seeds, prompt_seed
from .kv_cache import make_chain_store

__all__ = ["compute_ess", "systematic_resample", "bridge_exponents", "run_smc"]


def compute_ess(logw: torch.Tensor) -> torch.Tensor:
    """Effective sample size 1 / sum_k w_k^2 of the normalised weights, per row of ``logw`` ``(G, K)`` -> ``(G,)``.

    Example:
        >>> compute_ess(torch.zeros(1, 4))  # uniform weights: ESS = K
        tensor([4.])
        >>> round(float(compute_ess(torch.tensor([[0.0, math.log(3.0)]]))), 4)  # w = (1/4, 3/4): 1 / (1/16 + 9/16)
        1.6
    """
    w = torch.softmax(logw, -1)
    return 1.0 / (w * w).sum(-1)


def systematic_resample(logw: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Systematic resampling: ancestor indices ``(G, K)`` for weights ``logw`` ``(G, K)`` and one U[0,1) per row.

    Particle k's offspring count is the number of points (u + j) / K, j = 0..K-1, falling in its CDF interval.

    Example:
        >>> lw = torch.tensor([[0.1, 0.2, 0.3, 0.4]]).log()
        >>> systematic_resample(lw, torch.tensor([0.5])).tolist()  # points .125 .375 .625 .875
        [[1, 2, 3, 3]]
    """
    G, K = logw.shape
    cdf = torch.softmax(logw.double(), -1).cumsum(-1)  # (G, K)
    cdf[:, -1] = 1.0
    pts = (u.double()[:, None] + torch.arange(K, dtype=torch.float64, device=logw.device)[None, :]) / K  # (G, K)
    return torch.searchsorted(cdf, pts, right=True).clamp(max=K - 1)


def bridge_exponents(alpha: float, bridge_tokens: int, t: int) -> tuple[float, float]:
    """(alpha_{t-1}, alpha_t) at generated position t (0-based) of the linear 1 -> alpha bridge.

    Example:
        >>> bridge_exponents(4.0, 3, 0), bridge_exponents(4.0, 3, 1), bridge_exponents(4.0, 3, 5)
        ((1.0, 2.0), (2.0, 3.0), (4.0, 4.0))
    """
    if bridge_tokens <= 0:
        return alpha, alpha
    f = lambda s: 1.0 + (alpha - 1.0) * min(s / bridge_tokens, 1.0)  # noqa: E731
    return f(t), f(t + 1)


@torch.no_grad()
def run_smc(sampler: Any, ids: list[list[int]], num_chains: int, seeds: Sequence[int] | None = None,
            callback: Callable[[int, int], None] | None = None) -> list[Any]:
    """Run ``num_chains`` independent SMC chains of ``sampler.num_particles`` particles per prompt.

    ``sampler`` is the :class:`~power_sampling.PowerSampler` holding the settings; returns its ``PowerSample``
    list (prompt-major), each the weight-drawn particle of its chain.
    """
    from .power_sampler import PowerSample, sample_from_logits

    K, T, dev, alpha = sampler.num_particles, sampler.max_new_tokens, sampler.device, sampler.alpha
    eos = sampler.eos_token_id
    cs = chain_seeds(sampler.seed, ids, num_chains, seeds)  # one per chain (= SMC run)
    G = len(cs)
    rows = [p for p in ids for _ in range(num_chains) for _ in range(K)]  # (G*K) particles, chain-major
    N = len(rows)
    tok_rng = ChainStreams([prompt_seed(c, [k]) for c in cs for k in range(K)], "smc-token", dev)
    grp_rng = ChainStreams(cs, "smc-resample", dev)
    store = make_chain_store(sampler.model, rows, dev, eos if eos is not None else 0, sampler.use_kv_cache, T)
    gen = torch.zeros((N, T), dtype=torch.long, device=dev)
    length = torch.zeros(N, dtype=torch.long, device=dev)
    cum_lp = torch.zeros(N, dtype=torch.float64, device=dev)  # log p(x_{1:t}) per particle
    logw = torch.zeros(N, dtype=torch.float64, device=dev)
    done = torch.zeros(N, dtype=torch.bool, device=dev)
    n_tokens = torch.zeros(G, dtype=torch.long, device=dev)
    n_resample = torch.zeros(G, dtype=torch.long, device=dev)
    for t in range(T):
        running = ~done
        a_prev, a_t = bridge_exponents(alpha, sampler.bridge_tokens, t)
        tau = 1.0 / a_t if sampler.bridge_tokens > 0 else sampler.proposal_temperature
        logits = store.next_logits(running)
        logits = torch.where(running[:, None], logits, torch.zeros((), dtype=logits.dtype, device=dev))
        tok, lq, lp = sample_from_logits(logits, tok_rng.uniform(running), tau, sampler.top_k, sampler.top_p)
        lp, lq = lp.double(), lq.double()
        # bridging term for every particle (finished ones too: their target exponent moves as well)
        logw = logw + (a_t - a_prev) * cum_lp + torch.where(running, a_t * lp - lq, torch.zeros_like(lp))
        cum_lp = torch.where(running, cum_lp + lp, cum_lp)
        gen[:, t] = torch.where(running, tok, gen[:, t])
        length += running.long()
        n_tokens += running.long().view(G, K).sum(1)
        store.push(tok, running)
        stop = running & (length >= T)
        if eos is not None:
            stop |= running & (tok == eos)
        done |= stop
        if bool(done.all()):
            break
        # resample chains whose ESS fell below the threshold (and that still have running particles)
        lw = logw.view(G, K)
        need = (compute_ess(lw) < sampler.ess_threshold * K) & ~done.view(G, K).all(1)
        if bool(need.any()):
            u = grp_rng.uniform(need)
            anc = systematic_resample(lw, u)  # (G, K)
            anc = torch.where(need[:, None], anc, torch.arange(K, device=dev)[None, :])
            index = (anc + torch.arange(G, device=dev)[:, None] * K).flatten()  # (N,) global ancestor rows
            gen, length, cum_lp, done = gen[index], length[index], cum_lp[index], done[index]
            logw = torch.where(need.repeat_interleave(K), torch.zeros_like(logw), logw[index])
            store.reorder(index)
            n_resample += need.long()
        if callback is not None:
            callback(int(done.view(G, K).all(1).sum()), G)
    if callback is not None:
        callback(G, G)
    # one particle per chain, drawn by its normalised weight
    w = torch.softmax(logw.view(G, K), -1)  # (G, K)
    u = grp_rng.uniform(torch.ones(G, dtype=torch.bool))
    pick = torch.searchsorted(w.cumsum(-1), u[:, None].to(w.dtype) * w.sum(-1, keepdim=True), right=True)
    pick = pick.squeeze(1).clamp(max=K - 1)  # (G,)
    sampler.stats = {"resamples": int(n_resample.sum()), "tokens_generated": int(n_tokens.sum()),
                     "decode_steps": t + 1}
    out = []
    for g in range(G):
        r = g * K + int(pick[g])
        toks = gen[r, : int(length[r])].tolist()
        text = sampler.tokenizer.decode(toks, skip_special_tokens=True) if sampler.tokenizer is not None else ""
        out.append(PowerSample(
            prompt_index=g // num_chains, chain_index=g % num_chains, token_ids=toks, text=text,
            logprob=float(cum_lp[r]), acceptance_rate=math.nan, tokens_generated=int(n_tokens[g]),
            finish_reason="eos" if (eos is not None and toks and toks[-1] == eos) else "length",
            particle_weights=w[g].tolist(), resample_count=int(n_resample[g])))
    return out
