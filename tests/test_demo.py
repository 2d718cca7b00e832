"""tools/demo.py: the demo contract (fake packages, fast) and the real --quick run over all seven (slow)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake_pkgs(tmp_path, monkeypatch, tool):
    """Three fake packages: one working demo, one that raises, one without a demo module."""
    for name, body in {
        "fake_ok": "def run_demo(quick=False):\n    x = sum(range(10 if quick else 100))\n"
                   "    return {'what': 'sums', 'headline': f'sum {x}', 'metrics': {'sum': x}}\n",
        "fake_bad": "def run_demo(quick=False):\n    raise RuntimeError('boom')\n",
    }.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
        (tmp_path / name / "demo.py").write_text(textwrap.dedent(body))
    (tmp_path / "fake_nodemo").mkdir()
    (tmp_path / "fake_nodemo" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    demo = tool("demo")
    monkeypatch.setattr(demo, "PACKAGES", {"fake_ok": "OK", "fake_bad": "Bad", "fake_nodemo": "No demo",
                                           "fake_missing": "Missing"})
    return demo


def test_rows_follow_the_contract(fake_pkgs):
    demo = fake_pkgs
    ok = demo.run_one("fake_ok", quick=True)
    assert ok["status"] == "ok" and ok["headline"] == "sum 45" and ok["metrics"] == {"sum": 45}
    assert demo.run_one("fake_ok", quick=False)["metrics"] == {"sum": 4950}  # computed, not canned
    bad = demo.run_one("fake_bad", quick=True)
    assert bad["status"] == "FAILED" and "RuntimeError: boom" in bad["error"]
    assert demo.run_one("fake_nodemo", quick=True)["status"] == "not built yet"
    assert demo.run_one("fake_missing", quick=True)["status"] == "not built yet"


def test_main_exit_code_and_json(fake_pkgs, tmp_path, capsys):
    demo = fake_pkgs
    out = tmp_path / "r.json"
    assert demo.main(["--quick", "--only", "fake_ok", "--only", "fake_nodemo", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "OK" in table and "sum 45" in table and "not built yet" in table
    data = json.loads(out.read_text())
    assert [r["status"] for r in data["results"]] == ["ok", "not built yet"]
    assert demo.main(["--quick", "--only", "fake_bad"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_bad_result_and_bad_flag(fake_pkgs):
    with pytest.raises(TypeError, match="'headline'"):
        fake_pkgs.check_result("x", {"what": "a", "metrics": {}})
    with pytest.raises(SystemExit):
        fake_pkgs.parse_args(["--only", "nope"])


@pytest.mark.slow
@pytest.mark.parametrize("mode", [["--quick"], []], ids=["quick", "full"])
def test_demo_runs_all_seven(tmp_path, tool, mode):
    out = tmp_path / "demo.json"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "demo.py"), *mode, "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    data = json.loads(out.read_text())
    rows = {r["package"]: r for r in data["results"]}
    assert set(rows) == set(tool("demo").PACKAGES)
    for pkg, r in rows.items():
        assert r["status"] in ("ok", "FAILED"), f"{pkg}: {r['status']}"  # all seven packages are built
        assert tool("demo").PACKAGES[pkg] in proc.stdout  # every method has its row in the table
        if r["status"] == "ok":
            assert r["what"] and r["headline"] and isinstance(r["metrics"], dict)
    failed = [f"{p}: {r['error']}" for p, r in rows.items() if r["status"] == "FAILED"]
    assert proc.returncode == (1 if failed else 0), proc.stderr[-3000:]
    assert not failed, failed
