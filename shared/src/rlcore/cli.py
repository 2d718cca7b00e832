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

__all__ = [
    "option",
    "load_config",
    "config_command",
    "config_to_dict",
    "progress",
    "console",
    "fail",
    "check_model_ref",
    "ConfigError",
]


class ConfigError(ValueError):
    """A bad config file or value: the message names the file (or flag) and the key."""

C = TypeVar("C")


def option(default: Any = dataclasses.MISSING, help: str = "", **kw: Any) -> Any:
    """A dataclass field with a one-line ``help`` (shown by ``--help``). Lists/dicts: pass ``default_factory``."""
    md = {"help": help}
    if "default_factory" in kw:
        return dataclasses.field(default_factory=kw.pop("default_factory"), metadata=md, **kw)
    return dataclasses.field(default=default, metadata=md, **kw)


def _read_file(path: Path) -> dict[str, Any]:
    """Parse a YAML/TOML/JSON config; syntax errors name the file and line (:class:`ConfigError`)."""
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    if path.suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise ConfigError(f"config file {path} must be .yaml, .yml, .toml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML: {e}") from None
    elif path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            col = f" (column {mark.column + 1})" if mark is not None else ""
            raise ConfigError(f"{where}: invalid YAML: {problem}{col}") from None
        data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, got {type(data).__name__}")
    return data


class _Mismatch(Exception):
    pass


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return f"one of {list(typing.get_args(tp))}"
    if tp is type(None):
        return "null"
    if origin is not None:
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` checked against the annotation ``tp`` (lossless conversions only); raises ``_Mismatch``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is typing.Literal:
        if value in args:
            return value
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip().replace("_", ""))
            except ValueError:
                pass
        raise _Mismatch
    if tp is float:
        if isinstance(value, bool):
            raise _Mismatch
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `1e-6` as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise _Mismatch
    if isinstance(tp, type) and issubclass(tp, Path):
        if isinstance(value, str | Path):
            return Path(value)
        raise _Mismatch
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set, frozenset):
        if not isinstance(value, list | tuple | set | frozenset):
            raise _Mismatch
        items = list(value)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise _Mismatch
            items = [_coerce(v, a) for v, a in zip(items, args)]
        elif args:
            items = [_coerce(v, args[0]) for v in items]
        return type(value)(items)
    if origin is dict or tp is dict:
        if isinstance(value, dict):
            return value
        raise _Mismatch
    return value  # other annotations: not checked


def _check_types(cls: type, values: dict[str, Any], source: dict[str, str]) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: leave the values to the dataclass
        return values
    out = dict(values)
    for key, value in values.items():
        if key not in hints:
            continue
        try:
            out[key] = _coerce(value, hints[key])
        except _Mismatch:
            raise ConfigError(
                f"{source[key]}: expected {_describe(hints[key])}, got {value!r} ({type(value).__name__})"
            ) from None
    return out


def load_config(cls: type[C], path: str | Path | None = None, **overrides: Any) -> C:
    """Build ``cls`` from its defaults, then a YAML/TOML/JSON file, then ``overrides`` (``None`` values ignored).

    Values are checked against the field annotations: lossless conversions are made (an int for a float field,
    ``"1e-6"`` for a float, a string for a ``Path``), anything else is an error naming the file and key (or flag).

    Raises:
        ValueError: the file names a key that is not a field of ``cls`` (the message lists the unknown keys).
        ConfigError: (a ``ValueError``) invalid YAML/TOML/JSON syntax (file and line named), or a value of the
            wrong type (``path: key: expected float, got 'abc' (str)``).

    """
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    if path is not None:
        file_values = _read_file(Path(path))
        values.update(file_values)
        source.update({k: f"{path}: {k}" for k in file_values})
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    source.update({k: "--" + k.replace("_", "-") for k in given})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        where = f" in {path}" if path is not None and set(unknown) & set(file_values) else ""
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown}{where}; valid: {sorted(names)}")
    return cls(**_check_types(cls, values, source))


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
    ``FileNotFoundError`` raised while building the config or running is printed as a one-line error (exit 2), and
    so is an ``ImportError`` (a missing optional extra). ``--help`` uses click's plain layout (the app's
    ``rich_markup_mode`` is set to ``None``): flag names are never truncated at 80 columns and help text is shown
    verbatim (``'rlcore[vllm]'`` stays as written).
    """
    import typer

    hints = typing.get_type_hints(cls)
    if hasattr(app, "rich_markup_mode"):
        app.rich_markup_mode = None

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
                result = fn(cfg)
                from .training import end_distributed

                end_distributed(exit_process=True)  # under a launch: every rank leaves together, now
                return result
            except (ValueError, FileNotFoundError) as e:
                fail(str(e))
            except ImportError as e:  # an optional extra that is not installed
                fail(_import_error_line(e))

        wrapper.__signature__ = inspect.Signature(params)  # typer reads the signature
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        app.command(name, **command_kw)(wrapper)
        return fn

    return deco


def _import_error_line(e: ImportError) -> str:
    msg = (str(e).strip().splitlines() or [""])[0]
    if "pip install" in msg:
        return msg
    name = getattr(e, "name", None)
    return f"{msg} (a missing optional dependency: pip install {name.split('.')[0]})" if name else msg


def check_model_ref(ref: str) -> str:
    """Check a model reference before any heavy import or hub call; returns the resolved reference.

    ``builtin:<name>`` -> its directory (unknown names are an error listing the built-ins); a *local-looking*
    reference (starts with ``/``, ``./``, ``../``, ``~``, or has more than one ``/``, which no hub id has) must
    exist; anything else (``org/name``, ``name``) is passed through as a hub id.

    Raises:
        ValueError: ``"no model at ./x"`` for a local-looking path that does not exist (one line, no hub retry).

    Example:
        >>> check_model_ref("Qwen/Qwen2.5-0.5B")
        'Qwen/Qwen2.5-0.5B'
        >>> check_model_ref("./no/such/dir")
        Traceback (most recent call last):
        ...
        ValueError: no model at ./no/such/dir

    """
    from .builtins import resolve

    ref = str(ref)
    if not ref.strip():
        raise ValueError("empty model reference (give --model builtin:<name>, a local directory or a hub id)")
    if ref.startswith("builtin:"):
        return resolve(ref)
    p = Path(ref).expanduser()
    if p.exists():
        return ref
    local = ref.startswith(("/", "./", "../", "~", ".\\", "..\\")) or ref in (".", "..") or ref.count("/") > 1
    local = local or "\\" in ref or (len(ref) > 1 and ref[1] == ":")  # Windows paths
    if local:
        raise ValueError(f"no model at {ref}")
    return ref


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
