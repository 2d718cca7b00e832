"""Streaming output: kill -9 mid-eval, rerun, and the file equals an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from rlcore.testing import save_tiny_causal_lm


def _rows(path):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_kill_and_rerun_writes_only_missing_records(tmp_path):
    model = save_tiny_causal_lm(tmp_path / "m")
    data = tmp_path / "arith.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+{i}=", "answer": str(2 * i)}) + "\n" for i in range(5)))

    def cmd(out):
        return [sys.executable, "-m", "power_sampling", "eval", "--model", str(model), "--task", "arith", "--input",
                str(data), "--output", str(out), "--method", "power", "--num-samples", "2", "--batch-size", "1",
                "--max-new-tokens", "12", "--block-size", "4", "--mcmc-steps", "2", "--device", "cpu", "--seed", "3"]

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    full = tmp_path / "full.jsonl"
    subprocess.run(cmd(full), check=True, capture_output=True, timeout=300, env=env)
    out = tmp_path / "killed.jsonl"
    proc = subprocess.Popen(cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and len(out.read_text().splitlines()) >= 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    before = _rows(out)
    assert 2 <= len(before) < len(_rows(full))
    r = subprocess.run(cmd(out), capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    after = _rows(out)
    assert after[: len(before)] == before  # nothing rewritten
    assert len({r["id"] for r in after}) == len(after) == len(_rows(full))  # only the missing ids were added
    assert after == _rows(full)
    summaries = [json.loads((tmp_path / f"{n}.jsonl.summary.json").read_text())["summary"]["power"]
                 for n in ("killed", "full")]
    for s in summaries:
        s.pop("seconds_per_sample")
    assert summaries[0] == summaries[1]
