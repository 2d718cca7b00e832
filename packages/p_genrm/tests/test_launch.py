"""python -m entry points, a 2-process accelerate launch of `train`, and kill -9 + --resume latest (PACKAGE_COMMON B)."""

import json
import subprocess
import sys

import pytest
from p_genrm.evaluation_chain import render_released_chain
from rlcore.testing import accelerate_launch, run_and_kill, save_tiny_causal_lm


def teacher_file(path, n=4):
    rows = []
    for i in range(n):
        rows.append({"query": f"question {i} " + "word " * i, "response_1": f"short {i}", "response_2": f"long {i} " * 3,
                     "history": [{"user": "u", "chosen": "c", "rejected": "r"}], "order": [0, 1],
                     "chain": render_released_chain(f"persona {i}", [("brevity", 100, 8, 3)]), "label": 0})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("launch")
    return save_tiny_causal_lm(d / "tiny"), teacher_file(d / "teacher.jsonl"), d


def sft_args(model, data, out, steps=2, **kw):
    args = ["train", "--stage", "sft", "--model", model, "--input", data, "--output-dir", str(out),
            "--max-steps", str(steps), "--per-device-train-batch-size", "1", "--learning-rate", "1e-3",
            "--history-size", "1", "--seed", "3"]
    for k, v in kw.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


def test_python_m_entry_points():
    for mod in ("p_genrm", "p_genrm.cli"):
        r = subprocess.run([sys.executable, "-m", mod, "--help"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and "build-prototypes" in r.stdout, r.stderr


@pytest.mark.slow
def test_two_process_launch_shards_data_and_writes_once(setup):
    model, data, d = setup
    out = d / "ddp"
    r = accelerate_launch(["p_genrm", *sft_args(model, data, out)], num_processes=2, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summaries = [json.loads(x) for x in r.stdout.splitlines() if x.startswith('{"')]
    assert len(summaries) == 1 and summaries[0]["world_size"] == 2  # one writer
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [x["step"] for x in rows if "loss" in x]
    assert steps == [1, 2]  # no duplicated rows
    # 4 rows, 1 per device: two ranks see different rows, so 2 steps cover the whole epoch (one rank: half of it)
    assert rows[-1]["epoch"] == pytest.approx(1.0)


@pytest.mark.slow
def test_kill_after_first_checkpoint_then_resume_equals_uninterrupted(setup):
    import torch
    from safetensors.torch import load_file

    model, data, d = setup
    full, part = d / "full", d / "part"
    r = subprocess.run([sys.executable, "-m", "p_genrm", *sft_args(model, data, full, steps=4, save_steps=2)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    killed = run_and_kill(["p_genrm", *sft_args(model, data, part, steps=4, save_steps=2)],
                          when=lambda: (part / "checkpoint-2" / "trainer_state.json").exists(), timeout=600)
    assert killed.returncode == -9 and not (part / "checkpoint-4").exists()
    r = subprocess.run([sys.executable, "-m", "p_genrm", *sft_args(model, data, part, steps=4, save_steps=2,
                                                                   resume="latest")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = [json.loads(x) for x in r.stdout.splitlines() if x.startswith('{"')][-1]
    assert summary["resumed_from"].endswith("checkpoint-2")
    a, b = load_file(full / "model.safetensors"), load_file(part / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    la = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (part / "metrics.jsonl").read_text().splitlines()]
    steps = [x["step"] for x in lb if "loss" in x]
    assert steps == [1, 2, 3, 4]
    assert [x["loss"] for x in la if "loss" in x] == pytest.approx([x["loss"] for x in lb if "loss" in x], abs=1e-6)
