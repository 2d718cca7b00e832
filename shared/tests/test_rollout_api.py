"""The generation API items E1-E6, E8, E10: bad ids, per-row seeds, multimodal prefill inputs, chat messages,
scoring with grad / mm inputs, make_generator, recording fakes, shared prefill. Every log-prob a path returns is
checked against a separate full forward pass (fp32, 1e-4)."""

import sys

import pytest
import torch
from rlcore.rollout import (
    BACKEND_HELP,
    BACKENDS,
    BackendUnavailableError,
    HFGenerator,
    SamplingParams,
    make_generator,
    process_logits,
    score_continuations,
)
from rlcore.testing import (
    GenerateCall,
    ScriptedGenerator,
    TableLM,
    recording_generators,
)


def full_logprobs(model, prompt_ids, cont_ids, temperature=1.0, top_k=0, top_p=1.0, bad=None, **kw):
    """Raw and sampling log-probs of ``cont_ids`` from one full forward pass over prompt + continuation."""
    ids = torch.tensor([list(prompt_ids) + list(cont_ids)])
    with torch.no_grad():
        logits = model(ids, **kw).logits[0, len(prompt_ids) - 1: -1].float()
    idx = torch.tensor(cont_ids)[:, None]
    raw = torch.log_softmax(logits, -1).gather(-1, idx).squeeze(-1)
    samp = torch.log_softmax(process_logits(logits, temperature, top_k, top_p, bad), -1).gather(-1, idx).squeeze(-1)
    return raw, samp


def assert_logprobs_exact(model, prompt_ids, comp, params, **kw):
    raw, samp = full_logprobs(model, prompt_ids, comp.token_ids, params.temperature, params.top_k, params.top_p,
                              params.bad_token_ids, **kw)
    torch.testing.assert_close(comp.raw_logprobs, raw, atol=1e-4, rtol=0)
    if params.temperature > 0:
        torch.testing.assert_close(comp.logprobs, samp, atol=1e-4, rtol=0)


class BoostedLM(torch.nn.Module):
    """The tiny LM with +``boost`` added to the logits of ``ids``: those tokens hold ~all the probability mass."""

    def __init__(self, inner, ids, boost=40.0):
        super().__init__()
        self.inner, self.config = inner, inner.config
        self.register_buffer("bias", torch.zeros(inner.config.vocab_size).index_fill(0, torch.tensor(ids), boost))

    @property
    def device(self):
        return self.inner.device

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=None, logits_to_keep=0):
        out = self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                         use_cache=use_cache, logits_to_keep=logits_to_keep)
        out.logits = out.logits + self.bias
        return out


class AudioLM(torch.nn.Module):
    """A Qwen2-Audio-like wrapper: positions holding ``audio_id`` take their input embedding from ``audio (B, H)``.

    The KV cache therefore depends on the audio, and a prefill without it (or with the wrong row's) fails or
    changes the numbers. Every call is recorded as ``(input shape, audio or None)``.
    """

    def __init__(self, inner, audio_id):
        super().__init__()
        self.inner, self.config, self.audio_id = inner, inner.config, audio_id
        self.calls = []

    @property
    def device(self):
        return self.inner.device

    @property
    def dtype(self):
        return self.inner.dtype

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=None, logits_to_keep=0,
                audio=None):
        self.calls.append((tuple(input_ids.shape), None if audio is None else audio.clone()))
        emb = self.inner.get_input_embeddings()(input_ids)
        slots = input_ids == self.audio_id
        if bool(slots.any()):
            assert audio is not None and audio.shape[0] == input_ids.shape[0], "audio placeholders without features"
            emb = torch.where(slots[..., None], audio[:, None, :].to(emb.dtype), emb)
        return self.inner(inputs_embeds=emb, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
                          use_cache=use_cache, logits_to_keep=logits_to_keep)


