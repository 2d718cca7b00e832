import dataclasses
import json

import pytest
from p_genrm.cli import app
from p_genrm.config import EvalConfig, PrototypeConfig, ScoreConfig, TrainConfig
from rlcore.testing import save_tiny_causal_lm
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.parametrize("command, cls", [("score", ScoreConfig), ("build-prototypes", PrototypeConfig),
                                          ("eval", EvalConfig), ("train", TrainConfig)])
def test_options_are_config_fields(command, cls):
    import typer.main

    cmd = typer.main.get_command(app).commands[command]
    opts = {p.name for p in cmd.params} - {"config"}
    assert opts == {f.name for f in dataclasses.fields(cls)}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("m") / "tiny")


def write_rows(path):
    rows = [{"user_id": u, "split": s, "context": [{"content": f"q {u} {i}"}], "chosen": f"c{i}",
             "rejected": f"r{i}", "conversation_id": f"{u}{s}{i}"} for u in "ab" for s in ("train", "test")
            for i in range(2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_score_smoke_reports_unparsable_chains(tmp_path, model_dir):
    inp = tmp_path / "req.jsonl"
    inp.write_text(json.dumps({"query": "q", "response_1": "a", "response_2": "b", "user_id": "u"}) + "\n")
    out = tmp_path / "out.jsonl"
    r = runner.invoke(app, ["score", "--model", model_dir, "--input", str(inp), "--output", str(out),
                            "--max-new-tokens", "4", "--max-retries", "0", "--preset", "ind1"])
    assert r.exit_code == 0, r.output
    rec = json.loads(out.read_text())
    # the random tiny model never writes a valid chain: no score is guessed
    assert rec["scores"] is None and rec["preferred"] is None and rec["chains_used"] == 0


def test_eval_smoke(tmp_path, model_dir):
    data = write_rows(tmp_path / "d.jsonl")
    r = runner.invoke(app, ["eval", "--model", model_dir, "--data", data, "--max-new-tokens", "4",
                            "--max-retries", "0", "--presets", "ind1", "--seeds", "1", "--seeds", "2"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)["ind1"]
    assert rep["seeds"] == 2 and rep["runs"][0]["pairs"] == 4 and rep["runs"][0]["unscored"] == 4


def test_build_prototypes_fails_clearly_without_parsable_chains(tmp_path, model_dir):
    data = write_rows(tmp_path / "d.jsonl")
    r = runner.invoke(app, ["build-prototypes", "--model", model_dir, "--data", data, "--max-new-tokens", "4",
                            "--max-retries", "0", "--num-prototypes", "1", "--output-dir", str(tmp_path / "p")])
    assert r.exit_code == 2 and "none of the 4 chains parsed" in r.output


def test_bad_inputs_exit_2_with_message(tmp_path):
    r = runner.invoke(app, ["score", "--input", str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 2 and "missing.jsonl" in r.output
    r = runner.invoke(app, ["score", "--input", "x.jsonl", "--preset", "ind16+pro8"])
    assert r.exit_code == 2 and "needs --prototypes" in r.output
    r = runner.invoke(app, ["train", "--stage", "dpo", "--data", "x.jsonl"])
    assert r.exit_code == 2 and "stage" in r.output
    r = runner.invoke(app, ["train", "--stage", "grpo", "--data", "x", "--per-device-train-batch-size", "3"])
    assert r.exit_code == 2 and "divisible" in r.output


def test_config_file_and_validation(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("num_prototypes: 7\nrho: 0.25\n")
    from rlcore.cli import load_config

    c = load_config(PrototypeConfig, cfg, data="d.jsonl")
    assert (c.num_prototypes, c.rho) == (7, 0.25)
    with pytest.raises(ValueError, match="tie_rule"):
        EvalConfig(data="d", tie_rule="coin")
    with pytest.raises(ValueError, match="temperature"):
        ScoreConfig(input="x", temperature=-1)


@pytest.mark.parametrize("name, cls", [("build_prototypes", PrototypeConfig), ("eval_scaling", EvalConfig),
                                       ("train_sft", TrainConfig), ("train_grpo", TrainConfig),
                                       ("train_curriculum", TrainConfig)])
def test_recipes_load(name, cls):
    from pathlib import Path

    from rlcore.cli import load_config

    path = Path(__file__).resolve().parents[1] / "recipes" / f"{name}.yaml"
    extra = {"prototypes": "protos"} if cls is EvalConfig else {}
    cfg = load_config(cls, path, data="d.jsonl", **extra)
    assert cfg.data == "d.jsonl"


@pytest.mark.slow
def test_study_command_quick():
    r = runner.invoke(app, ["study", "--quick"])
    assert r.exit_code == 0, r.output
    acc = json.loads(r.stdout)["accuracy"]
    assert set(acc) == {"short", "long"}
    assert all(0 <= v <= 1 for row in acc.values() for v in row.values()) and len(acc["short"]) == 5
