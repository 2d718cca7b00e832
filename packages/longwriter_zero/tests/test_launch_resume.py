"""Multi-process launch (accelerate, 2 CPU processes, gloo) and kill-safe resume of ``longwriter-zero train``."""

import json

import pytest

TRAIN = ["--template", "<|user|>: {question} <|assistant|>:", "--untagged", "whole", "--num-generations", "4",
         "--per-device-train-batch-size", "4", "--max-completion-length", "6", "--learning-rate", "1e-2",
         "--device", "cpu", "--seed", "0"]


def _prompts(path, n=4):
    path.write_text("".join(json.dumps({"question": f"Write line {i} about the sea.", "length_range": [2, 4]}) + "\n"
                            for i in range(n)))
    return str(path)


@pytest.mark.slow
def test_two_process_launch_shards_data_and_writes_once(tiny_policy, tmp_path):
    from rlcore.testing import accelerate_launch

    out = tmp_path / "run"
    res = accelerate_launch(["longwriter_zero", "train", "--model", tiny_policy, "--input",
                             _prompts(tmp_path / "p.jsonl"), "--output-dir", str(out), "--max-steps", "1",
                             "--save-steps", "0", *TRAIN], num_processes=2, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 1
    ranks = summary["prompts_per_rank"]
    assert len(ranks) == 2 and ranks[0] and ranks[1] and ranks[0] != ranks[1]  # each rank saw its own shard
    assert res.stdout.count(str(out / "final")) == 1  # one writer prints the result
    logged = [json.loads(line) for line in (out / "log_history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in logged if "loss" in h] == [1]  # no duplicated rows


@pytest.mark.slow
def test_kill_and_resume_equals_an_uninterrupted_run(tiny_policy, tmp_path):
    import torch
    from rlcore.testing import run_and_kill
    from safetensors.torch import load_file

    data = _prompts(tmp_path / "p.jsonl")

    def args(out):
        return ["longwriter_zero", "train", "--model", tiny_policy, "--input", data, "--output-dir", str(out),
                "--max-steps", "3", "--save-steps", "1", *TRAIN]

    import subprocess
    import sys

    ref = tmp_path / "ref"
    done = subprocess.run([sys.executable, "-m", *args(ref)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    killed = run_and_kill(args(run), when=lambda: (run / "checkpoint-1" / "trainer_state.json").exists(), timeout=600)
    assert killed.returncode == -9 and not (run / "final").exists()
    resumed = subprocess.run([sys.executable, "-m", *args(run), "--resume", "latest"], capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = load_file(ref / "final" / "model.safetensors"), load_file(run / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    rows = lambda p: [json.loads(x) for x in (p / "log_history.jsonl").read_text().splitlines()]  # noqa: E731
    steps_ref = [(h["step"], h["loss"]) for h in rows(ref) if "loss" in h]
    steps_run = [(h["step"], h["loss"]) for h in rows(run) if "loss" in h]
    assert [s for s, _ in steps_run] == [1, 2, 3]  # no duplicated rows after the resume
    assert [round(v, 6) for _, v in steps_run] == [round(v, 6) for _, v in steps_ref]
