"""E7 VLLMGenerator: the parameter mapping and result parsing on CPU with a fake ``vllm`` module (an emulation
backed by the tiny HF model, so log-probs can be checked against a full forward pass), and the same checks on a
real vLLM engine under ``@pytest.mark.gpu``."""

import sys
import types
from types import SimpleNamespace

import pytest
import torch
from rlcore.rollout import HFGenerator, SamplingParams, VLLMGenerator, make_generator, process_logits
from rlcore.testing import recording_generators, save_tiny_causal_lm, tiny_causal_lm


def full_logprobs(model, prompt_ids, cont_ids, temperature=1.0, top_k=0, top_p=1.0, bad=None):
    ids = torch.tensor([list(prompt_ids) + list(cont_ids)], device=model.device)
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1: -1].float().cpu()
    idx = torch.tensor(cont_ids)[:, None]
    raw = torch.log_softmax(logits, -1).gather(-1, idx).squeeze(-1)
    samp = torch.log_softmax(process_logits(logits, temperature, top_k, top_p, bad), -1).gather(-1, idx).squeeze(-1)
    return raw, samp


# ------------------------------------------------------------------ the fake vllm module
class FakeSamplingParams:
    def __init__(self, **kw):
        self.kw = kw

    def __getattr__(self, name):
        return self.kw.get(name)


class FakeLLM:
    """Records its constructor kwargs and requests; samples with the tiny HF model (per-request seeds)."""

    instances: list = []

    def __init__(self, model, tok, hf_model, **kw):
        self.model, self.kw, self.tok, self.hf = model, kw, tok, hf_model
        self.requests, self.resets, self.applied = [], 0, []
        inner = SimpleNamespace(model_runner=SimpleNamespace(model=self))
        self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(driver_worker=SimpleNamespace(worker=inner)))
        self.loaded = None
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return self.tok

    def load_weights(self, weights):  # the in-process model's load_weights
        self.loaded = list(weights)

    def reset_prefix_cache(self):
        self.resets += 1

    def generate(self, requests, sps, use_tqdm=True):
        sps = sps if isinstance(sps, list) else [sps] * len(requests)
        outs = []
        for req, sp in zip(requests, sps):
            self.requests.append((req, sp))
            ids = req["prompt_token_ids"]
            if sp.prompt_logprobs is not None:  # prefill-only re-score: log-prob of every prompt token
                with torch.no_grad():
                    lp = torch.log_softmax(self.hf(torch.tensor([ids])).logits[0].float(), -1)
                plp = [None] + [{t: SimpleNamespace(logprob=float(lp[k, t]))} for k, t in enumerate(ids[1:])]
                outs.append(SimpleNamespace(prompt_logprobs=plp, outputs=[]))
                continue
            assert sp.n == 1 and sp.logprobs == 0
            bad = None
            if sp.allowed_token_ids is not None:
                bad = sorted(set(range(len(self.tok))) - set(sp.allowed_token_ids))
            params = SamplingParams(max_new_tokens=sp.max_tokens, temperature=sp.temperature, top_p=sp.top_p,
                                    top_k=max(sp.top_k, 0), stop=sp.stop, bad_token_ids=bad,
                                    stop_token_ids=[] if sp.ignore_eos else sp.stop_token_ids)
            c = HFGenerator(self.hf, self.tok).generate(prompt_ids=[ids], params=params,
                                                       seeds=None if sp.seed is None else [sp.seed])[0][0]
            stop_reason = None if c.finish_reason == "eos" else (sp.stop[0] if c.finish_reason == "stop" else None)
            o = SimpleNamespace(token_ids=c.token_ids, text=c.text,
                                logprobs=[{t: SimpleNamespace(logprob=float(lp))} for t, lp in zip(c.token_ids, c.logprobs)],
                                finish_reason="length" if c.finish_reason == "length" else "stop",
                                stop_reason=stop_reason if c.finish_reason == "stop" else (None if c.finish_reason == "length" else c.token_ids[-1]))
            outs.append(SimpleNamespace(outputs=[o], prompt_logprobs=None))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch, tok, model):
    mod = types.ModuleType("vllm")
    mod.SamplingParams = FakeSamplingParams
    mod.LLM = lambda model=None, **kw: FakeLLM(model, tok, globals()["_HF"], **kw)
    globals()["_HF"] = model
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    FakeLLM.instances.clear()
    return mod


