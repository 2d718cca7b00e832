"""Generation and scoring go through rlcore.rollout: audio as mm_inputs, placeholders blocked, streaming infer."""

import json

import pytest
import torch
from emotionthinker.cli import app
from emotionthinker.config import InferConfig, TrainConfig
from emotionthinker.data import load_emotioncot
from emotionthinker.infer import run_inference
from emotionthinker.synth import harmonic_voice, write_wav
from emotionthinker.tiny import tiny_audio_policy
from emotionthinker.trainer import train_ptr
from rlcore.rollout import SamplingParams, make_generator, score_continuations
from rlcore.testing import recording_generators
from typer.testing import CliRunner


def _dataset(tmp_path, n=2):
    rows = []
    for i in range(n):
        write_wav(tmp_path / f"c{i}.wav", harmonic_voice(120.0 + 60 * i, 0.5 + 0.1 * i))
        rows.append({"audio_path": f"c{i}.wav", "emotion": ["sad", "angry", "happy"][i % 3]})
    p = tmp_path / "cot.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _bias_to_audio_token(policy, boost=40.0):
    """Make the random tiny model prefer <|AUDIO|> at every position (as a badly initialised head might)."""
    aud = policy.tokenizer.convert_tokens_to_ids("<|AUDIO|>")

    def hook(module, inputs, out):
        out = out.clone()
        out[..., aud] += boost
        return out

    policy.model.get_output_embeddings().register_forward_hook(hook)
    return aud


def test_training_generates_and_scores_through_rlcore_with_audio(tmp_path):
    data = _dataset(tmp_path)
    policy = tiny_audio_policy()
    cfg = TrainConfig(input=str(data), output_dir=str(tmp_path / "run"), steps=1, prompts_per_step=2, group_size=2,
                      max_new_tokens=4, schedule="constant", device="cpu")
    with recording_generators() as calls:
        train_ptr(cfg, policy=policy, records=load_emotioncot(data))
    kinds = [c.kind for c in calls]
    assert kinds == ["generate", "score"]
    gen, score = calls
    aud = policy.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    assert aud in gen.params.bad_token_ids and gen.params.n == 2
    assert gen.mm_inputs["input_features"].shape[0] == 2  # one row per clip
    assert score.mm_inputs["input_features"].shape[0] == 4  # repeated per rollout for the loss pass
    # the 0.5 s and 0.6 s clips expand to different numbers of <|AUDIO|> tokens in the prompt ids
    assert sorted(p.count(aud) for p in gen.prompt_ids) == [12, 15]


def test_scored_logprobs_equal_a_full_forward_pass():
    policy = tiny_audio_policy()
    ids, mm = policy.encode([harmonic_voice(150.0, 0.5), harmonic_voice(220.0, 0.8)])
    gen = make_generator(policy.model, policy.tokenizer)
    comps = gen.generate(prompt_ids=ids, params=SamplingParams(max_new_tokens=5), mm_inputs=mm, seeds=[3, 4])
    cont = [row[0].token_ids for row in comps]
    lps = score_continuations(policy.model, ids, cont, mm_inputs=mm)
    for i in range(2):
        full = torch.tensor([ids[i] + cont[i]])
        with torch.no_grad():
            logits = policy.model(input_ids=full, attention_mask=torch.ones_like(full),
                                  **{k: v[i: i + 1] for k, v in mm.items()}).logits[0]
        ref = torch.log_softmax(logits[len(ids[i]) - 1: -1].float(), -1).gather(-1, torch.tensor(cont[i])[:, None])
        assert torch.allclose(lps[i], ref[:, 0], atol=1e-4)
        assert torch.allclose(comps[i][0].raw_logprobs, ref[:, 0], atol=1e-4)


