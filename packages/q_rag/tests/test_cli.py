import dataclasses
import json

import pytest
import typer
from q_rag.cli import app
from q_rag.config import DataConfig, EvalConfig, IndexConfig, RetrieveConfig, TrainConfig
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.parametrize("name,cls", [("train", TrainConfig), ("data", DataConfig), ("index", IndexConfig),
                                      ("retrieve", RetrieveConfig), ("eval", EvalConfig)])
def test_flags_are_config_fields(name, cls):
    cmd = typer.main.get_command(app)
    opts = {p.name for p in cmd.commands[name].params} - {"config"}  # type: ignore[attr-defined]
    assert opts == {f.name for f in dataclasses.fields(cls)}


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    from rlcore.testing import tiny_encoder

    d = tmp_path_factory.mktemp("enc")
    enc, tok = tiny_encoder(seed=0, hidden_size=32)
    enc.save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return str(d)


def test_end_to_end(tmp_path, encoder_dir):
    from rlcore.testing import save_tiny_causal_lm

    data = tmp_path / "d.jsonl"
    r = runner.invoke(app, ["data", "--output", str(data), "--task", "single", "--n", "4", "--tokens", "80"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", "--train-data", str(data), "--output-dir", str(out), "--encoder", encoder_dir,
                            "--max-steps", "2", "--total-steps", "2", "--batch-size", "4", "--n-envs", "2",
                            "--warmup-steps", "1", "--eval-interval", "2", "--eval-episodes", "2",
                            "--max-state-tokens", "16", "--max-action-tokens", "16"])
    assert r.exit_code == 0, r.output
    best = json.loads(r.stdout.strip().splitlines()[-1])
    assert best["step"] == 2 and (out / "best" / "q_rag.json").is_file()
    model = str(out / "best")
    cache = tmp_path / "cache"
    r = runner.invoke(app, ["index", "--data", str(data), "--model", model, "--cache-dir", str(cache)])
    assert r.exit_code == 0, r.output
    assert len(list(cache.glob("*.npy"))) == 4
    res = tmp_path / "res.jsonl"
    r = runner.invoke(app, ["retrieve", "--data", str(data), "--model", model, "--cache-dir", str(cache),
                            "--output", str(res), "--max-steps", "2", "--backend", "faiss"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in res.read_text().splitlines()]
    assert len(rows) == 4 and all(len(x["retrieved"]) == 2 for x in rows)
    reader = save_tiny_causal_lm(tmp_path / "reader")
    ev = tmp_path / "ev"
    r = runner.invoke(app, ["eval", "--data", f"{data},{data}", "--model", model, "--cache-dir", str(cache),
                            "--output", str(ev), "--max-steps", "2", "--reader", reader, "--max-new-tokens", "4"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((ev / "metrics.json").read_text())
    assert {"sf_recall", "sf_em", "accuracy", "tokens"} <= set(metrics[str(data)])
    assert (ev / "accuracy_vs_length.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_input(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q?", "chunks": ["a."], "sf_idx": [3]}) + "\n")
    r = runner.invoke(app, ["retrieve", "--data", str(bad)])
    assert r.exit_code == 2 and "bad.jsonl:1: sf_idx [3] out of range" in " ".join(r.output.split())
    r = runner.invoke(app, ["train", "--train-data", "x.jsonl", "--position", "sinusoidal"])
    assert r.exit_code == 2 and "position: must be one of" in " ".join(r.output.split())
