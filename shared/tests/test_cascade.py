"""Cascade (shared-prefix) decode attention: the split softmax equals full attention over the concatenated keys,
and HFGenerator's cascade path equals the expanded-cache path (tokens and log-probs)."""

import math

import pytest
import torch
from rlcore.cascade import CascadeState, SharedLevel, attend, cascade_attention_forward, supports_cascade
from rlcore.rollout import HFGenerator, SamplingParams
from rlcore.testing import tiny_causal_lm


def test_attend_hand_computed():
    # one head, one query q = [1, 0]; keys [1, 0], [0, 1], [2, 0] (the last masked); scale 1
    q = torch.tensor([[[[1.0, 0.0]]]])
    k = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]]])
    v = torch.tensor([[[[10.0, 0.0], [0.0, 10.0], [99.0, 99.0]]]])
    o, lse = attend(q, k, v, torch.tensor([[True, True, False]]), 1.0)
    # scores 1, 0 -> weights e/(e+1), 1/(e+1); lse = log(e + 1)
    e = math.e
    torch.testing.assert_close(o[0, 0, 0], torch.tensor([10 * e / (e + 1), 10 / (e + 1)]))
    assert lse.item() == pytest.approx(math.log(e + 1))
    # a query with no valid key: zero output, lse -inf (it then weighs nothing in the merge)
    o, lse = attend(q, k, v, torch.tensor([[False, False, False]]), 1.0)
    assert torch.equal(o, torch.zeros_like(o)) and lse.item() == float("-inf")


class _Module:
    layer_idx = 1


def test_split_softmax_equals_full_attention_uneven_groups():
    g = torch.Generator().manual_seed(0)
    B, Hq, Hkv, d, layers = 6, 4, 2, 8, 2
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    # level 0: one common prefix of 5 positions (all rows); level 1: 3 prompt tails of 4 positions with left pads;
    # rows -> tails 2, 0, 2, 1, 0, 2 (uneven groups, unsorted rows); own cache: 3 generated tokens per row
    k0, v0 = [r(1, Hkv, 5, d) for _ in range(layers)], [r(1, Hkv, 5, d) for _ in range(layers)]
    k1, v1 = [r(3, Hkv, 4, d) for _ in range(layers)], [r(3, Hkv, 4, d) for _ in range(layers)]
    valid1 = torch.tensor([[False, True, True, True], [True, True, True, True], [False, False, True, True]])
    group = torch.tensor([2, 0, 2, 1, 0, 2])
    state = CascadeState([
        SharedLevel.from_groups(k0, v0, torch.ones(1, 5, dtype=torch.bool), torch.zeros(B, dtype=torch.long)),
        SharedLevel.from_groups(k1, v1, valid1, group),
    ])
    assert state.levels[1].rows.tolist() == [[1, 4, 0], [3, 0, 0], [0, 2, 5]]
    assert state.levels[1].rows_valid.tolist() == [[True, True, False], [True, False, False], [True, True, True]]
    q, kown, vown = r(B, Hq, 1, d), r(B, Hkv, 3, d), r(B, Hkv, 3, d)
    out, w = cascade_attention_forward(_Module(), q, kown, vown, None, scaling=0.3, rlcore_cascade=state)
    assert w is None and out.shape == (B, 1, Hq, d)
    L = 1
    for b in range(B):  # reference: plain softmax over [prefix, own tail (valid only), own tokens]
        K = torch.cat([k0[L][0], k1[L][group[b]][:, valid1[group[b]]], kown[b]], 1)  # (Hkv, n, d)
        V = torch.cat([v0[L][0], v1[L][group[b]][:, valid1[group[b]]], vown[b]], 1)
        K, V = K.repeat_interleave(Hq // Hkv, 0), V.repeat_interleave(Hq // Hkv, 0)
        ref = torch.softmax(q[b] @ K.transpose(-1, -2) * 0.3, -1) @ V  # (Hq, 1, d)
        torch.testing.assert_close(out[b, 0], ref[:, 0], atol=1e-5, rtol=1e-5)


def _flat(out):
    return [c for row in out for c in row]


@pytest.mark.parametrize(
    ("batch_size", "temperature"), [(None, 0.0), (None, 0.9), (5, 0.9)]
)  # batch 5 over 4 prompts x n 3: groups split across batches
def test_generator_cascade_equals_expanded_cache(model, tok, batch_size, temperature):
    head = "Evaluate the two responses for this user, step by step, then score them. " * 2
    prompts = [head + t for t in ("Pitch is high.", "0123", "The user likes short answers and clear lists.", "x")]
    params = SamplingParams(max_new_tokens=8, n=3, temperature=temperature, top_k=40, stop_token_ids=[])
    seeds = [3, 1, 4, 1] if temperature else None
    runs = {}
    for mode in ("cascade", "expand"):
        gen = HFGenerator(model, tok, batch_size=batch_size, prefix_attention=mode)
        assert gen.cascade == (mode == "cascade")
        runs[mode] = gen.generate(prompts=prompts, params=params, seeds=seeds)
    for a, b in zip(_flat(runs["cascade"]), _flat(runs["expand"])):
        assert a.token_ids == b.token_ids and a.prompt_index == b.prompt_index
        torch.testing.assert_close(a.raw_logprobs, b.raw_logprobs, atol=1e-5, rtol=0)
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)


