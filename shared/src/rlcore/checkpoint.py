"""Kill-safe checkpoints for the custom training loops (TRL trainers use transformers' own ``checkpoint-N`` dirs).

``save_checkpoint`` writes ``output_dir/checkpoint-<step>/`` atomically: everything goes to a hidden temporary
directory beside it, is fsynced, and is renamed into place only when complete, so a ``kill -9`` mid-save leaves
the previous checkpoints and no partial ``checkpoint-<step>``. A checkpoint holds the model, optimizer and scheduler
states, the python/numpy/torch(/CUDA) RNG states of every rank, the step and a JSON ``extra`` (e.g. the data
position), so a resumed run continues bit-for-bit where the saved one was.

Layout of ``checkpoint-<step>/``: ``model.pt``, ``optimizer.pt``, ``scheduler.pt`` (when given), ``rng.pt``
(one entry per rank) and ``state.json`` (``{"step": ..., "extra": ...}``, written last).

Example:
    >>> # in a loop: if save_steps and step % save_steps == 0: save_checkpoint(out, step, model=m, optimizer=opt)
    >>> # at start:  ckpt = resolve_resume(cfg.resume, out)
    >>> #            if ckpt: start = load_checkpoint(ckpt, model=m, optimizer=opt)["step"]

"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .io import DataError, atomic_write, current_umask
from .training import is_main_process, process_index, world_size

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "resolve_resume",
    "truncate_jsonl",
    "CHECKPOINT_PREFIX",
]

CHECKPOINT_PREFIX = "checkpoint-"
_CKPT_RE = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")
_STATE = "state.json"


def _unwrap(model: Any) -> Any:
    """The bare module of a DDP / accelerate-wrapped model (``.module``), else the model itself."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    name, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, list | tuple) else x


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _torch_save(obj: Any, path: Path) -> None:
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def _gather_rng() -> list[dict[str, Any]]:
    """Every rank's RNG state, in rank order (a collective when a process group is up)."""
    mine = _rng_state()
    if world_size() > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        out: list[Any] = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(out, mine)
        return out
    return [mine]


