import dataclasses

import typer
from rlcore.cli import config_command, fail, option
from typer.testing import CliRunner


@dataclasses.dataclass
class _Cfg:
    x: int = option(1, "x")


def test_fail_prints_message_verbatim_on_one_line():
    app = typer.Typer()
    msg = "the vllm backend needs vLLM: pip install 'rlcore[vllm]' " + "and a long tail " * 8

    @config_command(app, "go", _Cfg)
    def go(cfg):
        fail(msg)

    @app.command()
    def other():
        pass

    r = CliRunner().invoke(app, ["go"])
    assert r.exit_code == 2
    assert r.output.strip() == "error: " + msg.strip()  # [vllm] not eaten as markup, no wrapping at 80 columns
