import dataclasses
import json

import pytest
from p_genrm.cli import app
from p_genrm.config import EvalConfig, PrototypeConfig, ScoreConfig, TrainConfig
from rlcore.testing import recording_generators, save_tiny_causal_lm
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
    with recording_generators() as calls:
        r = runner.invoke(app, ["score", "--model", model_dir, "--input", str(inp), "--output", str(out),
                                "--max-new-tokens", "4", "--max-retries", "0", "--preset", "ind1"])
    assert r.exit_code == 0, r.output
    assert calls and calls[0].kind == "generate" and calls[0].params.max_new_tokens == 4  # through rlcore
    rec = json.loads(out.read_text())
    # the random tiny model never writes a valid chain: no score is guessed
    assert rec["scores"] is None and rec["preferred"] is None and rec["chains_used"] == 0 and rec["id"] == "0:u"


def test_eval_smoke_reports_both_protocols_and_streams(tmp_path, model_dir):
    data = write_rows(tmp_path / "d.jsonl")
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["eval", "--model", model_dir, "--input", data, "--max-new-tokens", "4",
                            "--max-retries", "0", "--presets", "ind1", "--seeds", "1", "--seeds", "2",
                            "--output", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)["ind1"]
    run = rep["runs"][0]
    assert rep["seeds"] == 2 and run["pairs"] == 4 and run["dropped_unscored"] == 4
    assert run["accuracy"] == 0.0 and run["release_accuracy"] is None  # every pair dropped by the release protocol
    recs = [json.loads(x) for x in (tmp_path / "m.records.jsonl").read_text().splitlines()]
    assert len(recs) == 8 and {x["outcome"] for x in recs} == {"unscored"} and recs[0]["id"].startswith("ind1|1|")


@pytest.mark.slow  # three verbs, each loading the model
def test_every_verb_runs_on_builtin_tiny_reasoner_with_defaults(tmp_path):
    """tiny-reasoner's chat template has no system turn and a 256-token context: the system prompt is folded into
    the user turn and the prompt/budget fitted, so no verb crashes (its chains never parse: clear reports)."""
    inp = tmp_path / "req.jsonl"
    inp.write_text(json.dumps({"query": "q", "response_1": "a", "response_2": "b"}) + "\n")
    r = runner.invoke(app, ["score", "--input", str(inp), "--output", str(tmp_path / "s.jsonl")])
    assert r.exit_code == 0, r.output
    assert "no system turn" in r.output and "kept only their last tokens" in r.output
    data = write_rows(tmp_path / "d.jsonl")
    r = runner.invoke(app, ["eval", "--input", data])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["ind1"]["runs"][0]["pairs"] == 4
    r = runner.invoke(app, ["build-prototypes", "--input", data, "--output-dir", str(tmp_path / "p")])
    assert r.exit_code == 2 and "none of the 4 chains parsed" in r.output  # a clear stop, not a template crash