def _barrier() -> None:
    if world_size() > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def save_checkpoint(
    output_dir: str | os.PathLike,
    step: int,
    *,
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``output_dir/checkpoint-<step>/`` atomically and return its path.

    Under a multi-process launch call it on **every rank** (like ``Accelerator.save_state``: the RNG states are
    gathered with a collective, then a barrier); only the main process writes. An existing ``checkpoint-<step>`` is replaced (atomically) by the new one.

    Args:
        output_dir: the run's output directory.
        step: the number of optimizer steps done (the loop resumes at ``step``).
        model: an ``nn.Module`` (a DDP/accelerate wrapper is unwrapped).
        optimizer: a ``torch.optim.Optimizer`` (or anything with ``state_dict``).
        scheduler: an LR scheduler (or anything with ``state_dict``).
        extra: JSON-serialisable state of the loop (data position, best metric, ...).

    Raises:
        ValueError: ``step`` is negative or ``extra`` is not JSON-serialisable.

    """
    if step < 0:
        raise ValueError(f"checkpoint step must be >= 0, got {step}")
    try:
        state_text = json.dumps({"step": int(step), "extra": extra if extra is not None else {}}, indent=2)
    except TypeError as e:
        raise ValueError(f"checkpoint extra must be JSON-serialisable: {e}") from None
    out = Path(output_dir)
    final = out / f"{CHECKPOINT_PREFIX}{step}"
    rng = _gather_rng()
    if is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.glob(f".{CHECKPOINT_PREFIX}*.tmp"):  # left by a run killed mid-save
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".{final.name}.", suffix=".tmp"))
        try:
            os.chmod(tmp, 0o777 & ~current_umask())
            _torch_save(_unwrap(model).state_dict(), tmp / "model.pt")
            if optimizer is not None:
                _torch_save(optimizer.state_dict(), tmp / "optimizer.pt")
            if scheduler is not None:
                _torch_save(scheduler.state_dict(), tmp / "scheduler.pt")
            _torch_save(rng, tmp / "rng.pt")
            with atomic_write(tmp / _STATE) as f:  # written last: its presence marks a complete checkpoint
                f.write(state_text + "\n")
            _fsync_dir(tmp)
            old = None
            if final.exists():
                old = out / f".{final.name}.old-{os.getpid()}"
                os.replace(final, old)
            os.replace(tmp, final)
            _fsync_dir(out)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    _barrier()
    return final


def _load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False)


def load_checkpoint(path: str | os.PathLike, *, model: Any, optimizer: Any = None, scheduler: Any = None) -> dict:
    """Restore a checkpoint written by :func:`save_checkpoint` into ``model`` (and optimizer/scheduler, RNG).

    Each rank restores its own RNG state (rank ``i`` of the saved run; rank 0's when the saved run had fewer
    processes).

    Returns:
        ``{"step": int, "extra": dict}``.

    Raises:
        FileNotFoundError: ``path`` is not a complete checkpoint directory (the message names it).
        ValueError: an optimizer/scheduler is given but the checkpoint has no state for it.

    """
    p = Path(path)
    if not (p / _STATE).is_file():
        raise FileNotFoundError(f"not a complete checkpoint (no {_STATE}): {p}")
    state = json.loads((p / _STATE).read_text(encoding="utf-8"))
    _unwrap(model).load_state_dict(_load(p / "model.pt"))
    for obj, name in ((optimizer, "optimizer.pt"), (scheduler, "scheduler.pt")):
        if obj is None:
            continue
        if not (p / name).is_file():
            raise ValueError(f"checkpoint {p} has no {name} to restore the {name[:-3]} from")
        obj.load_state_dict(_load(p / name))
    rng = _load(p / "rng.pt")
    rank = process_index()
    _set_rng_state(rng[rank] if rank < len(rng) else rng[0])
    return {"step": int(state["step"]), "extra": state.get("extra", {})}


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The ``checkpoint-<N>`` directories of ``output_dir``, oldest (lowest N) first; temporary ones excluded.

    A directory counts when it holds rlcore's ``state.json`` or transformers' ``trainer_state.json``.
    """
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = []
    for d in out.iterdir():
        m = _CKPT_RE.match(d.name)
        if m and d.is_dir() and ((d / _STATE).is_file() or (d / "trainer_state.json").is_file()):
            found.append((int(m.group(1)), d))
    return [d for _, d in sorted(found)]


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete ``checkpoint-<N>`` in ``output_dir``, or ``None``."""
    ckpts = list_checkpoints(output_dir)
    return ckpts[-1] if ckpts else None


def resolve_resume(resume: str | None, output_dir: str | os.PathLike) -> Path | None:
    """Turn a ``--resume`` value into a checkpoint path.

    ``None``/``""`` -> ``None`` (fresh run); ``"latest"`` -> the newest checkpoint in ``output_dir``, or ``None``
    with a note on stderr when there is none; anything else is a checkpoint path that must exist.

    Raises:
        ValueError: a PATH that does not exist or is not a directory (the message names it).

    """
    if resume is None or str(resume).strip() == "":
        return None
    if str(resume) == "latest":
        ckpt = latest_checkpoint(output_dir)
        if ckpt is None and is_main_process():
            print(f"note: --resume latest: no checkpoint in {output_dir}; starting from scratch", file=sys.stderr)
        return ckpt
    p = Path(resume)
    if not p.exists():
        raise ValueError(f"--resume: no checkpoint at {resume}")
    if not p.is_dir():
        raise ValueError(f"--resume: {resume} is not a checkpoint directory")
    return p


def truncate_jsonl(path: str | os.PathLike, max_step: int, key: str = "step") -> int:
    """Drop the rows of a JSONL log whose ``key`` is greater than ``max_step`` (call on resume); atomic.

    Rows without ``key`` are kept; a trailing partial line (a crash mid-write) is dropped. A missing file is
    left missing. Only the main process rewrites the file (no collective: call it on any or every rank).

    Returns:
        The number of rows kept.

    Raises:
        DataError: a line other than the last is not valid JSON (file:line named).

    """
    p = Path(path)
    if not p.is_file():
        return 0
    kept: list[str] = []
    raw = p.read_text(encoding="utf-8")
    lines = raw.split("\n")
    if not raw.endswith("\n"):
        lines = lines[:-1]  # a partial last line from a crash
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
        v = rec.get(key) if isinstance(rec, dict) else None
        if isinstance(v, int | float) and v > max_step:
            continue
        kept.append(line)
    if is_main_process():
        with atomic_write(p) as f:
            f.writelines(line + "\n" for line in kept)
    return len(kept)
