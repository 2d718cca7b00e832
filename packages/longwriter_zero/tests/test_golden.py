"""A short fixed-seed GRPO trajectory through the CLI, checked against a committed golden JSON.

Regenerate after an intended change with ``LWZ_UPDATE_GOLDEN=1 pytest packages/longwriter_zero -k golden``.
"""

import json
import os
from pathlib import Path

import pytest
from longwriter_zero.cli import app
from typer.testing import CliRunner

GOLDEN = Path(__file__).parent / "golden" / "grpo_tiny_3steps.json"
KEYS = ("loss", "rewards/length_reward/mean", "rewards/format_reward/mean", "kl", "grad_norm")


# TRL 1.16 / transformers 5.x call their own deprecated gradient_checkpointing aliases.
@pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.* is deprecated:FutureWarning")
def test_grpo_trajectory_matches_golden(tiny_policy, prompts_jsonl, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, [
        "train", "--model", tiny_policy, "--input", prompts_jsonl, "--output-dir", str(out),
        "--template", "<|user|>: {question} <|assistant|>:", "--untagged", "whole", "--num-generations", "4",
        "--per-device-train-batch-size", "8", "--max-steps", "3", "--max-completion-length", "8",
        "--learning-rate", "0.01", "--save-steps", "0", "--device", "cpu", "--seed", "0"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (out / "log_history.jsonl").read_text().splitlines()]
    got = [{k: r[k] for k in KEYS} for r in rows if "loss" in r]
    if os.environ.get("LWZ_UPDATE_GOLDEN"):
        GOLDEN.write_text(json.dumps(got, indent=2) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert len(got) == len(want) == 3
    for g, w in zip(got, want, strict=True):
        for k in KEYS:
            assert g[k] == pytest.approx(w[k], rel=1e-3, abs=1e-4), k
