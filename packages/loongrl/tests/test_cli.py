import dataclasses
import json

import pytest
from loongrl.cli import app
from loongrl.config import EvalConfig, FilterConfig, NiahConfig, SynthConfig, SynthMixConfig, TrainConfig
from loongrl.data import make_synthetic_qa, save_qa
from typer.testing import CliRunner

runner = CliRunner()


@pytest.mark.parametrize(("cmd", "cls"), [("synth", SynthConfig), ("filter", FilterConfig), ("train", TrainConfig),
                                          ("eval", EvalConfig), ("niah", NiahConfig), ("synth-mix", SynthMixConfig)])
def test_options_equal_config_fields(cmd, cls):
    import typer.main

    command = typer.main.get_command(app).commands[cmd]
    opts = {p.name for p in command.params} - {"config"}
    assert opts == {f.name for f in dataclasses.fields(cls)}


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    from rlcore.testing import tiny_tokenizer

    d = tmp_path_factory.mktemp("tok")
    tiny_tokenizer().save_pretrained(str(d))
    return str(d)


def test_synth_end_to_end(tmp_path, tok_dir):
    src = tmp_path / "seed.jsonl"
    save_qa(src, make_synthetic_qa(30, seed=0))
    out = tmp_path / "kc.jsonl"
    r = runner.invoke(app, ["synth", "--input", str(src), "--output", str(out), "--tokenizer", tok_dir,
                            "--max-seq-length", "1024", "--num-samples", "2", "--id-format", "full36"])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(recs) == 2 and len(recs[0]["chain_head_with_question"]) == 36 and recs[0]["num_chains"] == 4


def test_bad_inputs_exit_2_with_clear_messages(tmp_path, tok_dir):
    weird = tmp_path / "weird.json"
    weird.write_text(json.dumps([{"foo": 1}]))
    r = runner.invoke(app, ["synth", "--input", str(weird), "--output", str(tmp_path / "o.jsonl"),
                            "--tokenizer", tok_dir])
    assert r.exit_code == 2 and "unknown QA format" in r.output
    small = tmp_path / "seed.jsonl"
    save_qa(small, make_synthetic_qa(30, seed=0))
    r = runner.invoke(app, ["synth", "--input", str(small), "--output", str(tmp_path / "o.jsonl"),
                            "--tokenizer", tok_dir, "--max-seq-length", "200"])
    assert r.exit_code == 2 and "item 'syn-0-0'" in r.output and "own" in r.output
    r = runner.invoke(app, ["synth", "--input", str(small), "--output", "x", "--tokenizer", tok_dir,
                            "--id-format", "nano"])
    assert r.exit_code == 2 and "id_format must be one of" in r.output
    r = runner.invoke(app, ["eval", "--input", str(small)])
    assert r.exit_code == 2 and "--model is required" in r.output


@pytest.mark.parametrize(("name", "cls"), [("train-7b", TrainConfig), ("train-14b", TrainConfig),
                                           ("synth-16k", SynthConfig), ("filter", FilterConfig),
                                           ("synth-mix-16k", SynthMixConfig)])
def test_recipes_load(name, cls):
    from pathlib import Path

    from rlcore.cli import load_config

    cfg = load_config(cls, Path(__file__).parents[1] / "recipes" / f"{name}.yaml")
    if cls is TrainConfig:
        assert (cfg.num_generations, cfg.beta, cfg.learning_rate) == (8, 0.001, 1e-6)
        assert cfg.warmup_steps == (0 if name == "train-14b" else 42)
        # every data file the recipe reads is one `loongrl synth` / `synth-mix` writes
        from loongrl.data_mix import mix_file_names

        made = {f"data/{n}" for n in mix_file_names(16384).values()} | {"data/keychain_16k.jsonl"}
        assert {cfg.input, cfg.multihop_input, *cfg.extra_input} <= made


def test_generating_verbs_list_backend_and_vllm_is_one_line(tmp_path):
    import importlib.util

    for cmd in ("filter", "train", "eval", "niah"):
        r = runner.invoke(app, [cmd, "--help"], terminal_width=80)
        assert r.exit_code == 0 and "--backend" in r.output
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here: the missing-vLLM message cannot be shown")
    seed = tmp_path / "seed.jsonl"
    save_qa(seed, make_synthetic_qa(4, seed=0))
    r = runner.invoke(app, ["eval", "--model", "builtin:tiny-reasoner", "--input", str(seed), "--backend", "vllm"])
    assert r.exit_code == 2 and "pip install 'rlcore[vllm]'" in r.output and "Traceback" not in r.output
    assert len([ln for ln in r.output.splitlines() if ln.strip()]) == 1


def test_lengths_flag_takes_several_values(tmp_path, monkeypatch):
    """The README line `niah --lengths 4096 8192 16384` parses (typer alone says 'unexpected extra argument')."""
    from loongrl import cli

    seen = {}
    monkeypatch.setattr(cli, "run_niah", None, raising=False)

    def fake(cfg):
        seen["lengths"], seen["depths"] = cfg.lengths, cfg.depths

    monkeypatch.setattr(cli, "_niah_impl", fake)
    with pytest.raises(SystemExit) as e:
        cli.main(["niah", "--model", "m", "--lengths", "4096", "8192", "16384", "--depths", "0", "1", "--trials", "1"])
    assert e.value.code == 0
    assert seen == {"lengths": [4096, 8192, 16384], "depths": [0.0, 1.0]}