def test_cascade_is_used_and_restores_the_attention_setting(model, tok, monkeypatch):
    import rlcore.cascade as cascade

    calls = []
    orig = cascade.attend
    monkeypatch.setattr(cascade, "attend", lambda *a, **k: (calls.append(a[1].shape), orig(*a, **k))[1])
    before = model.config._attn_implementation
    head = "Evaluate the two responses for this user, step by step, then score them. " * 2
    HFGenerator(model, tok, prefix_attention="cascade").generate(
        prompts=[head + "a", head + "bb"], params=SamplingParams(max_new_tokens=3, n=4, temperature=0))
    # 2 decode steps x 2 layers x (own tokens + common head + per-prompt tails)
    assert len(calls) == 2 * 2 * 3
    assert model.config._attn_implementation == before
    # auto: only where it spares >= CASCADE_MIN_SAVED KV elements per layer and step (tiny Qwen2: 2 kv heads x 16)
    from rlcore.rollout import CASCADE_MIN_SAVED

    assert CASCADE_MIN_SAVED == 1 << 17
    params = SamplingParams(max_new_tokens=2, n=16, temperature=0)
    for P, used in ((200, False), (300, True)):  # (16 * P - P) * 32 = 96,000 < 131,072 <= 144,000
        calls.clear()
        HFGenerator(model, tok).generate(prompt_ids=[[5] * P], params=params)
        assert bool(calls) == used, P


def test_supports_cascade(model):
    assert supports_cascade(model)

    class Wrapper(torch.nn.Module):  # a forward without **kwargs cannot carry the levels
        def __init__(self):
            super().__init__()
            self.config = model.config

        def forward(self, input_ids, attention_mask=None):
            return None

    assert not supports_cascade(Wrapper())
    with pytest.raises(ValueError, match="prefix_attention='cascade' needs"):
        HFGenerator(Wrapper(), prefix_attention="cascade", device="cpu")
    with pytest.raises(ValueError, match="prefix_attention must be"):
        HFGenerator(model, prefix_attention="paged")


@pytest.mark.gpu
def test_cuda_cascade_equals_expanded_cache(tok):
    model = tiny_causal_lm(tok).cuda()
    head = "Evaluate the two responses for this user, step by step, then score them. " * 2
    prompts = [head + "Pitch is high.", head + "0123"]
    params = SamplingParams(max_new_tokens=12, n=4, stop_token_ids=[])
    runs = {}
    for mode in ("cascade", "expand"):
        gen = HFGenerator(model, tok, cache_implementation="dynamic", compile=False, prefix_attention=mode)
        assert gen.cascade == (mode == "cascade")
        runs[mode] = gen.generate(prompts=prompts, params=params, seeds=[0, 1])
    for a, b in zip(_flat(runs["cascade"]), _flat(runs["expand"])):
        assert a.token_ids == b.token_ids
        torch.testing.assert_close(a.raw_logprobs, b.raw_logprobs, atol=1e-4, rtol=0)
