"""I7: config errors name the file and key, model refs are checked first, help fits 80 columns, extras fail in one line."""

import ast
import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
import typer
from rlcore.cli import ConfigError, check_model_ref, config_command, load_config, option
from typer.testing import CliRunner


@dataclasses.dataclass
class Cfg:
    lr: float = option(1e-6, "learning rate")
    steps: int = option(10, "optimizer steps")
    name: str = option("run", "run name")
    use_kl: bool = option(False, "add the KL term")
    mode: Literal["token", "sequence"] = option("token", "importance sampling level")
    tags: list[str] = option(help="tags", default_factory=list)
    window: tuple[float, float] = option((0.0, 1.0), "a range")
    out: Path | None = option(None, "output file")
    a_really_long_option_name_for_the_eighty_column_test: int = option(1, "long flag names must stay whole")


def _app(seen=None, raise_exc=None):
    app = typer.Typer()

    @config_command(app, "train", Cfg)
    def train(cfg):
        if raise_exc is not None:
            raise raise_exc
        (seen if seen is not None else []).append(cfg)

    @app.command()
    def other():
        pass

    return app


def _one_line_error(r):
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("lr: 0.5\nname: [unclosed\nsteps: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:3: invalid YAML: .*column"):
        load_config(Cfg, p)
    p.write_text("lr: 0.5\n  steps: 3\n")  # bad indentation
    with pytest.raises(ConfigError, match=r"bad\.yaml:2: invalid YAML: mapping values are not allowed here"):
        load_config(Cfg, p)
    line = _one_line_error(CliRunner().invoke(_app(), ["train", "--config", str(p)]))
    assert "bad.yaml:2: invalid YAML" in line


def test_toml_and_json_syntax_errors_name_file_and_line(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('lr = 0.5\nname = "unterminated\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: invalid TOML: .*line 2"):
        load_config(Cfg, p)
    q = tmp_path / "bad.json"
    q.write_text('{"lr": 0.5,\n "name": }\n')
    with pytest.raises(ConfigError, match=r"bad\.json:2: invalid JSON"):
        load_config(Cfg, q)
    r = tmp_path / "list.yaml"
    r.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping at the top level, got list"):
        load_config(Cfg, r)


def test_wrong_types_name_file_key_and_expected_type(tmp_path):
    p = tmp_path / "c.yaml"
    cases = {
        "lr: abc": r"c\.yaml: lr: expected float, got 'abc' \(str\)",
        "steps: 2.5": r"c\.yaml: steps: expected int, got 2\.5 \(float\)",
        "use_kl: maybe": r"c\.yaml: use_kl: expected bool, got 'maybe' \(str\)",
        "mode: tokens": r"c\.yaml: mode: expected one of \['token', 'sequence'\], got 'tokens'",
        "tags: a": r"c\.yaml: tags: expected list\[str\], got 'a' \(str\)",
        "window: [1, 2, 3]": r"c\.yaml: window: expected tuple\[float, float\], got \[1, 2, 3\]",
        "name: [1]": r"c\.yaml: name: expected str, got \[1\] \(list\)",
    }
    for text, msg in cases.items():
        p.write_text(text + "\n")
        with pytest.raises(ConfigError, match=msg):
            load_config(Cfg, p)
    line = _one_line_error(CliRunner().invoke(_app(), ["train", "--config", str(p)]))
    assert line.startswith(f"error: {p}: name: expected str")
    with pytest.raises(ConfigError, match=r"--mode: expected one of \['token', 'sequence'\], got 'seq'"):
        load_config(Cfg, None, mode="seq")


def test_lossless_conversions(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lr: 1e-5\nsteps: 4.0\nname: 2024\nwindow: [0, 2]\nout: res.jsonl\ntags: [x, y]\n")
    cfg = load_config(Cfg, p)  # YAML reads 1e-5 as a string; 4.0 is an integral float
    assert cfg.lr == 1e-5 and cfg.steps == 4 and cfg.name == "2024" and cfg.window == [0.0, 2.0]  # container kind kept
    assert cfg.out == Path("res.jsonl") and cfg.tags == ["x", "y"] and isinstance(cfg.steps, int)
    t = tmp_path / "c.toml"
    t.write_text('lr = 1\nmode = "sequence"\n')
    assert load_config(Cfg, t).lr == 1.0 and load_config(Cfg, t).mode == "sequence"


def test_unknown_key_names_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lrr: 1\n")
    with pytest.raises(ValueError, match=r"unknown Cfg field\(s\) \['lrr'\] in .*c\.yaml"):
        load_config(Cfg, p)


def test_check_model_ref(tmp_path):
    assert check_model_ref("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    assert check_model_ref("gpt2") == "gpt2"
    assert check_model_ref(str(tmp_path)) == str(tmp_path)
    assert check_model_ref("builtin:tiny-reasoner").endswith("tiny-reasoner")
    for bad in ("./x", "../models/x", "/no/such/model", "~/no-such-model-dir", "runs/a/final"):
        with pytest.raises(ValueError) as e:
            check_model_ref(bad)
        assert str(e.value) == f"no model at {bad}"
    with pytest.raises(ValueError, match="unknown built-in"):
        check_model_ref("builtin:nope")
    with pytest.raises(ValueError, match="empty model reference"):
        check_model_ref("")


def test_load_model_mistyped_path_fails_before_transformers_import():
    code = (
        "import sys\n"
        "from rlcore.builtins import load_model_and_tokenizer\n"
        "try:\n"
        "    load_model_and_tokenizer('./no-such-model')\n"
        "except ValueError as e:\n"
        "    print(e)\n"
        "print('transformers' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.splitlines() == ["no model at ./no-such-model", "False"], r.stderr[-2000:]


def test_load_model_unknown_hub_id_or_empty_dir_is_one_line(tmp_path):
    from rlcore.builtins import load_model_and_tokenizer

    with pytest.raises(ValueError, match=r"^no model at .*: the directory has no config\.json$"):
        load_model_and_tokenizer(str(tmp_path))
    code = (
        "from rlcore.builtins import load_model_and_tokenizer\n"
        "try:\n"
        "    load_model_and_tokenizer('no-such-org/no-such-model')\n"
        "except ValueError as e:\n"
        "    print(repr(str(e)))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # read at import: a fresh process
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    msg = ast.literal_eval(r.stdout.strip())
    assert msg.startswith("cannot load model 'no-such-org/no-such-model': ") and "\n" not in msg, r.stderr[-2000:]


def test_import_error_of_an_extra_is_one_line_exit_2():
    exc = ModuleNotFoundError("No module named 'vllm'", name="vllm")
    line = _one_line_error(CliRunner().invoke(_app(raise_exc=exc), ["train"]))
    assert line == "error: No module named 'vllm' (a missing optional dependency: pip install vllm)"
    exc = ImportError("the vllm backend needs vLLM: pip install 'rlcore[vllm]'")
    line = _one_line_error(CliRunner().invoke(_app(raise_exc=exc), ["train"]))
    assert line == "error: the vllm backend needs vLLM: pip install 'rlcore[vllm]'"


def test_help_at_80_columns_keeps_flag_names_whole():
    r = CliRunner().invoke(_app(), ["train", "--help"], terminal_width=80, env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines()) <= 80
    for flag in ("--a-really-long-option-name-for-the-eighty-column-test", "--use-kl", "--no-use-kl", "--config"):
        assert flag in r.output.split(), flag
    assert "…" not in r.output
