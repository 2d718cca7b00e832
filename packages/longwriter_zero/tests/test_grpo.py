import math

import pytest
import torch
from longwriter_zero.advantage import compute_averaged_advantages
from longwriter_zero.config import TrainConfig
from longwriter_zero.train import load_prompts, train

# TRL 1.16 / transformers 5.x call their own deprecated gradient_checkpointing aliases while building the trainer;
# remove these ignores when TRL switches to activation_checkpointing.
GC_WARNINGS = [
    pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.* is deprecated:FutureWarning"),
]
TEMPLATE = "<|user|>: {question} <|assistant|>:"


def _cfg(policy, data, out, **kw):
    base = dict(model=policy, input=data, output_dir=str(out), template=TEMPLATE, untagged="whole",
                num_generations=4, per_device_train_batch_size=8, max_steps=2, max_completion_length=8,
                learning_rate=1e-2, save_steps=0, device="cpu", seed=0)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.filterwarnings(*[m.args[0] for m in GC_WARNINGS])
def test_grpo_steps_with_three_rewards(tiny_policy, tiny_rm, prompts_jsonl, tmp_path):
    from transformers import AutoModelForCausalLM

    res = train(_cfg(tiny_policy, prompts_jsonl, tmp_path / "run", rm_model=tiny_rm, rm_max_length=64,
                     rm_max_question_tokens=16))
    steps = [h for h in res["log_history"] if "loss" in h]
    assert len(steps) == 2 and all(math.isfinite(h["loss"]) for h in steps)
    for name in ("length_reward", "writing_reward", "format_reward"):
        assert f"rewards/{name}/mean" in steps[0]
    # learning happened: the saved policy differs from the initial one
    before = AutoModelForCausalLM.from_pretrained(tiny_policy)
    after = AutoModelForCausalLM.from_pretrained(res["final_model"])
    changed = [not torch.equal(a, b) for a, b in zip(before.parameters(), after.parameters(), strict=True)]
    assert sum(changed) > len(changed) // 2
    # the advantages TRL used are ours: per-reward group z-scores, averaged
    trainer = res["trainer"]
    rew = torch.tensor([trainer._logs["rewards"][n] for n in trainer.reward_func_names], dtype=torch.float32).T
    logged_adv = torch.tensor(list(trainer._logs["advantages"]))
    expected = torch.cat([compute_averaged_advantages(chunk, 4) for chunk in rew.split(8)])
    assert logged_adv.tolist() == pytest.approx(expected.tolist(), abs=1e-5)


@pytest.mark.filterwarnings(*[m.args[0] for m in GC_WARNINGS])
def test_gated_mode_ranks_violators_last(tiny_policy, prompts_jsonl, tmp_path):
    from longwriter_zero.advantage import compute_gated_advantages

    res = train(_cfg(tiny_policy, prompts_jsonl, tmp_path / "run", max_steps=1, reward_mode="gated", gate_margin=0.5))
    trainer = res["trainer"]
    assert trainer.reward_func_names[-1] == "constraint_reward"
    assert trainer.reward_weights.tolist() == [1.0, 1.0, 0.0]  # length, format averaged; the verifier only gates
    rew = torch.tensor([trainer._logs["rewards"][n] for n in trainer.reward_func_names], dtype=torch.float32).T
    adv = torch.tensor(list(trainer._logs["advantages"]))
    ok = rew[:, -1] > 0.5
    expected = compute_gated_advantages(rew, 4, ok, torch.tensor([1.0, 1.0, 0.0]), margin=0.5)
    assert adv.tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    for g in range(0, len(adv), 4):  # in every mixed group each violator is below each compliant member
        a, c = adv[g:g + 4], ok[g:g + 4]
        if c.any() and (~c).any():
            assert a[~c].max() < a[c].min() and a[~c].max() < 0


def test_resume_from_a_missing_checkpoint_is_an_error(tiny_policy, prompts_jsonl, tmp_path):
    with pytest.raises(ValueError, match="no checkpoint at"):
        train(_cfg(tiny_policy, prompts_jsonl, tmp_path / "empty", resume=str(tmp_path / "nope")))


class TestBadPrompts:
    def test_malformed_json_names_line(self, tmp_path):
        from rlcore.io import DataError

        p = tmp_path / "bad.jsonl"
        p.write_text('{"question": "ok", "length_range": [1, 2]}\n{not json\n')
        with pytest.raises(DataError, match=r"bad.jsonl:2"):
            load_prompts(str(p))

    @pytest.mark.parametrize("line, match", [
        ('{"length_range": [1, 2]}', "question"),
        ('{"question": "", "length_range": [1, 2]}', "question"),
        ('{"question": "q"}', "predict-length"),
        ('{"question": "q", "length_range": [5, 1]}', "length_range"),
        ('{"question": "q", "length_range": "500"}', "length_range"),
    ])
    def test_bad_records(self, tmp_path, line, match):
        from rlcore.io import DataError

        p = tmp_path / "bad.jsonl"
        p.write_text('{"question": "ok", "length_range": [1, 2]}\n\n' + line + "\n")
        with pytest.raises(DataError, match=rf"bad.jsonl:3: .*{match}"):
            load_prompts(str(p))

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="nope.jsonl"):
            load_prompts(str(tmp_path / "nope.jsonl"))

    def test_prompt_is_built_with_language_switch(self, prompts_jsonl):
        rows = load_prompts(prompts_jsonl)
        assert rows[0]["prompt"].endswith("<|user|>: Write a story about the sea. <|assistant|>:")
        assert rows[1]["prompt"].endswith("<|助手|>:")


@pytest.mark.parametrize("kw, match", [
    (dict(num_generations=3, per_device_train_batch_size=8), "multiple of num_generations"),
    (dict(num_generations=1, per_device_train_batch_size=1), "num_generations"),
    (dict(model=""), "model"),
    (dict(template="no placeholder"), "template"),
    (dict(format_threshold=0.0), "format_threshold"),
    (dict(rm_truncation="middle"), "rm_truncation"),
    (dict(reward_mode="sum"), "reward_mode"),
    (dict(gate_margin=0.0), "gate_margin"),
    (dict(format_repetition="semantic"), "format_repetition"),
])
def test_config_validation(kw, match):
    with pytest.raises(ValueError, match=match):
        _cfg("m", "d.jsonl", "out", **kw)
