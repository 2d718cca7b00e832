"""Shared CLI conventions: typer commands whose flags are a config dataclass's fields, ``--config`` YAML/TOML.

Precedence: dataclass defaults < ``--config`` file < flags given on the command line.

Example:
    >>> import dataclasses, typer
    >>> @dataclasses.dataclass
    ... class Cfg:
    ...     lr: float = option(1e-6, "learning rate (paper Table 3)")
    >>> app = typer.Typer()
    >>> @config_command(app, "train", Cfg)
    ... def train(cfg: Cfg) -> None:
    ...     print(cfg.lr)

"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import tomllib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

__all__ = ["option", "load_config", "config_command", "config_to_dict", "progress", "console", "fail"]

C = TypeVar("C")


def option(default: Any = dataclasses.MISSING, help: str = "", **kw: Any) -> Any:
    """A dataclass field with a one-line ``help`` (shown by ``--help``). Lists/dicts: pass ``default_factory``."""
    md = {"help": help}
    if "default_factory" in kw:
        return dataclasses.field(default_factory=kw.pop("default_factory"), metadata=md, **kw)
    return dataclasses.field(default=default, metadata=md, **kw)


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        return tomllib.loads(text)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    elif path.suffix == ".json":
        data = json.loads(text)
    else:
        raise ValueError(f"config file {path} must be .yaml, .yml, .toml or .json")
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping at the top level")
    return data


def load_config(cls: type[C], path: str | Path | None = None, **overrides: Any) -> C:
    """Build ``cls`` from its defaults, then a YAML/TOML/JSON file, then ``overrides`` (``None`` values ignored).

    Raises:
        ValueError: the file names a key that is not a field of ``cls`` (the message lists the unknown keys).

    """
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_file(Path(path)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid: {sorted(names)}")
    return cls(**values)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """The config as a JSON-friendly dict (paths become strings)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def _cli_type(tp: Any) -> Any:
    """The typer-compatible optional type of a dataclass field annotation."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _cli_type(args[0])
        return str
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(tp) or (str,)
        return list[inner] | None
    if tp in (str, int, float, bool, Path):
        return tp | None
    if origin is typing.Literal:
        return str | None
    return str | None


def config_command(app: Any, name: str, cls: type, **command_kw: Any) -> Callable:
    """Register ``fn(cfg)`` as typer command ``name`` whose options are exactly ``cls``'s fields (+ ``--config``).

    Field ``foo_bar`` becomes ``--foo-bar``; booleans get ``--foo/--no-foo``. A ``ValueError`` or
    ``FileNotFoundError`` raised while building the config or running is printed as a one-line error (exit 2).
    """
    import typer

    hints = typing.get_type_hints(cls)

    def deco(fn: Callable[[Any], Any]) -> Callable:
        params = [
            inspect.Parameter(
                "config",
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[Path | None, typer.Option(help="YAML/TOML/JSON file of config fields; flags override it.")],
            )
        ]
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            default = f.default if f.default is not dataclasses.MISSING else None
            shown = f" (default: {default})" if default not in (None, "") else ""
            helptext = f.metadata.get("help", "") + shown
            params.append(
                inspect.Parameter(
                    f.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=None,
                    annotation=Annotated[_cli_type(hints[f.name]), typer.Option(help=helptext, show_default=False)],
                )
            )

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            path = kwargs.pop("config", None)
            try:
                cfg = load_config(cls, path, **kwargs)
                return fn(cfg)
            except (ValueError, FileNotFoundError) as e:
                fail(str(e))

        wrapper.__signature__ = inspect.Signature(params)  # typer reads the signature
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        app.command(name, **command_kw)(wrapper)
        return fn

    return deco


def console():
    """A rich console on stderr (stdout stays free for results)."""
    from rich.console import Console

    return Console(stderr=True)


def fail(message: str, code: int = 2) -> typing.NoReturn:
    """Print ``error: message`` in red on stderr and exit with ``code``; ``message`` is shown verbatim (no markup)."""
    import typer
    from rich.markup import escape

    console().print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def progress(**kw: Any):
    """A rich progress bar (description, bar, M/N, elapsed, remaining) on stderr; use as a context manager."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console(),
        **kw,
    )
