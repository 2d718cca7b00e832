"""Multi-process launch (accelerate, 2 CPU processes, gloo) and kill-safe resume of `ti-dpo train`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

TRAIN = ["train", "--input", "tiny", "--max-length", "64", "--anchor-max-new-tokens", "4", "--learning-rate", "5e-3",
         "--seed", "0", "--device", "cpu", "--logging-steps", "1"]


def _env():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from rlcore.testing import save_tiny_causal_lm

    return save_tiny_causal_lm(tmp_path_factory.mktemp("base") / "m")


@pytest.mark.parametrize("ckpt,mode", [("reentrant", "separate"), ("off", "fused")])
def test_two_process_launch_with_triplet_and_reentrant_checkpointing(tmp_path, base, ckpt, mode):
    """DDP, 2 ranks, triplet on; with reentrant activation checkpointing (the old "mark a variable ready only
    once" crash) and with the default fused attribution: trains, shards the data (24 pairs, batch 4/rank -> 3
    steps/epoch), one writer, one summary."""
    out = tmp_path / "run"
    from rlcore.training import accelerate_launch

    r = accelerate_launch(["ti_dpo", *TRAIN, "--model", base, "--output-dir", str(out), "--num-train-epochs", "1",
                           "--gamma", "0.1", "--activation-checkpointing", ckpt], num_processes=2,
                          timeout=600, env=_env())
    assert r.returncode == 0, r.stderr[-4000:]
    summaries = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # only the main process prints the summary
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["attribution"] == mode
    steps = [h["step"] for h in metrics["log_history"] if "loss/dpo" in h]
    assert steps == [1, 2, 3]  # 24 pairs / (2 ranks x 4) per step: each rank saw different pairs
    assert all(h["loss/triplet"] >= 0 for h in metrics["log_history"] if "loss/dpo" in h)
    assert (out / "model.safetensors").is_file()


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


def test_kill_and_resume_equals_an_uninterrupted_run(tmp_path, base):
    argv = [sys.executable, "-m", "ti_dpo", *TRAIN, "--model", base, "--max-steps", "6", "--save-steps", "2"]
    full = tmp_path / "full"
    r = subprocess.run([*argv, "--output-dir", str(full)], capture_output=True, text=True, timeout=300, env=_env())
    assert r.returncode == 0, r.stderr[-3000:]

    from rlcore.training import run_and_kill

    cut = tmp_path / "cut"
    k = run_and_kill(["ti_dpo", *argv[3:], "--output-dir", str(cut)], env=_env(), timeout=300, poll=0.01,
                     when=lambda: (cut / "checkpoint-2" / "ti_dpo_state_rank0.json").is_file())
    assert k.returncode == -9, k.stderr[-3000:]
    assert not (cut / "train_metrics.json").exists()  # really interrupted

    r = subprocess.run([*argv, "--output-dir", str(cut), "--resume", "latest"], capture_output=True, text=True,
                       timeout=300, env=_env())
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout[r.stdout.index("{"):])
    assert summary["resumed_from"] and "checkpoint-" in summary["resumed_from"]
    a, b = _weights(full), _weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0)
    rows = {}
    for name in ("full", "cut"):
        hist = json.loads((tmp_path / name / "train_metrics.json").read_text())["log_history"]
        rows[name] = [h for h in hist if "loss/dpo" in h]
    assert [h["step"] for h in rows["cut"]] == [1, 2, 3, 4, 5, 6]  # no duplicated rows after the resume
    for x, y in zip(rows["full"], rows["cut"], strict=True):
        for key in ("loss", "loss/dpo", "loss/triplet", "kl/chosen", "weights/max"):
            assert y[key] == pytest.approx(x[key], rel=1e-5, abs=1e-6), (x["step"], key)


def test_resume_path_that_does_not_exist_is_a_one_line_error(tmp_path):
    from ti_dpo.cli import app
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "nope"), "--output-dir", str(tmp_path)])
    assert r.exit_code == 2 and "nope" in r.output and "Traceback" not in r.output
