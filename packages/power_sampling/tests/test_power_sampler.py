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
from rlcore.testing import TableLM, tiny_causal_lm, tiny_tokenizer


def _exact(lm, T, eos, alpha):
    en = enumerate_sequences(lm, [0], T, eos, temperature=1 / alpha)
    seqs = list(en)
    logp = torch.tensor([en[s][0] for s in seqs])
    pi = dict(zip(seqs, compute_power_distribution(logp, alpha).tolist()))
    low_temp = {s: math.exp(en[s][1]) for s in seqs}
    return pi, low_temp


def _empirical(samples):
    counts = collections.Counter(tuple(s.token_ids) for s in samples)
    return {k: v / len(samples) for k, v in counts.items()}


@pytest.mark.parametrize("eos,block_size,seed", [(None, 2, 0), (2, 4, 1)])
def test_chains_approach_exact_power_distribution(eos, block_size, seed):
    """Many chains on an enumerable toy LM: TV to p^alpha falls well below low-temperature sampling's."""
    lm = TableLM(vocab_size=3, max_len=8, seed=seed, sharpness=1.5, eos_token_id=eos)
    pi, low_temp = _exact(lm, 4, eos, 4.0)
    tv_low = compute_total_variation(pi, low_temp)
    assert tv_low > 0.2  # the two targets really differ here (Prop. 1)
    kw = dict(alpha=4.0, block_size=block_size, max_new_tokens=4, eos_token_id=eos)
    mcmc = _empirical(PowerSampler(lm, mcmc_steps=32, seed=0, **kw).sample(input_ids=[[0]], num_chains=3000))
    tv_mcmc = compute_total_variation(mcmc, pi)
    assert tv_mcmc < 0.05 and tv_mcmc < tv_low / 4, (tv_mcmc, tv_low)


def test_zero_mcmc_steps_is_low_temperature_sampling():
    lm = TableLM(vocab_size=3, max_len=8, seed=0, sharpness=1.5)
    pi, low_temp = _exact(lm, 4, None, 4.0)
    samples = PowerSampler(lm, alpha=4.0, block_size=2, mcmc_steps=0, max_new_tokens=4, eos_token_id=None,
                           seed=0).sample(input_ids=[[0]], num_chains=3000)
    emp = _empirical(samples)
    assert compute_total_variation(emp, low_temp) < 0.05
    assert compute_total_variation(emp, pi) > 0.2
    assert all(math.isnan(s.acceptance_rate) and s.tokens_generated == 4 for s in samples)


def test_alpha_inf_never_lowers_likelihood():
    lm = TableLM(vocab_size=3, max_len=10, seed=2, sharpness=1.0)
    kw = dict(block_size=3, max_new_tokens=6, eos_token_id=None, proposal_temperature=0.5, seed=0)
    greedy = PowerSampler(lm, alpha=math.inf, mcmc_steps=20, **kw).sample(input_ids=[[0]], num_chains=300)
    plain = PowerSampler(lm, alpha=2.0, mcmc_steps=0, **kw).sample(input_ids=[[0]], num_chains=300)
    best = max(enumerate_sequences(lm, [0], 6).values())[0]
    assert sum(s.logprob for s in greedy) / 300 > sum(s.logprob for s in plain) / 300
    assert sum(math.isclose(s.logprob, best, rel_tol=1e-4) for s in greedy) > 150  # most chains reach the mode


def test_kv_cache_path_matches_reencoding():
    """Prefix reuse through the cropped/masked DynamicCache gives exactly the re-encoding results."""
    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok)
    kw = dict(alpha=4.0, block_size=4, mcmc_steps=2, max_new_tokens=8, eos_token_id=None, seed=3)
    prompts = ["hello there", "a", "The quick brown fox"]
    a = PowerSampler(model, tok, use_kv_cache=True, **kw).sample(prompts=prompts, num_chains=2)
    b = PowerSampler(model, tok, use_kv_cache=False, **kw).sample(prompts=prompts, num_chains=2)
    assert [s.token_ids for s in a] == [s.token_ids for s in b]
    for x, y in zip(a, b):
        assert math.isclose(x.logprob, y.logprob, rel_tol=1e-4, abs_tol=1e-4)
    assert [(s.prompt_index, s.chain_index) for s in a] == [(i, j) for i in range(3) for j in range(2)]
    assert all(len(s.token_ids) == 8 and s.finish_reason == "length" and s.text == tok.decode(s.token_ids, skip_special_tokens=True)
               for s in a)
    # with a frequent token as EOS: chains stop at different steps, and the two paths still agree exactly
    eos = collections.Counter(t for s in a for t in s.token_ids).most_common(1)[0][0]
    kw["eos_token_id"] = eos
    a = PowerSampler(model, tok, use_kv_cache=True, **kw).sample(prompts=prompts, num_chains=2)
    b = PowerSampler(model, tok, use_kv_cache=False, **kw).sample(prompts=prompts, num_chains=2)
    assert [s.token_ids for s in a] == [s.token_ids for s in b]
    assert any(s.finish_reason == "eos" for s in a)