# ------------------------------------------------------------------ CPU tests
def test_sampling_kwargs_mapping():
    kw = VLLMGenerator.vllm_sampling_kwargs(SamplingParams(max_new_tokens=7, top_k=0, n=2, stop=["</a>"], seed=4))
    assert kw == dict(n=2, temperature=1.0, top_p=1.0, top_k=-1, max_tokens=7, stop=["</a>"], stop_token_ids=None,
                      seed=4, logprobs=0)
    kw = VLLMGenerator.vllm_sampling_kwargs(SamplingParams(top_k=5, stop_token_ids=[], bad_token_ids=[1, 3]),
                                            seed=9, vocab_size=5, n=1)
    assert kw["top_k"] == 5 and kw["seed"] == 9 and kw["n"] == 1 and kw["ignore_eos"] is True
    assert kw["allowed_token_ids"] == [0, 2, 4]
    with pytest.raises(ValueError, match="vocabulary size"):
        VLLMGenerator.vllm_sampling_kwargs(SamplingParams(bad_token_ids=[1]))


def test_engine_options_and_model_reference(fake_vllm, tok, model, tmp_path):
    path = save_tiny_causal_lm(tmp_path / "m", tok)
    g = make_generator(path, backend="vllm", tensor_parallel_size=1, gpu_memory_utilization=0.35, seed=2,
                       max_model_len=256)
    assert isinstance(g, VLLMGenerator)
    llm = FakeLLM.instances[-1]
    assert llm.model == path and llm.kw == dict(tensor_parallel_size=1, gpu_memory_utilization=0.35, seed=2,
                                                 max_model_len=256, logprobs_mode="processed_logprobs")
    import os

    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # in-process engine: load_weights reaches it
    m = tiny_causal_lm(tok)
    m.name_or_path = path
    VLLMGenerator(m, tok, tensor_parallel_size=2)
    assert FakeLLM.instances[-1].model == path and FakeLLM.instances[-1].kw["tensor_parallel_size"] == 2
    with pytest.raises(ValueError, match="name or path"):
        VLLMGenerator(torch.nn.Linear(2, 2), tok)


def test_generate_logprobs_match_full_forward(fake_vllm, tok, model):
    g = VLLMGenerator("tiny", tok)
    params = SamplingParams(max_new_tokens=8, n=2, temperature=0.7, top_k=40, top_p=0.9, stop_token_ids=[])
    P = tok("The quick brown").input_ids
    out = g.generate(prompt_ids=[P], params=params, seeds=[5])
    reqs = FakeLLM.instances[-1].requests
    assert [sp.seed for _, sp in reqs[:2]] == [5, 6]  # per-request seed = seeds[i] + j
    assert reqs[0][0] == {"prompt_token_ids": P}
    assert reqs[2][1].prompt_logprobs == 0 and reqs[2][0]["prompt_token_ids"] == P + out[0][0].token_ids
    for c in out[0]:
        assert c.prompt_index == 0 and len(c.token_ids) == 8 and c.finish_reason == "length"
        raw, samp = full_logprobs(model, P, c.token_ids, 0.7, 40, 0.9)
        torch.testing.assert_close(c.raw_logprobs, raw, atol=1e-4, rtol=0)
        torch.testing.assert_close(c.logprobs, samp, atol=1e-4, rtol=0)
    # per-row seeds: P next to another prompt and with n doubled gives the same samples; HF agrees too
    both = g.generate(prompt_ids=[tok("hi").input_ids, P], params=params, seeds=[1, 5])[1]
    n4 = g.generate(prompt_ids=[P], params=SamplingParams(max_new_tokens=8, n=4, temperature=0.7, top_k=40, top_p=0.9,
                                                          stop_token_ids=[]), seeds=[5])[0]
    hf = HFGenerator(model, tok).generate(prompt_ids=[P], params=params, seeds=[5])[0]
    assert [c.token_ids for c in out[0]] == [c.token_ids for c in both] == [c.token_ids for c in n4[:2]] \
        == [c.token_ids for c in hf]


