import dataclasses
import json

import pytest
import typer
from rlcore.builtins import check_vocab, resolve
from rlcore.cli import config_command, load_config, option
from rlcore.device import get_device, get_dtype, resolve_dtype, seed_everything
from rlcore.io import DataError, atomic_write, read_jsonl, write_jsonl
from rlcore.training import accelerate_config_path, make_grpo_config
from typer.testing import CliRunner


@dataclasses.dataclass
class Cfg:
    lr: float = option(1e-6, "learning rate")
    name: str = option("run", "run name")
    use_kl: bool = option(False, "add the KL term")
    tags: list[str] = option(help="tags", default_factory=list)

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def _app(seen):
    app = typer.Typer()

    @config_command(app, "train", Cfg)
    def train(cfg):
        seen.append(cfg)

    @app.command()
    def other():
        pass

    return app


def test_cli_flags_are_config_fields():
    app = _app([])
    cmd = typer.main.get_command(app).commands["train"]
    opts = {p.name for p in cmd.params if p.param_type_name == "option"} - {"config", "help"}
    assert opts == {f.name for f in dataclasses.fields(Cfg)}


def test_config_file_then_flags(tmp_path):
    seen = []
    (tmp_path / "c.yaml").write_text("lr: 0.5\nname: fromfile\n")
    r = CliRunner().invoke(_app(seen), ["train", "--config", str(tmp_path / "c.yaml"), "--name", "flag", "--use-kl",
                                        "--tags", "a", "--tags", "b"])
    assert r.exit_code == 0, r.output
    assert seen[0] == Cfg(lr=0.5, name="flag", use_kl=True, tags=["a", "b"])
    (tmp_path / "c.toml").write_text('lr = 0.25\n')
    assert load_config(Cfg, tmp_path / "c.toml").lr == 0.25


def test_config_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(_app([]), ["train", "--lr", "-1"])
    assert r.exit_code == 2 and "lr must be > 0" in r.output
    (tmp_path / "bad.yaml").write_text("lrr: 1\n")
    r = CliRunner().invoke(_app([]), ["train", "--config", str(tmp_path / "bad.yaml")])
    assert r.exit_code == 2 and "unknown Cfg field(s) ['lrr']" in r.output
    r = CliRunner().invoke(_app([]), ["train", "--config", str(tmp_path / "missing.yaml")])
    assert r.exit_code == 2 and "not found" in r.output


def test_jsonl_errors_name_file_and_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(DataError, match=r"d.jsonl:3: malformed JSON"):
        read_jsonl(p)
    p.write_text('{"a": 1}\n[1]\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: expected a JSON object"):
        read_jsonl(p)
    p.write_text('{"a": 1}\n{"b": 1}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: record lacks required field\(s\) \['a'\]"):
        read_jsonl(p, required=["a"])
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_jsonl(tmp_path / "nope.jsonl")
    p.write_text("\n")
    with pytest.raises(DataError, match="no records"):
        read_jsonl(p)


def test_atomic_write_all_or_nothing(tmp_path):
    p = tmp_path / "out.jsonl"
    assert write_jsonl(p, [{"x": 1}, {"x": 2}]) == 2
    with pytest.raises(RuntimeError), atomic_write(p) as f:
        f.write("half")
        raise RuntimeError("crash")
    assert [json.loads(line) for line in p.read_text().splitlines()] == [{"x": 1}, {"x": 2}]
    assert list(tmp_path.iterdir()) == [p]  # no temp file left behind


def test_device_helpers():
    assert get_device("cpu").type == "cpu"
    assert get_dtype("cpu").is_floating_point
    assert resolve_dtype("bf16") is not None
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("fp7")
    import random

    import numpy as np
    import torch

    seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())


def test_builtins_and_vocab_check():
    assert resolve("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    with pytest.raises(ValueError, match="unknown built-in"):
        resolve("builtin:nope")
    from rlcore.testing import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer()
    with pytest.raises(ValueError, match="mismatch"):
        check_vocab(tiny_causal_lm(tok, vocab_size=100), tok)


def test_training_helpers(tmp_path):
    import yaml

    for name in ("ddp", "zero2", "zero3"):
        with open(accelerate_config_path(name)) as f:
            cfg = yaml.safe_load(f)
        assert cfg["distributed_type"] in ("MULTI_GPU", "DEEPSPEED")
    with pytest.raises(ValueError, match="unknown accelerate config"):
        accelerate_config_path("fsdp9")
    with pytest.raises(ValueError, match=r"unknown GRPOConfig field\(s\) \['lrr'\]"):
        make_grpo_config(str(tmp_path), lrr=1)
    args = make_grpo_config(str(tmp_path), beta=0.001, num_generations=8, per_device_train_batch_size=8)
    assert args.beta == 0.001 and args.num_generations == 8 and not args.bf16


def test_list_builtins_lists_directories_only():
    from rlcore.builtins import list_builtins, tiny_reasoner_prompt

    names = list_builtins()
    assert "README.md" not in names and "tiny-reasoner" in names and "arithmetic" in names
    assert tiny_reasoner_prompt("Compute 2+3.") == "Question: Compute 2+3.\nAnswer: <think>"