def test_sampled_audio_placeholder_would_crash_the_loss_pass_and_is_blocked(tmp_path):
    policy = tiny_audio_policy()
    aud = _bias_to_audio_token(policy)
    ids, mm = policy.encode([harmonic_voice(150.0, 0.5)])
    gen = make_generator(policy.model, policy.tokenizer)
    free = gen.generate(prompt_ids=ids, params=SamplingParams(max_new_tokens=4), mm_inputs=mm, seeds=[0])[0][0]
    assert free.token_ids.count(aud) == 4  # unblocked, the model samples the placeholder
    with pytest.raises(ValueError, match="audio tokens"):  # the "audio tokens 297, features 296" crash
        score_continuations(policy.model, ids, [free.token_ids], mm_inputs=mm, grad=True)
    # the training loop blocks the placeholders: it samples other tokens and the loss pass works
    data = _dataset(tmp_path)
    cfg = TrainConfig(input=str(data), output_dir=str(tmp_path / "run"), steps=1, prompts_per_step=2, group_size=2,
                      max_new_tokens=4, schedule="constant", device="cpu")
    out = train_ptr(cfg, policy=policy, records=load_emotioncot(data))
    h = out["history"][0]
    assert h["placeholder_sampled"] == 0 and h["completion_len"] == 4 and h["loss"] == h["loss"]  # not NaN


def test_backend_vllm_without_vllm_is_one_line_exit_2(tmp_path):
    import importlib.util

    assert importlib.util.find_spec("vllm") is None
    data = _dataset(tmp_path)
    runner = CliRunner()
    for argv in (["infer", "--input", str(data), "--output", str(tmp_path / "p.jsonl"), "--backend", "vllm"],
                 ["train", "--input", str(data), "--output-dir", str(tmp_path / "r"), "--backend", "vllm",
                  "--device", "cpu"]):
        res = runner.invoke(app, argv)
        assert res.exit_code == 2, res.output
        assert "vllm" in res.output.lower() and "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) == 1


def test_infer_streams_and_a_rerun_writes_only_the_missing_records(tmp_path):
    data = _dataset(tmp_path, n=3)
    policy = tiny_audio_policy()
    full = tmp_path / "full.jsonl"
    cfg = InferConfig(input=str(data), output=str(full), max_new_tokens=4, batch_size=1, device="cpu")
    assert run_inference(cfg, policy=policy) == {"written": 3, "skipped": 0}
    lines = full.read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["line1", "line2", "line3"]
    part = tmp_path / "part.jsonl"  # a run killed after two records, in the middle of writing the third
    part.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:17])
    with recording_generators() as calls:
        res = run_inference(InferConfig(input=str(data), output=str(part), max_new_tokens=4, batch_size=1,
                                        device="cpu"), policy=policy)
    assert res == {"written": 1, "skipped": 2} and len(calls) == 1 and len(calls[0].prompt_ids) == 1
    assert part.read_text() == full.read_text()
    assert run_inference(cfg, policy=policy) == {"written": 0, "skipped": 3}


def test_rewards_are_combined_with_none_skipped():
    from emotionthinker.config import PTRConfig
    from emotionthinker.rewards import accuracy_reward, get_ptr_reasoning_reward
    from emotionthinker.trainer import ptr_step
    from rlcore.testing import ScriptedGenerator

    policy = tiny_audio_policy()
    texts = ["<think>a</think><answer>sad</answer>", "sad", "<think>b</think><answer>happy</answer>", "x"]
    gen = ScriptedGenerator(texts, policy.tokenizer)

    def thinks(prompts, completions, **kw):  # a reward that abstains (None) where it does not apply
        return [1.0 if "<think>" in c else None for c in completions]

    cfg = TrainConfig(input="unused.jsonl", group_size=2, max_new_tokens=16, device="cpu")
    reason = get_ptr_reasoning_reward("prosody-rubric", PTRConfig(schedule="step", t0=99), group_size=2)
    opt = torch.optim.AdamW(policy.model.parameters(), lr=1e-3)
    batch = [{"audio_path": "a.wav", "emotion": "sad"}, {"audio_path": "b.wav", "emotion": "sad"}]
    audios = [harmonic_voice(150.0, 0.5), harmonic_voice(200.0, 0.5)]
    raw = ptr_step(policy, policy.model, gen, opt, batch, audios, cfg, [thinks, accuracy_reward, reason],
                   [2.0, 1.0, 1.0], reason, step=0, seeds=[0, 2])
    # 2*1 + 1 + 0 | None skipped: 0 + 0 | 2*1 + 0 + 0 | None skipped: 0
    assert raw["rewards"] == [3.0, 0.0, 2.0, 0.0]
    assert raw["format"] == [1.0, None, 1.0, None]