def test_generate_prefix_messages_bad_ids_and_seed_fallback(fake_vllm, tok, model):
    g = VLLMGenerator("tiny", tok)
    conv = [{"role": "user", "content": "2+2?"}]
    with recording_generators() as calls:
        out = g.generate(messages=[conv], params=SamplingParams(max_new_tokens=4, seed=3, bad_token_ids=[0, 5]))
    expected = tok("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False).input_ids
    assert calls[0].kind == "generate" and calls[0].prompt_ids == [expected]
    sp = FakeLLM.instances[-1].requests[0][1]
    assert sp.seed == 3 and 0 not in sp.allowed_token_ids and 5 not in sp.allowed_token_ids
    assert len(sp.allowed_token_ids) == len(tok) - 2 and not {0, 5} & set(out[0][0].token_ids)
    # prefix continuation: prompt + prefix go in as one token-id prompt
    pre = expected + out[0][0].token_ids[:2]
    g.generate(prompt_ids=[pre], params=SamplingParams(max_new_tokens=2))
    assert FakeLLM.instances[-1].requests[-2][0]["prompt_token_ids"] == pre
    assert FakeLLM.instances[-1].requests[-2][1].seed is None  # no seed anywhere: unseeded


def test_finish_reasons(fake_vllm, tok, model):
    g = VLLMGenerator("tiny", tok)
    free = g.generate(prompts=["The"], params=SamplingParams(max_new_tokens=12, stop_token_ids=[]), seeds=[0])[0][0]
    stop = free.text[2:4]
    cut = g.generate(prompts=["The"], params=SamplingParams(max_new_tokens=12, stop=[stop], stop_token_ids=[]),
                     seeds=[0])[0][0]
    assert cut.finish_reason == "stop"
    eos = g.generate(prompts=["The"], params=SamplingParams(max_new_tokens=12, stop_token_ids=[free.token_ids[0]]),
                     seeds=[0])[0][0]
    assert eos.finish_reason == "eos" and eos.token_ids == free.token_ids[:1]


def test_mm_inputs_and_errors(fake_vllm, tok):
    g = VLLMGenerator("tiny", tok)
    audio = [torch.zeros(160), torch.ones(80)]
    g.generate(prompt_ids=[[1, 2], [3]], params=SamplingParams(max_new_tokens=2, n=2), mm_inputs={"audio": audio})
    reqs = FakeLLM.instances[-1].requests
    assert [r["multi_modal_data"]["audio"] is audio[i] for (r, _), i in zip(reqs[:4], [0, 0, 1, 1])] == [True] * 4
    with pytest.raises(ValueError, match="raw media"):
        g.generate(prompt_ids=[[1]], mm_inputs={"input_features": torch.zeros(1, 2), "feature_attention_mask": 1})
    with pytest.raises(ValueError, match="one per prompt"):
        g.generate(prompt_ids=[[1], [2]], mm_inputs={"audio": audio[:1]})
    with pytest.raises(ValueError, match="torch.Generator"):
        g.generate(prompt_ids=[[1]], generator=torch.Generator())


def test_load_weights(fake_vllm, tok, model):
    g = VLLMGenerator("tiny", tok)
    llm = FakeLLM.instances[-1]
    trained = tiny_causal_lm(tok, seed=1)
    n = g.load_weights(trained)
    state = trained.state_dict()
    assert n == len(state) and [k for k, _ in llm.loaded] == list(state)
    assert all(torch.equal(v, state[k]) for k, v in llm.loaded) and llm.resets == 1
    # no in-process model (tensor parallel): LLM.apply_model runs load_weights in every worker
    llm.llm_engine = None
    got = []
    llm.apply_model = lambda fn: got.append(fn(SimpleNamespace(load_weights=lambda w: list(w))))
    g.load_weights(trained)
    assert [k for k, _ in got[0]] == list(state) and all(v.device.type == "cpu" for _, v in got[0])
    with pytest.raises(ValueError, match="nn.Module"):
        g.load_weights(object())


# ------------------------------------------------------------------ real vLLM (GPU)
@pytest.mark.gpu
def test_real_vllm_logprobs_seeds_and_weight_reload(tok, tmp_path):
    pytest.importorskip("vllm")
    shape = dict(hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=2)  # head_dim 64
    path = save_tiny_causal_lm(tmp_path / "m", tok, **shape)
    model = tiny_causal_lm(tok, **shape).cuda()
    g = VLLMGenerator(path, tok, gpu_memory_utilization=0.3, dtype="float32", max_model_len=512, enforce_eager=True,
                      seed=0)
    params = SamplingParams(max_new_tokens=12, n=2, temperature=0.7, top_k=40, top_p=0.9, stop_token_ids=[],
                            bad_token_ids=[5])
    P = tok("The quick brown").input_ids
    out = g.generate(prompt_ids=[P], params=params, seeds=[5])[0]
    for c in out:
        assert 5 not in c.token_ids
        raw, samp = full_logprobs(model, P, c.token_ids, 0.7, 40, 0.9, [5])
        torch.testing.assert_close(c.raw_logprobs, raw, atol=1e-4, rtol=0)
        torch.testing.assert_close(c.logprobs, samp, atol=1e-4, rtol=0)
    both = g.generate(prompt_ids=[tok("hi").input_ids, P], params=params, seeds=[1, 5])[1]
    assert [c.token_ids for c in out] == [c.token_ids for c in both]
    trained = tiny_causal_lm(tok, seed=1, **shape).cuda()
    g.load_weights(trained)
    c = g.generate(prompt_ids=[P], params=params, seeds=[5])[0][0]
    raw, _ = full_logprobs(trained, P, c.token_ids)
    torch.testing.assert_close(c.raw_logprobs, raw, atol=1e-4, rtol=0)