def test_kv_cache_prebuilt_sdpa_mask_matches_2d_mask():
    """The (N, 1, 1, S+1) bool key mask handed to SDPA models gives the same logits, bit for bit, as transformers
    building it from the 2D mask, with holes in the kept prefix and rows that are not active."""
    from power_sampling.kv_cache import KVCacheChains

    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok)
    assert model.config._attn_implementation == "sdpa"
    prompts = [tok("hello there").input_ids, tok("The quick brown fox").input_ids]
    fast, ref = KVCacheChains(model, prompts, torch.device("cpu")), KVCacheChains(model, prompts, torch.device("cpu"))
    assert fast._sdpa
    ref._sdpa = False
    every, first = torch.tensor([True, True]), torch.tensor([True, False])
    for step, active in enumerate([every, every, every, first, every]):
        if step == 3:  # row 0 drops its last two tokens (holes in its cache), row 1 pauses this step
            for store in (fast, ref):
                store.begin(torch.tensor([True, False]), torch.tensor([len(prompts[0]), 0]), torch.tensor([5, 0]))
        a, b = fast.next_logits(active), ref.next_logits(active)
        assert torch.equal(a[active], b[active])
        for store in (fast, ref):
            store.push(torch.tensor([7 + step, 9]), active)


def test_logprob_matches_exact_and_eos_truncates():
    lm = TableLM(vocab_size=4, max_len=12, seed=4, sharpness=1.0, eos_token_id=3)
    out = PowerSampler(lm, alpha=2.0, block_size=3, mcmc_steps=3, max_new_tokens=9, seed=1).sample(
        input_ids=[[0], [1, 2]], num_chains=8)
    for s in out:
        prompt = [[0], [1, 2]][s.prompt_index]
        assert math.isclose(s.logprob, lm.exact_logprob(prompt, s.token_ids), rel_tol=1e-4, abs_tol=1e-4)
        assert 3 not in s.token_ids[:-1]
        assert (s.finish_reason == "eos") == (s.token_ids[-1] == 3)
        assert s.tokens_generated >= len(s.token_ids)
    assert any(s.finish_reason == "eos" for s in out)


