import pytest
import torch
from rlcore.lm import lm_forward
from rlcore.rollout import (
    HFGenerator,
    SamplingParams,
    VLLMGenerator,
    process_logits,
    score_continuations,
    selective_log_softmax,
)
from rlcore.testing import TableLM, tiny_causal_lm


def _full_forward_logprobs(model, prompt_ids, cont_ids, temperature=1.0, top_k=0, top_p=1.0):
    ids = torch.tensor([prompt_ids + cont_ids])
    logits = model(ids).logits[0, len(prompt_ids) - 1: -1]
    raw = torch.log_softmax(logits.float(), -1).gather(-1, torch.tensor(cont_ids)[:, None]).squeeze(-1)
    samp = torch.log_softmax(process_logits(logits, temperature, top_k, top_p), -1)
    return raw, samp.gather(-1, torch.tensor(cont_ids)[:, None]).squeeze(-1)


def test_logprobs_match_full_forward(model, tok):
    params = SamplingParams(max_new_tokens=12, n=3, temperature=0.7, top_k=50, top_p=0.9, seed=0)
    out = HFGenerator(model, tok).generate(prompts=["The quick brown", "<think>3+4"], params=params)
    assert [len(o) for o in out] == [3, 3]
    for o, prompt in zip(out, ["The quick brown", "<think>3+4"]):
        pids = tok(prompt).input_ids
        for c in o:
            raw, samp = _full_forward_logprobs(model, pids, c.token_ids, 0.7, 50, 0.9)
            torch.testing.assert_close(c.raw_logprobs, raw, atol=1e-4, rtol=0)
            torch.testing.assert_close(c.logprobs, samp, atol=1e-4, rtol=0)
            assert (c.logprobs >= c.raw_logprobs - 1e-4).float().mean() > 0  # filtering renormalises upward


def test_seeded_generation_is_reproducible(model, tok):
    g = HFGenerator(model, tok)
    p = SamplingParams(max_new_tokens=8, n=2, seed=123)
    a = g.generate(prompts=["hello"], params=p)
    b = g.generate(prompts=["hello"], params=p)
    assert [c.token_ids for c in a[0]] == [c.token_ids for c in b[0]]
    assert a[0][0].token_ids != a[0][1].token_ids or a[0][0].raw_logprobs.sum() == a[0][1].raw_logprobs.sum()


def test_continue_from_prefix_same_distribution(model, tok):
    g = HFGenerator(model, tok)
    pids = tok("Question: 2+2").input_ids
    whole = g.generate(prompt_ids=[pids], params=SamplingParams(max_new_tokens=10, temperature=0))[0][0]
    k = 4
    cont = g.generate(prompt_ids=[pids + whole.token_ids[:k]],
                      params=SamplingParams(max_new_tokens=6, temperature=0))[0][0]
    assert cont.token_ids == whole.token_ids[k:]
    torch.testing.assert_close(cont.raw_logprobs, whole.raw_logprobs[k:], atol=1e-4, rtol=0)
    # sampled: the continuation's per-token log-probs equal a fresh scoring of the same tokens given the prefix
    s = g.generate(prompt_ids=[pids + whole.token_ids[:k]], params=SamplingParams(max_new_tokens=6, seed=3))[0][0]
    torch.testing.assert_close(score_continuations(model, [pids + whole.token_ids[:k]], [s.token_ids])[0],
                               s.raw_logprobs, atol=1e-4, rtol=0)


def test_mixed_length_batch_equals_single(model, tok):
    g = HFGenerator(model, tok)
    greedy = SamplingParams(max_new_tokens=6, temperature=0)
    batch = g.generate(prompts=["a", "The quick brown fox jumps"], params=greedy)
    single = g.generate(prompts=["The quick brown fox jumps"], params=greedy)
    assert batch[1][0].token_ids == single[0][0].token_ids


def test_static_cache_equals_dynamic(model, tok):
    greedy = SamplingParams(max_new_tokens=8, temperature=0)
    a = HFGenerator(model, tok, cache_implementation="dynamic").generate(prompts=["hi", "The quick"], params=greedy)
    b = HFGenerator(model, tok, cache_implementation="static").generate(prompts=["hi", "The quick"], params=greedy)
    assert [c.token_ids for o in a for c in o] == [c.token_ids for o in b for c in o]


