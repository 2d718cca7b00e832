import json

import pytest
import torch
from p_genrm.config import TrainConfig
from p_genrm.evaluation_chain import render_chain
from p_genrm.training import filter_teacher_chains, run_training
from rlcore.testing import save_tiny_causal_lm

GOOD = render_chain("likes brevity", [("brevity", 100, 8, 3)])  # prefers displayed response 1


def teacher(label, order=(0, 1), chain=GOOD):
    return {"query": "q", "response_1": "short", "response_2": "long long", "history": [
        {"user": "u", "chosen": "c", "rejected": "r"}], "order": list(order), "chain": chain, "label": label}


def test_psi_filter_keeps_parsable_matching_chains():
    rows, counts = filter_teacher_chains([teacher(0), teacher(1, (1, 0)), teacher(1), teacher(0, chain="junk")])
    assert counts == {"kept": 2, "unparsable": 1, "wrong_preference": 1}
    assert rows[0]["completion"][0]["content"] == GOOD and rows[0]["prompt"][0]["role"] == "system"
    with pytest.raises(ValueError, match="records\\[0\\]: teacher record lacks"):
        filter_teacher_chains([{"query": "q"}])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("m") / "tiny")


def params_of(path):
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}


def changed(before, trainer):
    after = trainer.model.state_dict()
    return any(not torch.equal(before[k], after[k].cpu()) for k in before if k in after)


def write_pairs(tmp_path):
    rows = [{"user_id": u, "split": "train", "context": [{"content": f"q{u}{i}"}], "chosen": f"yes {i}",
             "rejected": f"no {i} more words", "conversation_id": f"{u}{i}"} for u in "ab" for i in range(2)]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "stated.jsonl").write_text("".join(json.dumps({"user_id": u, "stated_prefs": {"brevity": 90}}) + "\n"
                                                    for u in "ab"))
    return str(tmp_path / "pairs.jsonl"), str(tmp_path / "stated.jsonl")


def test_stage1_sft_two_steps(tmp_path, tiny_model):
    path = tmp_path / "teacher.jsonl"
    path.write_text("".join(json.dumps(teacher(0)) + "\n" for _ in range(4)))
    cfg = TrainConfig(stage="sft", model=tiny_model, input=str(path), output_dir=str(tmp_path / "out"),
                      max_steps=2, per_device_train_batch_size=2, learning_rate=1e-3, history_size=1)
    before = params_of(tiny_model)
    out = run_training(cfg, save=False)
    losses = [h["loss"] for h in out["log_history"] if "loss" in h]
    assert len(losses) == 2 and all(x == x and x > 0 for x in losses) and out["data"]["kept"] == 4
    assert changed(before, out["trainer"])


def test_stage2_grpo_two_steps_with_process_and_outcome(tmp_path, tiny_model):
    data, stated = write_pairs(tmp_path)
    cfg = TrainConfig(stage="grpo", model=tiny_model, input=data, stated_prefs=stated, output_dir=str(tmp_path / "o"),
                      max_steps=2, per_device_train_batch_size=4, num_generations=4, max_completion_length=8,
                      learning_rate=1e-2, history_size=1)
    before = params_of(tiny_model)
    # a judge whose score varies with the chain, so the group advantages are non-zero and the policy moves
    out = run_training(cfg, save=False, judge=lambda q, s, c: (len(c) % 5) / 4)
    logs = [h for h in out["log_history"] if "loss" in h]
    assert len(logs) == 2 and "rewards/process_reward/mean" in logs[0] and "rewards/outcome_reward/mean" in logs[0]
    assert changed(before, out["trainer"])


@pytest.mark.slow  # same GRPO machinery as stage 2; kept out of the default run for the time budget
def test_stage3_curriculum_orders_hard_negatives(tmp_path, tiny_model):
    data, _ = write_pairs(tmp_path)
    cfg = TrainConfig(stage="curriculum", model=tiny_model, input=data, output_dir=str(tmp_path / "o"), max_steps=2,
                      per_device_train_batch_size=2, num_generations=2, max_completion_length=8, hard_fraction=0.5,
                      hn_start=0.0, hn_end=1.0, history_size=1)
    out = run_training(cfg, save=False)
    hard = out["trainer"].train_dataset["hard"]
    assert hard == [False, False, True, True]  # batches of 1 prompt: share rises 0 -> 1
    assert out["trainer"].args.shuffle_dataset is False
    assert len([h for h in out["log_history"] if "loss" in h]) == 2
