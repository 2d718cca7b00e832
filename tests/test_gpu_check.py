"""tools/gpu_check.sh on CPU: it parses (bash -n), the dry run finds every script/flag/config it references and
writes the JSON report, and a real run records a failing stage (rc + error tail) without stopping."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu_check.sh"
STAGES = ["install", "env", "gpu_tests", "grpo_hf", "rollout_0.5b", "rollout_0.5b_vllm", "power_sampling_0.5b", "ti_dpo_0.5b",
          "zero2", "zero3", "grpo_vllm", "rollout_1.5b", "rollout_1.5b_vllm"]


def run(tmp_path, *args, timeout=60):
    env = dict(os.environ, OUT=str(tmp_path / "out"), GPU_CHECK_WORK=str(tmp_path / "work"),
               GPU_CHECK_SITE=str(tmp_path / "site"), PYTHON=sys.executable)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_dry_run_checks_references_and_writes_report(tmp_path):
    r = run(tmp_path, "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MISSING" not in r.stdout
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["dry_run"] is True and report["missing_references"] == 0
    assert [s["stage"] for s in report["stages"]] == STAGES
    assert set(report["summary"].values()) == {"dry-run"}
    cmds = {s["stage"]: s["command"] for s in report["stages"]}
    assert "tools/bench/rollout.py --shape qwen2.5-0.5b --device cuda" in cmds["rollout_0.5b"]
    assert "--batch-sizes 1 64" in cmds["rollout_1.5b"] and "--backend vllm" in cmds["rollout_0.5b_vllm"]
    assert "accelerate_configs/zero3.yaml" in cmds["zero3"] and "-m accelerate.commands.launch" in cmds["zero2"]
    assert "tools/bench/power_sampling.py --device cuda --shape qwen2.5-0.5b" in cmds["power_sampling_0.5b"]
    # the printed commands are the ones recorded
    for s in STAGES:
        assert f"[dry-run] {s} " in r.stdout


def test_dry_run_fails_on_a_missing_flag(tmp_path):
    # a copy of the repo layout the script needs, with one bench flag removed
    for rel in ["tools/gpu_check.sh", "tools/bench/rollout.py", "tools/bench/power_sampling.py", "tools/bench/ti_dpo.py",
                "shared/src/rlcore/training.py", "shared/src/rlcore/testing.py",
                "shared/src/rlcore/accelerate_configs/zero2.yaml", "shared/src/rlcore/accelerate_configs/zero3.yaml"]:
        dst = tmp_path / "repo" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        text = (ROOT / rel).read_text()
        if rel.endswith("rollout.py"):
            text = text.replace('add_argument("--skip-prefill"', 'add_argument("--no-prefill"')
        dst.write_text(text)
    env = dict(os.environ, OUT=str(tmp_path / "out"), GPU_CHECK_WORK=str(tmp_path / "work"), PYTHON=sys.executable)
    r = subprocess.run(["bash", str(tmp_path / "repo" / "tools" / "gpu_check.sh"), "--dry-run"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "MISSING flag: tools/bench/rollout.py --skip-prefill" in r.stdout


def test_failing_stage_is_recorded_and_the_run_goes_on(tmp_path):
    # on this CPU machine: env fails (no nvidia-smi / no CUDA device); zero2 is skipped unless deepspeed imports
    r = run(tmp_path, "--stages", "env,zero2", "--budget", "60")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    env = next(s for s in report["stages"] if s["stage"] == "env")
    assert env["status"] == "failed" and env["rc"] != 0
    assert "nvidia-smi" in env["log_tail"] and "failed to run command" not in env["log_tail"]  # the stage itself ran
    assert [s["stage"] for s in report["stages"]] == ["env", "zero2"]
    assert (tmp_path / "out" / "gpu_check.log").read_text().count("== ") == 2


def test_unknown_stage_and_option(tmp_path):
    r = run(tmp_path, "--stages", "nope")
    assert r.returncode == 2 and "unknown stage nope" in r.stderr
    r = run(tmp_path, "--frobnicate")
    assert r.returncode == 2 and "unknown option" in r.stderr


@pytest.mark.slow
def test_tiny_grpo_stage_runs_on_cpu(tmp_path):
    # the tiny trainer of the grpo_hf / zero2 / zero3 / grpo_vllm stages: one real GRPOTrainer step here
    r = run(tmp_path, "--stages", "grpo_hf", "--budget", "300", timeout=320)
    assert r.returncode == 0, r.stdout + r.stderr
    stage = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["stages"][0]
    assert stage["status"] == "ok", stage["log_tail"]
    assert stage["figures"]["global_step"] == 1 and stage["figures"]["use_vllm"] is False