def test_stop_strings_cut_exactly(model, tok):
    g = HFGenerator(model, tok)
    free = g.generate(prompts=["The"], params=SamplingParams(max_new_tokens=30, seed=5, stop_token_ids=[]))[0][0]
    assert len(free.text) > 6
    stop = free.text[4:6]  # a string we know appears
    first = free.text.find(stop)
    cut = g.generate(prompts=["The"], params=SamplingParams(max_new_tokens=30, seed=5, stop=[stop],
                                                              stop_token_ids=[]))[0][0]
    assert cut.finish_reason == "stop"
    assert cut.text == free.text[:first]
    assert stop in tok.decode(cut.token_ids) and stop not in tok.decode(cut.token_ids[:-1])
    assert len(cut.logprobs) == len(cut.token_ids) == len(cut.raw_logprobs)


def test_eos_ends_and_is_kept():
    lm = TableLM(vocab_size=5, max_len=16, eos_token_id=4, seed=2)
    out = HFGenerator(lm).generate(prompt_ids=[[0, 1]], params=SamplingParams(max_new_tokens=10, n=16, seed=0))[0]
    ended = [c for c in out if c.finish_reason == "eos"]
    assert ended and all(c.token_ids[-1] == 4 and 4 not in c.token_ids[:-1] for c in ended)
    for c in out:  # no-cache model: re-encoding path; log-probs exact
        assert abs(lm.exact_logprob([0, 1], c.token_ids) - float(c.raw_logprobs.sum())) < 1e-4


def test_bad_input(model, tok):
    g = HFGenerator(model, tok)
    with pytest.raises(ValueError, match="exactly one"):
        g.generate(prompts=["a"], prompt_ids=[[1]])
    with pytest.raises(ValueError, match="empty"):
        g.generate(prompt_ids=[[]])
    with pytest.raises(ValueError, match="context"):
        g.generate(prompt_ids=[[1] * 10], params=SamplingParams(max_new_tokens=5000))
    with pytest.raises(ValueError, match="need a tokenizer"):
        HFGenerator(model).generate(prompt_ids=[[1]], params=SamplingParams(stop=["x"]))
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)


def test_tokenizer_without_pad_token(model, tok):
    import copy

    t = copy.deepcopy(tok)
    t.pad_token = None
    assert t.pad_token_id is None
    out = HFGenerator(model, t).generate(prompts=["a", "bcd"], params=SamplingParams(max_new_tokens=3, seed=0))
    assert len(out) == 2  # falls back to eos as pad


def test_selective_log_softmax_matches_full():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 50, generator=g)
    idx = torch.randint(0, 50, (3, 5), generator=g)
    ref = torch.log_softmax(logits, -1).gather(-1, idx[..., None]).squeeze(-1)
    torch.testing.assert_close(selective_log_softmax(logits, idx), ref)
    torch.testing.assert_close(selective_log_softmax(logits.bfloat16(), idx), ref, atol=0.05, rtol=0)


