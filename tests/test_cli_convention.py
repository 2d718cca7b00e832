"""The CLI flag convention of shared/README.md, checked on every package's typer app.

Each test collects every violation first and fails once, listing all of them (packages rename flags concurrently).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

TOOL = Path(__file__).resolve().parents[1] / "tools" / "cli_table.py"


def _cli_table():
    if "cli_table" not in sys.modules:
        spec = importlib.util.spec_from_file_location("cli_table", TOOL)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["cli_table"] = mod  # dataclasses resolve the module by name
        spec.loader.exec_module(mod)
    return sys.modules["cli_table"]


@pytest.fixture(scope="module")
def collected():
    ct = _cli_table()
    errors: list[str] = []
    verbs = ct.collect(errors)
    return ct, verbs, errors


def test_every_package_cli_is_found(collected):
    ct, verbs, errors = collected
    assert not errors, "\n".join(errors)
    pkgs = {v.package for v in verbs}
    assert pkgs == {p for p, _ in ct.package_modules()} and len(pkgs) == 7, pkgs


def test_flag_convention(collected):
    ct, verbs, errors = collected
    problems = errors + ct.violations(verbs)
    assert not problems, f"{len(problems)} CLI convention violation(s):\n" + "\n".join(problems)


def test_help_at_80_columns_shows_every_flag_whole(collected):
    ct, verbs, _ = collected
    runner = CliRunner()
    problems = []
    for v in verbs:
        app = ct.load_app(v.module)
        r = runner.invoke(app, [*v.name.split(), "--help"], terminal_width=80, env={"COLUMNS": "80"})
        if r.exit_code != 0:
            problems.append(f"{v.package} `{v.name}`: --help exited {r.exit_code}: {r.output[-300:]}")
            continue
        tokens = {t.strip(",;") for t in r.output.split()}
        missing = [n for n in v.all_names if n not in tokens]
        if missing:
            problems.append(f"{v.package} `{v.name}`: --help at 80 columns does not show {missing} whole")
        if "…" in r.output:
            problems.append(f"{v.package} `{v.name}`: --help at 80 columns truncates text (…)")
    assert not problems, "\n".join(problems)


def test_violations_are_detected():
    """The checker itself: a made-up CLI breaking each rule is reported rule by rule."""
    ct = _cli_table()
    bad = ct.Verb("pkg", "pkg", "train", ["model-path", "data", "out", "random-seed", "gpu", "policy-model",
                                          "max-new-tokens", "temperature"], [])
    msgs = "\n".join(ct.violations([bad]))
    for text in ("--model-path should be --model", "--data should be --input", "--out should be --output",
                 "--random-seed should be --seed", "--gpu should be --device", "--policy-model is the main model",
                 "needs --output-dir", "needs --save-steps", "needs --resume", "needs --backend",
                 "needs --tensor-parallel-size", "a sampling verb needs --seed"):
        assert text in msgs, text
    good = ct.Verb("pkg", "pkg", "train", ["model", "rm-model", "input", "output-dir", "seed", "device", "backend",
                                           "tensor-parallel-size", "gpu-memory-utilization", "save-steps", "resume",
                                           "max-new-tokens", "temperature"], [])
    assert not [m for m in ct.violations([good]) if m.startswith("pkg `")]
