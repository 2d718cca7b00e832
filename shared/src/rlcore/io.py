"""JSONL readers/writers that name the file and line of a bad record, and atomic writes."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DataError",
    "read_jsonl",
    "iter_jsonl",
    "write_jsonl",
    "atomic_write",
    "atomic_write_text",
    "write_json",
    "ResumableJsonlWriter",
    "current_umask",
]


class DataError(ValueError):
    """Bad input data: the message names the file, the line (1-based) and what is wrong."""


def iter_jsonl(path: str | os.PathLike, required: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of a JSONL file; blank lines are skipped.

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
        DataError: a line is not valid JSON, not an object, or lacks a ``required`` key (file:line named).

    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"JSONL file not found: {p}")
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{p}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{p}:{lineno}: expected a JSON object, got {type(rec).__name__}")
            missing = [k for k in required if k not in rec]
            if missing:
                raise DataError(f"{p}:{lineno}: record lacks required field(s) {missing}")
            yield rec


def read_jsonl(path: str | os.PathLike, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Read a whole JSONL file (see :func:`iter_jsonl`); an empty file is a :class:`DataError`."""
    records = list(iter_jsonl(path, required))
    if not records:
        raise DataError(f"{path}: no records")
    return records


def current_umask() -> int:
    """The process umask (read from ``/proc`` where possible, else set-and-restore)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode(path: Path) -> int:
    """Mode for a new file at ``path``: the existing file's mode, else 0666 minus the umask (0644 usually)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8"):
    """Open a temporary file beside ``path`` and rename it over ``path`` only if the block succeeds.

    A crash mid-write leaves the old file (or none), never a half-written one. The file gets normal permissions
    (0666 minus the umask, i.e. 0644 usually; an existing file keeps its mode), not ``mkstemp``'s 0600.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode(p))
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_write(path) as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSONL atomically; returns the number written."""
    n = 0
    with atomic_write(path) as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


class ResumableJsonlWriter:
    """Append-only JSONL output that a killed run can resume: ``.done`` holds the keys already written.

    On open, an existing file is read: every complete line's ``key`` goes into ``.done``; a trailing partial line
    (a crash mid-write) is cut off the file. ``write(rec)`` appends one line, flushes and fsyncs, so a record is
    either wholly in the file or not at all. A new file gets normal permissions (0644 under the usual umask).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "out.jsonl")
        >>> with ResumableJsonlWriter(path) as w:
        ...     for rec in [{"id": 1}, {"id": 2}]:
        ...         if rec["id"] not in w.done:
        ...             w.write(rec)
        >>> sorted(ResumableJsonlWriter(path).done)
        [1, 2]

    Raises:
        DataError: a complete line is not a JSON object, or lacks ``key`` (file:line named).

    """

    def __init__(self, path: str | os.PathLike, key: str = "id"):
        self.path = Path(path)
        self.key = key
        self.done: set[Any] = set()
        self.n_written = 0
        self._f = None
        self._scan()

    def _scan(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # bytes up to the last complete line
        for lineno, line in enumerate(data[:end].decode("utf-8").split("\n")[:-1], 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{self.path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict) or self.key not in rec:
                raise DataError(f"{self.path}:{lineno}: record lacks the resume key {self.key!r}")
            self.done.add(_hashable(rec[self.key]))
        if end < len(data):  # drop a partial last line from a crash
            with self.path.open("r+b") as f:
                f.truncate(end)

    def __contains__(self, key: Any) -> bool:
        return _hashable(key) in self.done

    def open(self) -> ResumableJsonlWriter:
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies
            self._f = os.fdopen(fd, "a", encoding="utf-8")
        return self

    def write(self, rec: dict[str, Any]) -> None:
        """Append ``rec`` (must hold ``key``) as one line; flushed and fsynced before returning."""
        if self.key not in rec:
            raise ValueError(f"record written to {self.path} lacks the resume key {self.key!r}")
        self.open()
        self._f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self.done.add(_hashable(rec[self.key]))
        self.n_written += 1

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> ResumableJsonlWriter:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _hashable(v: Any) -> Any:
    """JSON values as set members: lists become tuples, dicts sorted item tuples."""
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v
