"""E10 shared prefill: each distinct prompt is prefilled once and its KV cache expanded to its rows; the results
equal the unshared path (fp32, 1e-5), for generation (dynamic and static cache, groups split across batches) and
for score_continuations (pairs grouped by identical prompt ids)."""

import pytest
import torch
from rlcore.rollout import HFGenerator, SamplingParams, score_continuations
from rlcore.testing import tiny_causal_lm


class CountingLM(torch.nn.Module):
    """The tiny LM, recording the input shape of every forward call."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.config = inner, inner.config
        self.shapes = []

    @property
    def device(self):
        return self.inner.device

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=None, logits_to_keep=0):
        self.shapes.append(tuple(input_ids.shape))
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                          use_cache=use_cache, logits_to_keep=logits_to_keep)


def _flat(out):
    return [c for row in out for c in row]


@pytest.mark.parametrize(("cache", "batch_size"), [("dynamic", None), ("dynamic", 4), ("static", 4)])
def test_shared_prefill_equals_unshared(model, tok, cache, batch_size):
    prompts = ["The quick brown fox jumps over", "<think>3+4", "Question: Which city"]
    params = SamplingParams(max_new_tokens=6, n=3, temperature=0.8, top_k=40, stop_token_ids=[])
    runs = {}
    for share in (True, False):
        lm = CountingLM(model)
        g = HFGenerator(lm, tok, batch_size=batch_size, cache_implementation=cache, share_prefill=share)
        runs[share] = (g.generate(prompts=prompts, params=params, seeds=[1, 2, 3]), lm.shapes)
    (shared, s_shapes), (plain, p_shapes) = runs[True], runs[False]
    for a, b in zip(_flat(shared), _flat(plain)):
        assert a.token_ids == b.token_ids and a.prompt_index == b.prompt_index
        torch.testing.assert_close(a.raw_logprobs, b.raw_logprobs, atol=1e-5, rtol=0)
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
    prefill_rows = lambda shapes: sum(b for b, t in shapes if t > 1)  # noqa: E731
    # 9 rows; batches of 4 hold prompts {0,1} {1,2} {2}: 5 distinct-prompt prefills instead of 9
    assert prefill_rows(p_shapes) == 9
    assert prefill_rows(s_shapes) == (3 if batch_size is None else 5)


def test_n16_prefills_the_prompt_once(model, tok):
    lm = CountingLM(model)
    pids = tok("The quick brown fox jumps over the lazy dog. " * 4).input_ids
    out = HFGenerator(lm, tok).generate(prompt_ids=[pids], params=SamplingParams(max_new_tokens=3, n=16, seed=0))
    assert len(out[0]) == 16
    assert [s for s in lm.shapes if s[1] > 1] == [(1, len(pids))]  # one prefill row, then (16, 1) decode steps
    assert all(s == (16, 1) for s in lm.shapes[1:])


@pytest.mark.parametrize("batch_size", [None, 2])
def test_score_continuations_shared_prompts_equal_unshared(model, tok, batch_size):
    P = tok("Response A is more helpful than Response B because").input_ids
    Q = tok("<think>First add").input_ids
    ps = [P, P, Q, P, Q, P]
    cs = [tok(" it").input_ids, tok(" it follows the user").input_ids, tok(" 3 and 4").input_ids, [],
          tok(" closely.").input_ids, tok(" x").input_ids[:1]]
    lm = CountingLM(model)
    shared = score_continuations(lm, ps, cs, batch_size=batch_size)
    shapes = list(lm.shapes)
    plain = score_continuations(model, ps, cs, batch_size=batch_size, share_prompts=False)
    for a, b, c in zip(shared, plain, cs):
        assert a.shape == (len(c),)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    # and against one full forward per pair
    for p, c, a in zip(ps, cs, shared):
        if c:
            with torch.no_grad():
                logits = model(torch.tensor([p + c])).logits[0, len(p) - 1: -1]
            ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c)[:, None]).squeeze(-1)
            torch.testing.assert_close(a, ref, atol=1e-5, rtol=0)
    prompt_prefills = [s for s in shapes if s[1] in (len(P), len(Q), max(len(P), len(Q)))]
    if batch_size is None:  # one batch: the two distinct prompts are prefilled once, together
        assert prompt_prefills[0] == (2, max(len(P), len(Q)))
    assert sum(b for b, _ in prompt_prefills) < len(ps)


def test_score_continuations_grad_does_not_share(model, tok):
    P = tok("The quick").input_ids
    lm = CountingLM(model)
    out = score_continuations(lm, [P, P], [tok(" brown").input_ids, tok(" fox").input_ids], grad=True)
    assert lm.shapes[0][0] == 2 and all(o.requires_grad for o in out)


HEAD = "Response A is more helpful than Response B because it follows the user's preferences closely. "


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_common_prefix_of_distinct_prompts_prefilled_once(model, tok, cache):
    head = tok(HEAD).input_ids
    tails = [tok("Pitch is high.").input_ids, tok("0123").input_ids, [head[0]]]
    prompts = [head + t for t in tails] + [head + tails[1][:1]]  # the last is a prefix of the second one + 1 token
    params = SamplingParams(max_new_tokens=5, n=2, temperature=0.9, stop_token_ids=[])
    runs = {}
    for share in (True, False):
        lm = CountingLM(model)
        g = HFGenerator(lm, tok, cache_implementation=cache, share_prefill=share, min_shared_prefix=8)
        runs[share] = (g.generate(prompt_ids=prompts, params=params, seeds=[0, 1, 2, 3]), lm.shapes)
    (shared, shapes), (plain, _) = runs[True], runs[False]
    for a, b in zip(_flat(shared), _flat(plain)):
        assert a.token_ids == b.token_ids
        torch.testing.assert_close(a.raw_logprobs, b.raw_logprobs, atol=1e-5, rtol=0)
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
    L = _common(prompts)
    assert L >= len(head) - 1
    # the head once (1 row), then the 4 distinct tails, then 8-row decode steps
    assert shapes[0] == (1, L) and shapes[1] == (4, max(len(p) for p in prompts) - L)
    assert all(s == (8, 1) for s in shapes[2:])


def _common(prompts):
    n = 0
    while n < min(map(len, prompts)) - 1 and len({p[n] for p in prompts}) == 1:
        n += 1
    return n


def test_score_continuations_common_prefix_prefilled_once(model, tok):
    head = tok(HEAD).input_ids
    ps = [head + tok("Pitch").input_ids, head + tok("0123 sad").input_ids, head + tok("Pitch").input_ids, head]
    cs = [tok(" is high").input_ids, tok(" tone").input_ids, tok(" low").input_ids, tok(" yes").input_ids]
    lm = CountingLM(model)
    shared = score_continuations(lm, ps, cs, min_shared_prefix=8)
    L = len(head) - 1  # capped so the bare head keeps one tail token
    assert lm.shapes[0] == (1, L) and lm.shapes[1][0] == 3  # head once, then the 3 distinct tails
    plain = score_continuations(model, ps, cs, share_prompts=False)
    for p, c, a, b in zip(ps, cs, shared, plain):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
        with torch.no_grad():
            logits = model(torch.tensor([p + c])).logits[0, len(p) - 1: -1]
        ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(c)[:, None]).squeeze(-1)
        torch.testing.assert_close(a, ref, atol=1e-5, rtol=0)
    lm.shapes.clear()  # under the threshold: plain distinct-prompt prefill
    score_continuations(lm, ps, cs, min_shared_prefix=len(head) + 5)
    assert lm.shapes[0][0] == 3


@pytest.mark.gpu
def test_cuda_shared_prefill_static_compiled_equals_unshared(tok):
    model = tiny_causal_lm(tok).cuda()
    head = tok(HEAD).input_ids
    prompts = [head + tok("Pitch").input_ids, head + tok("0123").input_ids]
    params = SamplingParams(max_new_tokens=12, n=3, stop_token_ids=[])
    fast = HFGenerator(model, tok, min_shared_prefix=8)  # static cache + CUDA graphs, head and prompts shared
    assert fast.static and fast.compile
    a = fast.generate(prompt_ids=prompts, params=params, seeds=[0, 1])
    b = HFGenerator(model, tok, cache_implementation="dynamic", compile=False, share_prefill=False).generate(
        prompt_ids=prompts, params=params, seeds=[0, 1])
    for x, y in zip(_flat(a), _flat(b)):
        assert x.token_ids == y.token_ids
        torch.testing.assert_close(x.raw_logprobs, y.raw_logprobs, atol=1e-4, rtol=0)