# ------------------------------------------------------------------ E1 bad_token_ids
def test_bad_token_ids_never_sampled_even_with_all_the_mass(model, tok):
    bad = [5, 17, 42]
    lm = BoostedLM(model, bad)
    pids = tok("The quick brown").input_ids
    with torch.no_grad():  # the boost really puts ~all the mass on the bad ids
        p_bad = torch.softmax(lm(torch.tensor([pids])).logits[0, -1], -1)[bad].sum()
    assert p_bad > 0.999
    g = HFGenerator(lm, tok)
    for params in (SamplingParams(max_new_tokens=10, n=8, seed=0, bad_token_ids=bad, stop_token_ids=[]),
                   SamplingParams(max_new_tokens=10, n=4, temperature=0.7, top_k=3, top_p=0.9, seed=1,
                                  bad_token_ids=bad, stop_token_ids=[])):
        for seeds in (None, [11]):
            out = g.generate(prompt_ids=[pids], params=params, seeds=seeds)[0]
            for c in out:
                assert len(c.token_ids) == 10 and not set(c.token_ids) & set(bad)
                assert_logprobs_exact(lm, pids, c, params)
                assert float(c.raw_logprobs.max()) < -30  # the raw model would almost surely have picked a bad id
    greedy = g.generate(prompt_ids=[pids], params=SamplingParams(max_new_tokens=6, temperature=0, bad_token_ids=bad,
                                                                 stop_token_ids=[]))[0][0]
    assert not set(greedy.token_ids) & set(bad)
    # greedy with bad ids = argmax over the allowed ids = plain greedy of the unboosted model
    plain = HFGenerator(model, tok).generate(prompt_ids=[pids], params=SamplingParams(
        max_new_tokens=6, temperature=0, bad_token_ids=bad, stop_token_ids=[]))[0][0]
    assert greedy.token_ids == plain.token_ids


def test_process_logits_bad_ids_masked_before_top_k():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    x = process_logits(logits, top_k=2, bad_token_ids=[0])
    assert torch.isinf(x).tolist() == [[True, False, False, True]]  # the bad id takes no top-k slot
    probs = torch.softmax(x, -1)[0]
    torch.testing.assert_close(probs[1:3], torch.tensor([0.3, 0.15]) / 0.45)


def test_bad_ids_errors(model, tok):
    with pytest.raises(ValueError, match="vocabulary has"):
        HFGenerator(model, tok).generate(prompts=["a"], params=SamplingParams(bad_token_ids=[10**6]))
    with pytest.raises(ValueError, match=">= 0"):
        SamplingParams(bad_token_ids=[-1])


# ------------------------------------------------------------------ E2 per-row seeds
def test_per_row_seeds_independent_of_batch_composition(model, tok):
    P, Q = tok("The quick brown").input_ids, tok("<think>3+4").input_ids
    params = SamplingParams(max_new_tokens=12, n=2, top_p=0.95, stop_token_ids=[])

    def ids(out):
        return [c.token_ids for c in out]

    alone = HFGenerator(model, tok).generate(prompt_ids=[P], params=params, seeds=[7])[0]
    with_other = HFGenerator(model, tok).generate(prompt_ids=[Q, P], params=params, seeds=[3, 7])[1]
    bs1 = HFGenerator(model, tok, batch_size=1).generate(prompt_ids=[Q, P], params=params, seeds=[3, 7])[1]
    bs3 = HFGenerator(model, tok, batch_size=3).generate(prompt_ids=[Q, P], params=params, seeds=[3, 7])[1]
    doubled = HFGenerator(model, tok).generate(prompt_ids=[P], params=SamplingParams(
        max_new_tokens=12, n=4, top_p=0.95, stop_token_ids=[]), seeds=[7])[0]
    assert ids(alone) == ids(with_other) == ids(bs1) == ids(bs3) == ids(doubled[:2])
    assert alone[0].token_ids != alone[1].token_ids  # sample j draws from seed + j: the rows differ
    for a, b in zip(alone, bs1):
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-5, rtol=0)
    for c in alone + doubled:
        assert_logprobs_exact(model, P, c, params)
    # a different seed gives different samples; seed 8 sample 0 == seed 7 sample 1 (seeds[i] + j)
    s8 = HFGenerator(model, tok).generate(prompt_ids=[P], params=params, seeds=[8])[0]
    assert s8[0].token_ids == alone[1].token_ids and s8[1].token_ids != alone[1].token_ids