def test_process_logits_top_k_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(process_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    # top_p 0.7: keep 0.5 and 0.3 (0.5 < 0.7, crossing token kept), drop the rest
    assert torch.isinf(process_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    torch.testing.assert_close(process_logits(logits, temperature=0.5), logits * 2)


def test_score_continuations_batched_equals_single(model, tok):
    ps = [tok("ab").input_ids, tok("The quick brown").input_ids]
    cs = [tok(" fox").input_ids, tok(" jumps over").input_ids]
    batched = score_continuations(model, ps, cs)
    for p, c, b in zip(ps, cs, batched):
        raw, _ = _full_forward_logprobs(model, p, c)
        torch.testing.assert_close(b, raw, atol=1e-5, rtol=0)
    logits, cache = lm_forward(model, torch.tensor([ps[0]]), logits_to_keep=1)
    assert logits.shape[1] == 1 and cache is not None


def test_vllm_params_mapping_without_vllm():
    kw = VLLMGenerator.vllm_sampling_kwargs(SamplingParams(max_new_tokens=7, top_k=0, n=2, stop=["</answer>"]))
    assert kw["max_tokens"] == 7 and kw["top_k"] == -1 and kw["n"] == 2 and kw["stop"] == ["</answer>"]


@pytest.mark.gpu
def test_cuda_static_cache_compiled_equals_eager_forward(tok):
    model = tiny_causal_lm(tok).cuda()
    gen = HFGenerator(model, tok)
    assert gen.static and gen.compile
    out = gen.generate(prompts=["The quick", "hi"], params=SamplingParams(max_new_tokens=16, temperature=0))
    ref = HFGenerator(model, tok, cache_implementation="dynamic", compile=False).generate(
        prompts=["The quick", "hi"], params=SamplingParams(max_new_tokens=16, temperature=0))
    assert [c.token_ids for o in out for c in o] == [c.token_ids for o in ref for c in o]
    for o in out:
        raw, _ = _full_forward_logprobs(model.cpu(), tok(["The quick", "hi"][o[0].prompt_index]).input_ids, o[0].token_ids)
        model.cuda()
        torch.testing.assert_close(o[0].raw_logprobs, raw, atol=1e-3, rtol=0)


def test_decode_attention_mask_values(model):
    """The once-built decode mask: True / 0 where a row attends, False / dtype-min on its left padding."""
    import rlcore.hf_generator as hfg

    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    m4 = hfg._decode_attention_mask(model, mask)
    assert m4.shape == (2, 1, 1, 4) and m4.dtype == torch.bool
    assert m4[:, 0, 0].tolist() == [[False, True, True, True], [True, True, True, True]]
    eager = tiny_causal_lm(attn_implementation="eager")
    add = hfg._decode_attention_mask(eager, mask)
    assert add.dtype == torch.float32
    assert add[0, 0, 0].tolist() == [torch.finfo(torch.float32).min, 0.0, 0.0, 0.0]
    # layers that do not all attend to the whole cache, or another attention kernel: the 2D mask stays
    assert hfg._decode_attention_mask(TableLM(vocab_size=5, max_len=8), mask) is None
    window = tiny_causal_lm(use_sliding_window=True, sliding_window=4, max_window_layers=0)
    assert hfg._decode_attention_mask(window, mask) is None
    other = tiny_causal_lm()
    other.config._attn_implementation = "flash_attention_2"
    assert hfg._decode_attention_mask(other, mask) is None


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_decode_with_4d_mask_equals_2d_mask(tok, attn):
    """Ragged (left-padded) prompts: the once-built 4D mask samples the same tokens with the same log-probs as the
    2D mask transformers expands in every step; the log-probs also equal a full forward of each row alone."""
    from unittest import mock

    import rlcore.hf_generator as hfg

    model = tiny_causal_lm(tok, attn_implementation=attn)
    prompts = ["a", "The quick brown fox jumps", "<think>3+4=", "hello there"]
    p = SamplingParams(max_new_tokens=10, temperature=0.8, top_k=20, top_p=0.9, stop_token_ids=[])
    gen = HFGenerator(model, tok, cache_implementation="dynamic", compile=False)
    calls = []
    real = hfg._decode_attention_mask

    def spy(m, x):
        calls.append(real(m, x))
        return calls[-1]

    with mock.patch.object(hfg, "_decode_attention_mask", spy):
        four = gen.generate(prompts=prompts, params=p, seeds=[1, 2, 3, 4])
    assert calls and calls[0] is not None and calls[0].dim() == 4  # the 4D path really ran
    with mock.patch.object(hfg, "_decode_attention_mask", lambda m, x: None):
        two = gen.generate(prompts=prompts, params=p, seeds=[1, 2, 3, 4])
    for a, b, prompt in zip(four, two, prompts):
        assert a[0].token_ids == b[0].token_ids
        torch.testing.assert_close(a[0].raw_logprobs, b[0].raw_logprobs, atol=1e-5, rtol=0)
        raw, samp = _full_forward_logprobs(model, tok(prompt).input_ids, a[0].token_ids, 0.8, 20, 0.9)
        torch.testing.assert_close(a[0].raw_logprobs, raw, atol=1e-4, rtol=0)
        torch.testing.assert_close(a[0].logprobs, samp, atol=1e-4, rtol=0)


def test_outputs_are_normal_tensors_and_the_model_trains_after(tok):
    """Decoding runs in inference mode; nothing it returns is an inference tensor, and the policy trains right after."""
    model = tiny_causal_lm(tok).train()
    out = HFGenerator(model, tok, cache_implementation="dynamic", compile=False).generate(
        prompts=["The quick", "a"], params=SamplingParams(max_new_tokens=5, seed=0, stop_token_ids=[]))
    c = out[0][0]
    assert not c.logprobs.is_inference() and not c.raw_logprobs.is_inference()
    w = torch.ones_like(c.logprobs, requires_grad=True)
    (w * c.logprobs).sum().backward()  # an inference tensor would raise here
    torch.testing.assert_close(w.grad, c.logprobs)
    ids = torch.tensor([tok("The quick").input_ids + c.token_ids])
    model(input_ids=ids, labels=ids).loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_decode_context_is_inference_mode_except_for_zero3_parameters(tok):
    from rlcore.rollout import decode_context

    model = tiny_causal_lm(tok)
    with decode_context(model):
        assert torch.is_inference_mode_enabled()
    next(model.parameters()).ds_id = 0  # how DeepSpeed ZeRO-3 marks a partitioned parameter
    with decode_context(model):
        assert not torch.is_inference_mode_enabled() and not torch.is_grad_enabled()
    with decode_context(TableLM(vocab_size=5, max_len=8)):  # an LM without parameters
        assert torch.is_inference_mode_enabled()


def _sorted_scatter_process_logits(logits, temperature=1.0, top_k=0, top_p=1.0, bad_token_ids=None):
    """The former implementation (a full sort for top-p, then a scatter back): the reference without ties."""
    x = logits.float()
    if bad_token_ids:
        x = x.index_fill(-1, torch.tensor(bad_token_ids), float("-inf"))
    x = x / (temperature if temperature > 0 else 1.0)
    if top_k and top_k < x.shape[-1]:
        x = x.masked_fill(x < torch.topk(x, top_k, dim=-1).values[..., -1:], float("-inf"))
    if top_p < 1.0:
        sorted_x, order = torch.sort(x, dim=-1, descending=True)
        probs = torch.softmax(sorted_x, dim=-1)
        drop = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, probs.cumsum(-1) - probs > top_p)
        x = x.masked_fill(drop, float("-inf"))
    return x


@pytest.mark.parametrize("vocab", [7, 384, 5000])
def test_process_logits_equals_the_sort_and_scatter_reference(vocab):
    g = torch.Generator().manual_seed(vocab)
    logits = torch.randn(6, vocab, generator=g) * 3  # continuous: no ties
    for top_k in (0, 1, 3, 50):
        for top_p in (0.3, 0.9, 0.95, 1.0):
            for bad in (None, [0, 2]):
                got = process_logits(logits, 0.8, top_k, top_p, bad)
                want = _sorted_scatter_process_logits(logits, 0.8, top_k, top_p, bad)
                assert torch.equal(torch.isinf(got), torch.isinf(want)), (top_k, top_p, bad)
                torch.testing.assert_close(got[~torch.isinf(got)], want[~torch.isinf(want)])


def test_process_logits_keeps_tokens_tied_with_the_last_kept_one():
    # probs 0.4, 0.2, 0.2, 0.2: the crossing token of top_p 0.5 is a 0.2 (mass before it 0.4); its ties stay too
    logits = torch.log(torch.tensor([[0.4, 0.2, 0.2, 0.2]]))
    assert not torch.isinf(process_logits(logits, top_p=0.5)).any()
    # top-k 2 keeps every token tied with the 2nd value; the nucleus is over all four (mass 1): same result
    assert not torch.isinf(process_logits(logits, top_k=2)).any()
    assert not torch.isinf(process_logits(logits, top_k=2, top_p=0.5)).any()
    # top_p 0.3: only the 0.4 token (mass before it 0 <= 0.3; before the next, 0.4 > 0.3)
    assert torch.isinf(process_logits(logits, top_k=2, top_p=0.3)).tolist() == [[False, True, True, True]]
    # the tied tokens left out by topk count in the nucleus mass: 0.5, 0.125 x 4; top_k 2, top_p 0.55 keeps the
    # 0.5 (before: 0) and the 0.125s (before: 0.5 <= 0.55)
    logits = torch.log(torch.tensor([[0.5, 0.125, 0.125, 0.125, 0.125]]))
    assert not torch.isinf(process_logits(logits, top_k=2, top_p=0.55)).any()
    assert torch.isinf(process_logits(logits, top_k=2, top_p=0.45)).tolist() == [[False, True, True, True, True]]
