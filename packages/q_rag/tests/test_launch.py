"""Multi-process launch (accelerate, 2 CPU processes) and kill -9 / --resume latest (slow)."""

import json

import pytest
import torch


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from q_rag.babilong import build_synthetic_dataset
    from q_rag.data import write_samples
    from rlcore.testing import tiny_encoder

    d = tmp_path_factory.mktemp("launch")
    enc, tok = tiny_encoder(seed=0, hidden_size=32)
    enc.save_pretrained(str(d / "enc"))
    tok.save_pretrained(str(d / "enc"))
    write_samples(d / "data.jsonl", build_synthetic_dataset("single", 8, 60, seed=0, n_facts=4))
    return d


def _args(d, out, steps, *extra):
    return ["q_rag", "train", "--input", str(d / "data.jsonl"), "--model", str(d / "enc"), "--output-dir", str(out),
            "--max-steps", "2", "--total-steps", str(steps), "--batch-size", "4", "--n-envs", "2",
            "--warmup-steps", "1", "--learning-start", "2", "--eval-interval", "2", "--eval-episodes", "2",
            "--max-state-tokens", "16", "--max-action-tokens", "16", "--seed", "3", *extra]


@pytest.mark.slow
def test_two_process_launch(setup):
    from rlcore.testing import accelerate_launch

    out = setup / "ddp"
    r = accelerate_launch(_args(setup, out, 2), num_processes=2, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    a, b = summary["samples_per_rank"]
    assert a and b and a != b  # each rank acts in its own episodes
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2]  # one writer, no duplicated rows
    assert sum(1 for line in r.stdout.splitlines() if line.startswith("{")) == 1  # one summary printed
    assert (out / "checkpoint-2" / "state.json").is_file()


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(setup):
    import subprocess
    import sys

    from rlcore.testing import run_and_kill

    ref, out = setup / "ref", setup / "killed"
    env_args = ["--save-steps", "1"]
    r = subprocess.run([sys.executable, "-m", *_args(setup, ref, 4, *env_args)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_and_kill(_args(setup, out, 4, *env_args), when=lambda: (out / "checkpoint-1" / "state.json").exists(),
                     timeout=300)
    assert r.returncode == -9, r.stderr[-3000:]
    assert not (out / "checkpoint-4").exists()
    r = subprocess.run([sys.executable, "-m", *_args(setup, out, 4, *env_args, "--resume", "latest")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    wa = torch.load(out / "checkpoint-4" / "model.pt", weights_only=True)
    wb = torch.load(ref / "checkpoint-4" / "model.pt", weights_only=True)
    assert wa.keys() == wb.keys()
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa if wa[k].is_floating_point()) <= 1e-6
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    ref_rows = [json.loads(x) for x in (ref / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in rows] == [1, 2, 3, 4]
    for x, y in zip(rows, ref_rows, strict=True):
        assert x.keys() == y.keys()
        assert all(x[k] == pytest.approx(y[k], rel=1e-6, abs=1e-6) for k in x)
