"""Power-SMC (method="smc"): converges to p^alpha on an enumerable toy LM, resampling reorders the KV cache."""

import collections
import math

import pytest
import torch
from power_sampling import PowerSampler
from power_sampling.power_distribution import (
    compute_power_distribution,
    compute_total_variation,
    enumerate_sequences,
)
from power_sampling.smc import bridge_exponents, compute_ess, systematic_resample
from rlcore.testing import TableLM, tiny_causal_lm, tiny_tokenizer


def test_ess_and_systematic_resampling_hand_computed():
    assert torch.allclose(compute_ess(torch.zeros(2, 5)), torch.tensor([5.0, 5.0]))
    # w = (1/4, 3/4) -> ESS = 1 / (1/16 + 9/16) = 1.6
    assert math.isclose(float(compute_ess(torch.tensor([[0.0, math.log(3.0)]]))), 1.6, rel_tol=1e-6)
    # w = (.1, .2, .3, .4), u = .5: points .125 .375 .625 .875 against the CDF .1 .3 .6 1.0
    lw = torch.tensor([[0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 1.0, 1.0]]).log()
    assert systematic_resample(lw, torch.tensor([0.5, 0.0])).tolist() == [[1, 2, 3, 3], [0, 1, 2, 3]]
    assert bridge_exponents(3.0, 4, 0) == (1.0, 1.5) and bridge_exponents(3.0, 0, 7) == (3.0, 3.0)


def test_smc_converges_to_power_distribution():
    """TV(SMC, p^alpha) falls with particles, well below TV(p^alpha, low temperature)."""
    lm = TableLM(vocab_size=3, max_len=8, seed=0, sharpness=1.5)
    en = enumerate_sequences(lm, [0], 4, None, temperature=0.25)
    seqs = list(en)
    pi = dict(zip(seqs, compute_power_distribution(torch.tensor([en[s][0] for s in seqs]), 4.0).tolist()))
    tv_low = compute_total_variation(pi, {s: math.exp(en[s][1]) for s in seqs})
    assert tv_low > 0.25
    tv = {}
    for k in (1, 3, 24):
        out = PowerSampler(lm, alpha=4.0, max_new_tokens=4, eos_token_id=None, seed=0, method="smc",
                           num_particles=k).sample(input_ids=[[0]], num_chains=800)
        emp = collections.Counter(tuple(o.token_ids) for o in out)
        tv[k] = compute_total_variation({s: c / 800 for s, c in emp.items()}, pi)
        assert all(len(o.particle_weights) == k and math.isclose(sum(o.particle_weights), 1.0, rel_tol=1e-6)
                   for o in out)
    assert abs(tv[1] - tv_low) < 0.06  # one particle = plain low-temperature sampling
    assert tv[24] < tv[3] < tv[1] and tv[24] < tv_low / 5, (tv, tv_low)


def test_smc_with_bridging_and_forced_resampling_still_targets_power():
    lm = TableLM(vocab_size=3, max_len=8, seed=0, sharpness=1.5)
    en = enumerate_sequences(lm, [0], 4, None, temperature=0.25)
    seqs = list(en)
    pi = dict(zip(seqs, compute_power_distribution(torch.tensor([en[s][0] for s in seqs]), 4.0).tolist()))
    out = PowerSampler(lm, alpha=4.0, max_new_tokens=4, eos_token_id=None, seed=1, method="smc", num_particles=16,
                       ess_threshold=0.9, bridge_tokens=3).sample(input_ids=[[0]], num_chains=600)
    emp = collections.Counter(tuple(o.token_ids) for o in out)
    assert compute_total_variation({s: c / 600 for s, c in emp.items()}, pi) < 0.06
    assert sum(o.resample_count for o in out) > 100  # the bridge makes weights uneven: resampling happens


def test_smc_kv_cache_reorder_matches_reencoding_and_is_batch_independent():
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok)
    kw = dict(alpha=4.0, max_new_tokens=8, eos_token_id=None, seed=3, method="smc", num_particles=4,
              ess_threshold=1.0)
    prompts = ["hello there", "a"]
    a = PowerSampler(model, tok, use_kv_cache=True, **kw).sample(prompts=prompts, num_chains=2)
    b = PowerSampler(model, tok, use_kv_cache=False, **kw).sample(prompts=prompts, num_chains=2)
    assert [s.token_ids for s in a] == [s.token_ids for s in b]
    assert all(s.resample_count > 0 for s in a)  # reorders really happened on the cache path
    for x, y in zip(a, b):
        assert math.isclose(x.logprob, y.logprob, abs_tol=1e-4)
    alone = PowerSampler(model, tok, **kw).sample(prompts=["a"], num_chains=2)
    assert [s.token_ids for s in alone] == [s.token_ids for s in a[2:]]
    assert all(s.tokens_generated == 4 * 8 and math.isnan(s.acceptance_rate) for s in a)


def test_smc_eos_and_logprob():
    lm = TableLM(vocab_size=4, max_len=12, seed=4, sharpness=1.0, eos_token_id=3)
    out = PowerSampler(lm, alpha=2.0, max_new_tokens=9, seed=1, method="smc", num_particles=4).sample(
        input_ids=[[0], [1, 2]], num_chains=6)
    for s in out:
        prompt = [[0], [1, 2]][s.prompt_index]
        assert math.isclose(s.logprob, lm.exact_logprob(prompt, s.token_ids), rel_tol=1e-4, abs_tol=1e-4)
        assert 3 not in s.token_ids[:-1] and (s.finish_reason == "eos") == (s.token_ids[-1] == 3)
    assert any(s.finish_reason == "eos" for s in out)


@pytest.mark.parametrize("kwargs,match", [(dict(method="pf"), "method"), (dict(method="smc", num_particles=0),
                                          "num_particles"), (dict(method="smc", ess_threshold=1.5), "ess_threshold")])
def test_smc_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PowerSampler(TableLM(), **kwargs)