def test_vllm_backend_without_vllm_is_one_line(tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:  # a GPU machine with vLLM: nothing to check here
        return
    inp = tmp_path / "req.jsonl"
    inp.write_text(json.dumps({"query": "q", "response_1": "a", "response_2": "b"}) + "\n")
    for argv in (["score", "--input", str(inp)], ["eval", "--input", write_rows(tmp_path / "d.jsonl")],
                 ["build-prototypes", "--input", str(tmp_path / "d.jsonl")]):
        r = runner.invoke(app, [*argv, "--backend", "vllm"])
        assert r.exit_code == 2 and "pip install 'rlcore[vllm]'" in r.output, r.output
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


def test_help_lists_backend_on_every_generating_verb():
    for verb in ("score", "eval", "build-prototypes", "train"):
        r = runner.invoke(app, [verb, "--help"], terminal_width=80)
        assert r.exit_code == 0 and "--backend" in r.output


class QualityJudge:
    """Scores each displayed response by the 'quality N' written in it, so a pair's scores do not depend on the
    display order or on which other pairs share the batch; raises once after ``fail_after`` generate calls."""

    device, tokenizer = "cpu", None

    def __init__(self, fail_after=None):
        self.calls, self.fail_after = 0, fail_after

    def generate(self, prompts=None, params=None, generator=None, prompt_ids=None):
        import re
        from types import SimpleNamespace

        from p_genrm.evaluation_chain import render_released_chain

        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("simulated crash")
        out = []
        for i, p in enumerate(prompts):
            q = [float(x) for x in re.findall(r"\[The Start of Response \d\]\nquality (\d+)", p)]
            out.append([SimpleNamespace(prompt_index=i, text=render_released_chain("a", [("q", 100, q[0], q[1])]))
                        for _ in range(params.n)])
        return out


def test_score_streams_and_a_rerun_after_a_crash_writes_only_the_missing_records(tmp_path, monkeypatch):
    import p_genrm.scoring as scoring

    reqs = [{"query": f"q{i}", "response_1": f"quality {i % 10 + 1}", "response_2": f"quality {(7 * i) % 10 + 1}",
             "user_id": f"u{i}"} for i in range(40)]
    inp = tmp_path / "req.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in reqs))
    judge = QualityJudge()
    monkeypatch.setattr(scoring, "load_scorer", lambda *a, **k: scoring.GenRMScorer(judge, max_retries=0, seed=1))
    full = tmp_path / "full.jsonl"
    assert runner.invoke(app, ["score", "--input", str(inp), "--output", str(full)]).exit_code == 0
    judge.__init__(fail_after=2)  # 16 pairs per batch: the crash comes after 32 records were written
    part = tmp_path / "part.jsonl"
    r = runner.invoke(app, ["score", "--input", str(inp), "--output", str(part)])
    assert r.exit_code != 0 and len(part.read_text().splitlines()) == 32
    judge.__init__()
    r = runner.invoke(app, ["score", "--input", str(inp), "--output", str(part)])
    assert r.exit_code == 0 and "wrote 8 scored requests" in r.output and judge.calls == 1
    assert part.read_text() == full.read_text()
    rows = [json.loads(x) for x in full.read_text().splitlines()]
    assert [r["scores"] for r in rows[:3]] == [[1.0, 1.0], [2.0, 8.0], [3.0, 5.0]]


def test_eval_on_a_personalized_rewardbench_file(tmp_path, monkeypatch):
    import p_genrm.scoring as scoring

    recs = [{"id": f"s-{i}", "question": f"q{i}", "profile": [{"category": "c", "id": "p", "text": "I like q"}],
             "rubric_aspects": [], "narrative": "", "category": "Society_and_Culture",
             "chosen": f"quality {9 - i % 2}", "rejected": f"quality {2 + 7 * (i == 3)}"} for i in range(4)]
    inp = tmp_path / "prb.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in recs))
    monkeypatch.setattr(scoring, "load_scorer", lambda *a, **k: scoring.GenRMScorer(QualityJudge(), seed=1))
    r = runner.invoke(app, ["eval", "--input", str(inp), "--history-size", "0"])
    assert r.exit_code == 0, r.output
    run = json.loads(r.stdout)["ind1"]["runs"][0]
    # pairs 0-2 chosen wins (9 or 8 vs 2); pair 3: 8 vs 9 -> wrong; 4 users with one pair each
    assert (run["users"], run["pairs"], run["accuracy"], run["release_accuracy"]) == (4, 4, 0.75, 0.75)


def test_build_prototypes_fails_clearly_without_parsable_chains(tmp_path, model_dir):
    data = write_rows(tmp_path / "d.jsonl")
    r = runner.invoke(app, ["build-prototypes", "--model", model_dir, "--input", data, "--max-new-tokens", "4",
                            "--max-retries", "0", "--num-prototypes", "1", "--output-dir", str(tmp_path / "p")])
    assert r.exit_code == 2 and "none of the 4 chains parsed" in r.output
    assert len((tmp_path / "p" / "chains.jsonl").read_text().splitlines()) == 4  # streamed before the stop


def test_bad_inputs_exit_2_with_message(tmp_path):
    r = runner.invoke(app, ["score", "--input", str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 2 and "missing.jsonl" in r.output
    r = runner.invoke(app, ["score", "--input", "x.jsonl", "--model", "./no/such/model"])
    assert r.exit_code == 2 and "no model at ./no/such/model" in r.output
    r = runner.invoke(app, ["score", "--input", "x.jsonl", "--preset", "ind16+pro8"])
    assert r.exit_code == 2 and "needs --prototypes" in r.output
    r = runner.invoke(app, ["train", "--stage", "dpo", "--input", "x.jsonl"])
    assert r.exit_code == 2 and "stage" in r.output
    r = runner.invoke(app, ["train", "--stage", "grpo", "--input", "x", "--per-device-train-batch-size", "3"])
    assert r.exit_code == 2 and "divisible" in r.output


def test_config_file_and_validation(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("num_prototypes: 7\nrho: 0.25\n")
    from rlcore.cli import load_config

    c = load_config(PrototypeConfig, cfg, input="d.jsonl")
    assert (c.num_prototypes, c.rho) == (7, 0.25)
    with pytest.raises(ValueError, match="tie_rule"):
        EvalConfig(input="d", tie_rule="coin")
    with pytest.raises(ValueError, match="temperature"):
        ScoreConfig(input="x", temperature=-1)


@pytest.mark.parametrize("name, cls", [("build_prototypes", PrototypeConfig), ("eval_scaling", EvalConfig),
                                       ("eval_personalized_rewardbench", EvalConfig),
                                       ("train_sft", TrainConfig), ("train_grpo", TrainConfig),
                                       ("train_curriculum", TrainConfig)])
def test_recipes_load(name, cls):
    from pathlib import Path

    from rlcore.cli import load_config

    path = Path(__file__).resolve().parents[1] / "recipes" / f"{name}.yaml"
    extra = {"prototypes": "protos"} if cls is EvalConfig else {}
    cfg = load_config(cls, path, input="d.jsonl", **extra)
    assert cfg.input == "d.jsonl"


@pytest.mark.slow
def test_study_command_quick():
    r = runner.invoke(app, ["study", "--quick"])
    assert r.exit_code == 0, r.output
    acc = json.loads(r.stdout)["accuracy"]
    assert set(acc) == {"short", "long"}
    assert all(0 <= v <= 1 for row in acc.values() for v in row.values())
    assert set(acc["short"]) == {"ind1", "ind4", "ind8", "ind16", "ind8+pro4", "ind16+pro8", "ind2+cpro2"}
    rel = json.loads(r.stdout)["release_protocol"]["short"]["ind2+cpro2"]
    assert set(rel) == {"accuracy", "dropped_unscored", "dropped_ties"}
