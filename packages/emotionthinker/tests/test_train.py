"""A few GRPO-PTR steps with the tiny Qwen2-Audio on CPU: learning happened, metrics logged."""

import json

import pytest
import torch
from emotionthinker.config import TrainConfig
from emotionthinker.data import load_emotioncot
from emotionthinker.synth import harmonic_voice, write_wav
from emotionthinker.tiny import tiny_audio_policy
from emotionthinker.trainer import pad_sequences, train_ptr


def _dataset(tmp_path):
    rows = []
    for i, (f0, emo) in enumerate([(120.0, "sad"), (260.0, "angry"), (180.0, "Contempt or Disgust")]):
        write_wav(tmp_path / f"c{i}.wav", harmonic_voice(f0, 0.5))
        rows.append({"audio_path": f"c{i}.wav", "emotion": emo, "transcription": "hello there",
                     "pitch_level": "high" if f0 > 200 else "low"})
    p = tmp_path / "cot.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_pad_sequences_masks_the_padding():
    vals, mask = pad_sequences([[5, 0, 7], [1.5]])
    assert vals.tolist() == [[5, 0, 7], [1.5, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_grpo_ptr_steps_update_the_tiny_audio_policy(tmp_path):
    data = _dataset(tmp_path)
    records = load_emotioncot(data)
    assert records[2]["emotion"] == "contempt or disgust"
    policy = tiny_audio_policy()
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}

    class LengthJudge:  # a judge that prefers longer traces: rewards differ inside each group
        __name__ = "length"
        calls = 0

        def __call__(self, think, answer, record):
            LengthJudge.calls += 1
            return min(1.0, len(think) / 40)

    cfg = TrainConfig(input=str(data), output_dir=str(tmp_path / "run"), steps=2, prompts_per_step=2, group_size=3,
                      max_new_tokens=8, schedule="step", t0=1, learning_rate=1e-2, beta=0.04,
                      gate_uniform_groups=False, outcome_reward="similarity", device="cpu")
    out = train_ptr(cfg, policy=policy, records=records, judge=LengthJudge())
    hist = out["history"]
    assert [h["w_t"] for h in hist] == [0.0, 1.0]  # reasoning reward switched on at t0 = 1
    assert hist[0]["judge_calls"] == 0 and hist[1]["judge_calls"] == 6  # no judge before the schedule starts
    assert out["judge_calls"] == LengthJudge.calls == 6
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in hist)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "reward" in json.loads(lines[0])
    assert hist[1]["grad_norm"] > 0
    changed = [n for n, p in policy.model.named_parameters() if not torch.equal(p, before[n])]
    assert any("audio_tower" in n for n in changed) and any("language_model" in n for n in changed)


@pytest.mark.slow
def test_lora_with_activation_checkpointing_trains_only_the_adapters(tmp_path):
    data = _dataset(tmp_path)
    policy = tiny_audio_policy()
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}

    def judge(think, answer, record):  # varied scores: non-zero advantages in every group
        return min(1.0, len(think) / 30)

    cfg = TrainConfig(input=str(data), output_dir=str(tmp_path / "run"), steps=1, prompts_per_step=2, group_size=3,
                      max_new_tokens=6, schedule="constant", gate_uniform_groups=False, learning_rate=1e-2,
                      lora_r=4, lora_alpha=8, gradient_checkpointing=True, device="cpu")
    out = train_ptr(cfg, policy=policy, records=load_emotioncot(data), judge=judge)
    assert out["history"][0]["grad_norm"] > 0
    after = dict(policy.model.named_parameters())
    lora = [n for n in after if "lora_" in n]
    assert lora and all("audio_tower" not in n for n in lora)  # adapters on the language model only
    base = {n if n in after else n.rsplit(".", 1)[0] + ".base_layer." + n.rsplit(".", 1)[1]: p for n, p in before.items()}
    assert set(base) <= set(after) and all(torch.equal(after[n], p) for n, p in base.items())  # base frozen
    assert any(not torch.equal(after[n], torch.zeros_like(after[n])) for n in lora if "lora_B" in n)
    assert policy.model.is_activation_checkpointing if hasattr(policy.model, "is_activation_checkpointing") \
        else policy.model.is_gradient_checkpointing
