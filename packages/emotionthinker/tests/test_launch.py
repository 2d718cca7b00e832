"""Multi-process launch (accelerate, 2 CPU processes) and kill-safe resume of `emotionthinker train`."""

import json

import pytest
import torch
from emotionthinker.synth import harmonic_voice, write_wav
from rlcore.testing import accelerate_launch, run_and_kill

ENV = {"OMP_NUM_THREADS": "1"}


def _dataset(tmp_path, n=4):
    rows = []
    for i in range(n):
        write_wav(tmp_path / f"c{i}.wav", harmonic_voice(110.0 + 40 * i, 0.4))
        rows.append({"audio_path": f"c{i}.wav", "emotion": ["sad", "angry", "happy", "fear"][i]})
    p = tmp_path / "cot.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _train_args(data, out, *extra):
    return ["train", "--input", str(data), "--output-dir", str(out), "--prompts-per-step", "1", "--group-size", "2",
            "--max-new-tokens", "3", "--schedule", "constant", "--device", "cpu", "--learning-rate", "0.01", *extra]


@pytest.mark.slow
def test_accelerate_launch_two_processes_shards_data_and_writes_once(tmp_path):
    data, out = _dataset(tmp_path), tmp_path / "run"
    res = accelerate_launch(["emotionthinker", *_train_args(data, out, "--steps", "2")], num_processes=2,
                            timeout=600, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["world_size"] == 2
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]  # one writer: no duplicated rows
    for r in rows:
        a, b = r["prompts_by_rank"]
        assert len(a) == len(b) == 1 and a != b  # each rank trained on its own clip
    assert (res.stdout + res.stderr).count("done:") == 1  # the summary line is printed by rank 0 only


@pytest.mark.slow
def test_kill_after_first_checkpoint_and_resume_equals_an_uninterrupted_run(tmp_path):
    data = _dataset(tmp_path)
    full, killed = tmp_path / "full", tmp_path / "killed"
    args = ["--steps", "3", "--save-steps", "1", "--save"]
    ref = run_and_kill(["emotionthinker", *_train_args(data, full, *args)], when=lambda: False, timeout=600,
                       env=ENV)
    assert ref.returncode == 0, ref.stderr[-3000:]
    res = run_and_kill(["emotionthinker", *_train_args(data, killed, *args)],
                       when=lambda: (killed / "checkpoint-1").is_dir(), timeout=600, env=ENV)
    assert res.returncode == -9, res.stderr[-3000:]
    assert not (killed / "final").exists()
    res = run_and_kill(["emotionthinker", *_train_args(data, killed, *args, "--resume", "latest")],
                       when=lambda: False, timeout=600, env=ENV)
    assert res.returncode == 0, res.stderr[-3000:]
    from safetensors.torch import load_file

    w_full = load_file(str(full / "final" / "model.safetensors"))
    w_res = load_file(str(killed / "final" / "model.safetensors"))
    assert w_full.keys() == w_res.keys()
    for k in w_full:
        assert torch.allclose(w_full[k], w_res[k], atol=1e-6), k
    rows_full = (full / "metrics.jsonl").read_text().splitlines()
    rows_res = (killed / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in rows_res] == [0, 1, 2]  # no duplicated rows
    assert rows_res == rows_full
    assert json.loads((killed / "run_summary.json").read_text())["resumed_from"] >= 1