def test_per_row_seed_sampling_matches_the_distribution():
    lm = TableLM(vocab_size=4, max_len=4, seed=1)
    exact = torch.softmax(lm.table[1, 2], -1)  # next-token distribution after prompt [0, 2]
    out = HFGenerator(lm).generate(prompt_ids=[[0, 2]], params=SamplingParams(max_new_tokens=1, n=4000),
                                   seeds=[0])[0]
    freq = torch.bincount(torch.tensor([c.token_ids[0] for c in out]), minlength=4).float() / 4000
    assert (freq - exact).abs().max() < 0.03, (freq, exact)  # 4000 draws: sd <= 0.008


def test_seeds_errors(model, tok):
    g = HFGenerator(model, tok)
    with pytest.raises(ValueError, match="one seed per prompt"):
        g.generate(prompts=["a", "b"], seeds=[1])
    with pytest.raises(ValueError, match="not both"):
        g.generate(prompts=["a"], seeds=[1], generator=torch.Generator())


def test_constructor_seed_makes_runs_reproducible(model, tok):
    p = SamplingParams(max_new_tokens=6, n=2)
    a = HFGenerator(model, tok, seed=5).generate(prompts=["hi"], params=p)
    b = HFGenerator(model, tok, seed=5).generate(prompts=["hi"], params=p)
    assert [c.token_ids for c in a[0]] == [c.token_ids for c in b[0]]