def test_seed_reproducible_and_sensitive():
    lm = TableLM(vocab_size=4, max_len=12, seed=0)
    run = lambda seed: [s.token_ids for s in PowerSampler(  # noqa: E731
        lm, alpha=4.0, block_size=4, mcmc_steps=2, max_new_tokens=8, eos_token_id=None, seed=seed,
    ).sample(input_ids=[[0]], num_chains=16)]
    assert run(5) == run(5)
    assert run(5) != run(6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(alpha=0.5), "alpha must be >= 1"),
    (dict(block_size=0), "block_size must be > 0"),
    (dict(mcmc_steps=-1), "mcmc_steps"),
    (dict(alpha=math.inf), "proposal_temperature"),
    (dict(proposal_temperature=0.0), "proposal_temperature must be > 0"),
    (dict(max_new_tokens=0), "max_new_tokens"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PowerSampler(TableLM(), **kwargs)


def test_bad_inputs():
    lm = TableLM(vocab_size=3, max_len=8)
    s = PowerSampler(lm, block_size=2, max_new_tokens=4)
    with pytest.raises(ValueError, match="prompt 1 has 6 tokens.*context of 8"):
        s.sample(input_ids=[[0], [0] * 6])
    with pytest.raises(ValueError, match="prompt 0 is empty"):
        s.sample(input_ids=[[]])
    with pytest.raises(ValueError, match="need a tokenizer"):
        s.sample(prompts=["hi"])
    with pytest.raises(ValueError, match="exactly one"):
        s.sample()
    with pytest.raises(ValueError, match="num_chains"):
        s.sample(input_ids=[[0]], num_chains=0)


def test_remainder_block_and_no_eos():
    """T not a multiple of B: the last block is shorter; eos_token_id=None never stops early."""
    lm = TableLM(vocab_size=3, max_len=12, seed=0, eos_token_id=2)
    out = PowerSampler(lm, alpha=2.0, block_size=4, mcmc_steps=1, max_new_tokens=7, eos_token_id=None,
                       seed=0).sample(input_ids=[[0]], num_chains=5)
    assert all(len(s.token_ids) == 7 and s.finish_reason == "length" for s in out)


def test_golden_trajectory():
    """A fixed-seed run on TableLM against the committed golden output (catches unintended algorithm drift)."""
    import json
    from pathlib import Path

    gold = json.loads((Path(__file__).parent / "testdata" / "golden_tablelm.json").read_text())
    lm = TableLM(vocab_size=8, max_len=16, seed=3, sharpness=1.0, eos_token_id=7)
    s = PowerSampler(lm, alpha=4.0, block_size=3, mcmc_steps=3, max_new_tokens=9, seed=7)
    out = s.sample(input_ids=[[0], [1, 2]], num_chains=3)
    assert [o.token_ids for o in out] == [g["token_ids"] for g in gold["samples"]]
    for o, g in zip(out, gold["samples"]):
        assert math.isclose(o.logprob, g["logprob"], abs_tol=1e-4)
        assert o.tokens_generated == g["tokens_generated"]
    assert s.stats == gold["stats"]


def test_official_mh_ratio_option():
    """mh_ratio='official' (the released code's truncated current suffix) runs, stays a valid chain, and differs
    from the exact ratio once proposals stop early at EOS."""
    lm = TableLM(vocab_size=4, max_len=12, seed=4, sharpness=1.0, eos_token_id=3)
    kw = dict(alpha=2.0, block_size=3, mcmc_steps=3, max_new_tokens=9, seed=1)
    off = PowerSampler(lm, mh_ratio="official", **kw).sample(input_ids=[[0]], num_chains=16)
    exact = PowerSampler(lm, **kw).sample(input_ids=[[0]], num_chains=16)
    for s in off:
        assert math.isclose(s.logprob, lm.exact_logprob([0], s.token_ids), rel_tol=1e-4, abs_tol=1e-4)
        assert 3 not in s.token_ids[:-1]
    assert [s.token_ids for s in off] != [s.token_ids for s in exact]
    with pytest.raises(ValueError, match="mh_ratio"):
        PowerSampler(lm, mh_ratio="paper")


@pytest.mark.parametrize("model_kind", ["table", "hf_kv_cache"])
def test_chains_depend_only_on_seed_prompt_and_chain_index(model_kind):
    """P alone, P next to another prompt, and P with twice the chains: P's chains are identical."""
    if model_kind == "table":
        lm, tok = TableLM(vocab_size=5, max_len=16, seed=2, sharpness=1.0, eos_token_id=4), None
        P, other = [0, 1], [3]
    else:
        tok = tiny_tokenizer()
        lm = tiny_causal_lm(tok)
        P, other = tok("hello there").input_ids, tok("The quick brown fox jumps").input_ids
    kw = dict(alpha=4.0, block_size=3, mcmc_steps=3, max_new_tokens=9, seed=11)
    run = lambda ids, n: PowerSampler(lm, tok, **kw).sample(input_ids=ids, num_chains=n)  # noqa: E731
    alone = run([P], 3)
    beside = [s for s in run([other, P], 3) if s.prompt_index == 1]
    doubled = run([P], 6)[:3]
    key = lambda out: [(s.token_ids, s.tokens_generated, s.acceptance_rate) for s in out]  # noqa: E731
    assert key(alone) == key(beside) == key(doubled)
    assert len({tuple(s.token_ids) for s in run([P], 6)}) > 1  # chains of one prompt still differ
    assert key(run([P], 3)) != key(PowerSampler(lm, tok, **{**kw, "seed": 12}).sample(input_ids=[P], num_chains=3))
