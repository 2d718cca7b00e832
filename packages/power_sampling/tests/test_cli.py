import dataclasses
import json

import pytest
from power_sampling.cli import app
from power_sampling.config import EvalConfig, GenerateConfig, SamplerConfig
from rlcore.testing import save_tiny_causal_lm
from typer.testing import CliRunner

runner = CliRunner()


def _options(command: str) -> set[str]:
    import typer.main

    cmd = typer.main.get_command(app).commands[command]
    return {p.name for p in cmd.params} - {"config"}


@pytest.mark.parametrize("command,cls", [("generate", GenerateConfig), ("eval", EvalConfig)])
def test_flags_are_config_fields(command, cls):
    assert _options(command) == {f.name for f in dataclasses.fields(cls)}


def test_config_validation_names_field():
    with pytest.raises(ValueError, match="alpha"):
        SamplerConfig(alpha=0.5)
    with pytest.raises(ValueError, match="block_size"):
        SamplerConfig(block_size=0)
    with pytest.raises(ValueError, match="model is required"):
        EvalConfig(input="x.jsonl", output="o.jsonl")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny"))


def test_eval_end_to_end(tmp_path, model_dir):
    data = tmp_path / "arith.jsonl"
    data.write_text('{"question": "1+1=", "answer": "2"}\n{"question": "2+5=", "answer": "7"}\n')
    out = tmp_path / "res.jsonl"
    r = runner.invoke(app, ["eval", "--model", model_dir, "--task", "arith", "--input", str(data), "--output", str(out),
                            "--max-new-tokens", "6", "--block-size", "3", "--mcmc-steps", "2", "--num-samples", "2",
                            "--method", "power,low_temp,base", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 * 2 * 2 and {r["method"] for r in rows} == {"power", "low_temp", "base"}
    summary = json.loads((tmp_path / "res.jsonl.summary.json").read_text())["summary"]
    assert set(summary) == {"power", "low_temp", "base"} and "pass@2" in summary["power"]
    assert summary["power"]["mean_tokens_generated"] > summary["low_temp"]["mean_tokens_generated"]


def test_generate_end_to_end_with_config_file(tmp_path, model_dir):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hello"}\n')
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: {model_dir}\nmax_new_tokens: 4\nblock_size: 2\nmcmc_steps: 1\n")
    out = tmp_path / "g.jsonl"
    r = runner.invoke(app, ["generate", "--config", str(cfg), "--input", str(prompts), "--output", str(out),
                            "--num-chains", "3", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(len(r["token_ids"]) <= 4 for r in rows)


def test_bad_flag_is_one_line_error(tmp_path):
    r = runner.invoke(app, ["eval", "--model", "x", "--input", "d.jsonl", "--output", "o.jsonl", "--alpha", "0.5"])
    assert r.exit_code == 2 and "alpha must be >= 1" in r.output
    r = runner.invoke(app, ["eval", "--model", "x", "--input", str(tmp_path / "none.jsonl"), "--output", "o.jsonl",
                            "--task", "nope"])
    assert r.exit_code == 2 and "unknown task" in r.output


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys; from power_sampling.cli import app; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_baselines_generate_through_rlcore_and_power_through_mh(tmp_path, model_dir):
    """--backend hf: low_temp/base go through rlcore's Generator (recorded), power through the MH sampler."""
    from rlcore.testing import recording_generators

    data = tmp_path / "arith.jsonl"
    data.write_text('{"question": "1+1=", "answer": "2"}\n')
    args = ["eval", "--model", model_dir, "--task", "arith", "--input", str(data), "--max-new-tokens", "4",
            "--block-size", "2", "--mcmc-steps", "1", "--device", "cpu", "--backend", "hf"]
    with recording_generators() as calls:
        r = runner.invoke(app, [*args, "--method", "low_temp,base", "--output", str(tmp_path / "a.jsonl")])
    assert r.exit_code == 0, r.output
    assert [c.kind for c in calls] == ["generate", "generate"]
    assert [c.params.temperature for c in calls] == [0.25, 1.0] and all(c.params.top_k == 50 for c in calls)
    with recording_generators() as calls:
        r = runner.invoke(app, [*args, "--method", "power", "--output", str(tmp_path / "b.jsonl")])
    assert r.exit_code == 0, r.output and calls == []  # MH fast path: its own cache-surgery decode loop


def test_vllm_backend_missing_is_one_line_exit_2(tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:  # pragma: no cover - GPU machines
        return
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hi", "answer": "1"}\n')
    for verb, extra in (("generate", []), ("eval", ["--task", "arith"])):
        r = runner.invoke(app, [verb, "--model", "builtin:tiny-reasoner", "--input", str(prompts), "--output",
                                str(tmp_path / "o.jsonl"), "--backend", "vllm", *extra])
        assert r.exit_code == 2, r.output
        assert "the vllm backend needs vLLM: pip install 'rlcore" in r.output
        assert "Traceback" not in r.output and not (tmp_path / "o.jsonl").exists()
    r = runner.invoke(app, ["generate", "--model", "x", "--input", str(prompts), "--output", "o", "--backend", "tpu"])
    assert r.exit_code == 2 and "unknown backend 'tpu'" in r.output


def test_help_lists_backend_and_python_m_works():
    import subprocess
    import sys

    for verb in ("generate", "eval"):
        r = subprocess.run([sys.executable, "-m", "power_sampling", verb, "--help"], capture_output=True, text=True,
                           timeout=120, env={"COLUMNS": "200", "PATH": ""})
        assert r.returncode == 0, r.stderr
        for flag in ("--backend", "--tensor-parallel-size", "--gpu-memory-utilization", "--input", "--output",
                     "--model", "--seed", "--device"):
            assert flag in r.stdout, (verb, flag)


def test_builtin_model_with_eval_defaults(tmp_path):
    """builtin:tiny-reasoner with every other flag at its default (T=3072 is shortened to fit its context)."""
    out = tmp_path / "o.jsonl"
    r = runner.invoke(app, ["eval", "--model", "builtin:tiny-reasoner", "--task", "arith", "--input",
                            "builtin:arithmetic/test.jsonl", "--limit", "1", "--output", str(out),
                            "--mcmc-steps", "1"])
    assert r.exit_code == 0, r.output
    assert "max_new_tokens 3072 ->" in r.output
    assert len(out.read_text().splitlines()) == 3


def test_generate_streams_and_rerun_fills_only_missing(tmp_path, model_dir):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "a", "prompt": "hello"}\n{"id": "b", "prompt": "a b c"}\n')
    out = tmp_path / "g.jsonl"
    args = ["generate", "--model", model_dir, "--input", str(prompts), "--output", str(out), "--num-chains", "2",
            "--max-new-tokens", "4", "--block-size", "2", "--mcmc-steps", "1", "--device", "cpu", "--batch-size", "1"]
    assert runner.invoke(app, args).exit_code == 0
    full = out.read_text().splitlines()
    assert [json.loads(x)["id"] for x in full] == ["a:0", "a:1", "b:0", "b:1"]
    out.write_text("\n".join(full[:2]) + "\n" + full[2][:10])  # a crash mid-write: b:0 half written
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "wrote 2 samples" in r.output, r.output
    assert out.read_text().splitlines() == full  # same records: chains depend only on (seed, prompt, chain)
    r = runner.invoke(app, [*args[:-2], "--batch-size", "2", "--method", "smc"])  # all ids done: nothing to do
    assert r.exit_code == 0 and out.read_text().splitlines() == full
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n')
    r = runner.invoke(app, ["generate", "--model", model_dir, "--input", str(dup), "--output", str(tmp_path / "d")])
    assert r.exit_code == 2 and "records 0 and 1 share id 'a'" in r.output


def test_generate_smc_writes_particle_weights(tmp_path, model_dir):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "hello"}\n')
    out = tmp_path / "s.jsonl"
    r = runner.invoke(app, ["generate", "--model", model_dir, "--input", str(prompts), "--output", str(out),
                            "--method", "smc", "--num-particles", "3", "--max-new-tokens", "4", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    rec = json.loads(out.read_text())
    assert len(rec["particle_weights"]) == 3 and abs(sum(rec["particle_weights"]) - 1) < 1e-6
    assert rec["tokens_generated"] == 3 * len(rec["token_ids"]) or rec["finish_reason"] == "eos"


def test_vllm_backend_wiring_runs_every_method_on_the_generator(tmp_path, model_dir, monkeypatch):
    """--backend vllm with a stand-in engine (rlcore's HFGenerator behind make_generator, no GPU here): every MH
    method runs as GeneratorPowerSampler moves through the generator, with per-row seeds; SMC is refused."""
    import rlcore.rollout as rollout
    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.testing import recording_generators

    made = []

    def fake_make_generator(model, tokenizer=None, *, backend="hf", **kw):
        made.append((backend, model, kw))
        m, tok = load_model_and_tokenizer(str(model), device="cpu")
        return rollout.HFGenerator(m, tok)

    monkeypatch.setattr(rollout, "make_generator", fake_make_generator)
    data = tmp_path / "arith.jsonl"
    data.write_text('{"question": "1+1=", "answer": "2"}\n')
    args = ["eval", "--model", model_dir, "--task", "arith", "--input", str(data), "--max-new-tokens", "4",
            "--block-size", "2", "--mcmc-steps", "1", "--backend", "vllm", "--tensor-parallel-size", "2",
            "--gpu-memory-utilization", "0.5"]
    with recording_generators() as calls:
        r = runner.invoke(app, [*args, "--method", "power,base", "--output", str(tmp_path / "v.jsonl")])
    assert r.exit_code == 0, r.output
    assert made == [("vllm", model_dir, {"seed": 0, "tensor_parallel_size": 2, "gpu_memory_utilization": 0.5})]
    # power: 2 blocks x (extension + 1 MH move) = 4 calls; base: 1 call
    assert len(calls) == 5 and all(c.kind == "generate" for c in calls)
    r = runner.invoke(app, [*args, "--method", "smc", "--output", str(tmp_path / "s.jsonl")])
    assert r.exit_code == 2 and "smc needs --backend hf" in r.output