# ------------------------------------------------------------------ E3 mm_inputs
@pytest.mark.parametrize("share", [False, True])
def test_mm_inputs_reach_the_prefill_and_are_repeated_for_n(model, tok, share):
    A = tok.convert_tokens_to_ids("<|im_start|>")
    lm = AudioLM(model, A)
    P0 = tok("Listen:").input_ids + [A] * 3 + tok(" emotion?").input_ids
    P1 = tok("Hear").input_ids + [A] * 3 + tok(" pitch").input_ids
    audio = torch.randn(2, model.config.hidden_size, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(max_new_tokens=5, n=2, bad_token_ids=[A], stop_token_ids=[])
    g = HFGenerator(lm, tok, batch_size=3, share_prefill=share)
    out = g.generate(prompt_ids=[P0, P1], params=params, mm_inputs={"audio": audio}, seeds=[1, 2])
    prefills = [(shape, a) for shape, a in lm.calls if shape[1] > 1]
    # rows (0,0) (0,1) (1,0) | (1,1): the first chunk holds prompt 0 twice and prompt 1 once
    if share:
        assert [s[0] for s, _ in prefills] == [2, 1]
        torch.testing.assert_close(prefills[0][1], audio)
        torch.testing.assert_close(prefills[1][1], audio[1:])
    else:
        assert [s[0] for s, _ in prefills] == [3, 1]
        torch.testing.assert_close(prefills[0][1], audio[[0, 0, 1]])
        torch.testing.assert_close(prefills[1][1], audio[[1]])
    assert all(a is None for shape, a in lm.calls if shape[1] == 1)  # decode steps: prefill only
    for i, (pids, row) in enumerate(zip([P0, P1], out)):
        for c in row:
            assert_logprobs_exact(lm, pids, c, params, audio=audio[i:i + 1])
    # the audio matters, and prompt 1 alone with its own audio gives the same samples
    alone = HFGenerator(lm, tok).generate(prompt_ids=[P1], params=params, mm_inputs={"audio": audio[1:]}, seeds=[2])
    assert [c.token_ids for c in alone[0]] == [c.token_ids for c in out[1]]
    other = HFGenerator(lm, tok).generate(prompt_ids=[P1], params=params, mm_inputs={"audio": -audio[1:]}, seeds=[2])
    assert not torch.allclose(other[0][0].raw_logprobs, alone[0][0].raw_logprobs, atol=1e-3)


def test_mm_inputs_errors(model, tok):
    g = HFGenerator(model, tok)
    with pytest.raises(ValueError, match=r"mm_inputs\['audio'\].*expected 2"):
        g.generate(prompts=["a", "b"], mm_inputs={"audio": torch.zeros(3, 4)})
    with pytest.raises(ValueError, match="must be a tensor"):
        g.generate(prompts=["a"], mm_inputs={"audio": [1.0]})


# ------------------------------------------------------------------ E4 messages
def test_messages_use_the_chat_template(model, tok):
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    expected = tok("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n",
                   add_special_tokens=False).input_ids
    params = SamplingParams(max_new_tokens=4, temperature=0)
    with recording_generators() as calls:
        out = HFGenerator(model, tok).generate(messages=[conv], params=params)
    assert calls[0].prompt_ids == [expected]
    ref = HFGenerator(model, tok).generate(prompt_ids=[expected], params=params)
    assert out[0][0].token_ids == ref[0][0].token_ids
    with pytest.raises(ValueError, match="exactly one"):
        HFGenerator(model, tok).generate(prompts=["a"], messages=[conv])
    import copy

    plain = copy.deepcopy(tok)
    plain.chat_template = None
    with pytest.raises(ValueError, match="chat template"):
        HFGenerator(model, plain).generate(messages=[conv])
    with pytest.raises(ValueError, match=r"messages\[0\]"):
        HFGenerator(model, tok).generate(messages=["not a conversation"])


# ------------------------------------------------------------------ E5 score_continuations
def test_score_continuations_grad_keeps_the_graph(model, tok):
    ps = [tok("The quick").input_ids, tok("ab").input_ids]
    cs = [tok(" brown fox").input_ids, tok(" cd").input_ids]
    model.zero_grad()
    lps = score_continuations(model, ps, cs, grad=True)
    assert all(lp.requires_grad for lp in lps)
    loss = -sum(lp.sum() for lp in lps)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    model.zero_grad()
    plain = score_continuations(model, ps, cs)
    for p, c, a, b in zip(ps, cs, lps, plain):
        assert not b.requires_grad
        raw, _ = full_logprobs(model, p, c)
        torch.testing.assert_close(a.detach(), raw, atol=1e-4, rtol=0)
        torch.testing.assert_close(b, raw, atol=1e-4, rtol=0)


def test_score_continuations_mm_inputs(model, tok):
    A = tok.convert_tokens_to_ids("<|im_start|>")
    lm = AudioLM(model, A)
    P = tok("Listen:").input_ids + [A] * 2
    cs = [tok(" happy").input_ids, tok(" sad tone").input_ids]
    audio = torch.randn(2, model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    lps = score_continuations(lm, [P, P], cs, mm_inputs={"audio": audio}, batch_size=1)
    for i, (c, lp) in enumerate(zip(cs, lps)):
        raw, _ = full_logprobs(lm, P, c, audio=audio[i:i + 1])
        torch.testing.assert_close(lp, raw, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="expected 2"):
        score_continuations(lm, [P, P], cs, mm_inputs={"audio": audio[:1]})


# ------------------------------------------------------------------ E6 make_generator
def test_make_generator_hf(model, tok):
    g = make_generator(model, tok, backend="hf", batch_size=4, seed=3)
    assert isinstance(g, HFGenerator) and g.batch_size == 4
    a = g.generate(prompts=["hi"], params=SamplingParams(max_new_tokens=5))
    b = make_generator(model, tok, seed=3).generate(prompts=["hi"], params=SamplingParams(max_new_tokens=5))
    assert a[0][0].token_ids == b[0][0].token_ids
    with pytest.raises(ValueError, match="needs a loaded model"):
        make_generator("some/model", tok)


def test_make_generator_errors(model, tok, monkeypatch):
    assert BACKENDS == ("hf", "vllm")
    assert set(BACKEND_HELP) == {"backend", "tensor_parallel_size", "gpu_memory_utilization"}
    with pytest.raises(ValueError, match=r"unknown backend 'sglang'; choose one of: hf, vllm"):
        make_generator(model, tok, backend="sglang")
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, installed or not
    with pytest.raises(BackendUnavailableError) as e:
        make_generator(model, tok, backend="vllm")
    assert isinstance(e.value, ValueError)
    assert str(e.value) == "the vllm backend needs vLLM: pip install 'rlcore[vllm]'"
    with pytest.raises(ValueError, match="tensor_parallel_size"):
        make_generator(model, tok, backend="vllm", tensor_parallel_size=0)
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        make_generator(model, tok, backend="vllm", gpu_memory_utilization=1.5)


def test_backend_error_is_one_line_exit_2_in_a_cli(model, tok, monkeypatch):
    from rlcore.cli import config_command
    from typer.testing import CliRunner

    monkeypatch.setitem(sys.modules, "vllm", None)

    import dataclasses

    import typer

    @dataclasses.dataclass
    class Cfg:
        backend: str = "hf"

    app = typer.Typer()

    @config_command(app, "gen", Cfg)
    def gen(cfg: Cfg):
        make_generator(model, tok, backend=cfg.backend)

    res = CliRunner().invoke(app, ["--backend", "vllm"])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert lines == ["error: the vllm backend needs vLLM: pip install 'rlcore[vllm]'"]
    assert "Traceback" not in res.output


# ------------------------------------------------------------------ E8 recording + scripted
def test_recording_generators_records_generate_and_score(model, tok):
    params = SamplingParams(max_new_tokens=3, n=2, seed=0)
    with recording_generators() as calls:
        HFGenerator(model, tok).generate(prompts=["hi"], params=params)
        score_continuations(model, [[1, 2]], [[3]])
    assert [c.kind for c in calls] == ["generate", "score"]
    assert calls[0] == GenerateCall("generate", [tok("hi").input_ids], params, None)
    assert calls[1].prompt_ids == [[1, 2]] and calls[1].continuation_ids == [[3]] and calls[1].params is None
    HFGenerator(model, tok).generate(prompts=["hi"], params=params)
    assert len(calls) == 2  # nothing recorded after the block


def test_scripted_generator(tok):
    g = ScriptedGenerator(["<answer>4</answer> done", "no"], tok)
    with recording_generators() as calls:
        out = g.generate(prompts=["q1", "q2"], params=SamplingParams(n=2, stop=["</answer>"]))
    assert [[c.text for c in row] for row in out] == [["<answer>4", "no"], ["<answer>4", "no"]]
    assert [c.finish_reason for c in out[0]] == ["stop", "eos"]
    assert out[0][1].token_ids == tok("no", add_special_tokens=False).input_ids
    assert out[0][1].logprobs.tolist() == [0.0] * len(out[0][1].token_ids)
    assert calls[0].kind == "generate" and len(calls[0].prompt_ids) == 2
    echo = ScriptedGenerator(lambda p: p.upper() + " and more words", tok)
    r = echo.generate(prompt_ids=[tok("abc").input_ids], params=SamplingParams(max_new_tokens=2))[0][0]
    assert r.finish_reason == "length" and len(r.token_ids) == 2
    assert r.text == tok.decode(tok("ABC and more words").input_ids[:2])
    with pytest.raises(ValueError, match="at least one"):
        ScriptedGenerator([], tok)


def test_backend_names_are_torch_free_and_re_exported():
    import subprocess

    import rlcore.backends as b
    import rlcore.rollout as r

    assert r.BACKEND_HELP is b.BACKEND_HELP and r.BackendUnavailableError is b.BackendUnavailableError
    code = "import sys, rlcore.backends; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
