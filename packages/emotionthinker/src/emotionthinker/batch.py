"""Prosody over many files: a process pool, a progress bar, one JSONL record per file, per-file errors.

A failing file becomes ``{"audio_path": ..., "error": "..."}`` and the batch goes on. Workers are forked from this
process when it has not imported torch (no import cost per worker: librosa + scipy take seconds to import), else
started from a forkserver that preloads the extractor (fork after torch's thread pools start is unsafe).

Process safety: librosa's numba kernels (pYIN's Viterbi, its ufuncs) are compiled with ``cache=True``. Two workers
compiling them at once on a cold cache both write ``<fn>.<n>.nbc`` entries and an index; one can overwrite the
other's entry so that the index points at code for another signature, and every later pYIN call in that
environment segfaults. :func:`warm_up_kernels` therefore runs the whole extractor once in the parent before any
worker starts: every kernel is compiled (or loaded) and written to the cache by one process; forked workers inherit
the compiled code and forkserver workers only read the complete cache.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .config import ProsodyConfig

__all__ = ["AUDIO_EXTENSIONS", "find_audio_files", "extract_one", "warm_up_kernels", "extract_many"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aiff", ".aif", ".opus")


def find_audio_files(inputs: Sequence[str | Path], recursive: bool = True) -> list[Path]:
    """Expand files and folders into a sorted, de-duplicated list of audio files.

    Raises:
        FileNotFoundError: an input path does not exist (named).
    """
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            it = p.rglob("*") if recursive else p.glob("*")
            files += sorted(f for f in it if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"no such file or folder: {p}")
    seen: set[Path] = set()
    return [f for f in files if not (f in seen or seen.add(f))]


def extract_one(job: tuple[str, str | None, ProsodyConfig]) -> dict[str, Any]:
    """Worker: features of one file, or an error record naming it (never raises for a bad file)."""
    from .prosody import ProsodyError, extract_prosody_file

    path, transcript, cfg = job
    try:
        return extract_prosody_file(path, cfg, transcript)
    except (ProsodyError, ValueError, OSError, MemoryError) as e:
        msg = str(e) if str(path) in str(e) else f"{path}: {e}"
        return {"audio_path": str(path), "error": f"{type(e).__name__}: {msg}"}


_WARM: set[tuple] = set()


def warm_up_kernels(cfg: ProsodyConfig) -> None:
    """Compile librosa's numba kernels in this process (once per config) before workers start (see module doc).

    Runs :func:`~emotionthinker.prosody.extract_prosody` on a 0.5 s synthetic voiced glide: the same code path,
    dtypes and therefore the same numba specialisations as real files.
    """
    key = tuple(sorted((k, str(v)) for k, v in vars(cfg).items()))
    if key in _WARM:
        return
    from .prosody import extract_prosody
    from .synth import f0_track, harmonic_voice

    n = int(0.5 * cfg.sample_rate)
    extract_prosody(harmonic_voice(f0_track("rising", n, 150.0), 0.5, sr=cfg.sample_rate, syllable_hz=4.0), cfg,
                    "warm up")
    _WARM.add(key)


def _context() -> mp.context.BaseContext:
    if "torch" in sys.modules or sys.platform != "linux":
        ctx = mp.get_context("forkserver" if sys.platform != "win32" else "spawn")
        if hasattr(ctx, "set_forkserver_preload"):
            ctx.set_forkserver_preload(["emotionthinker.prosody"])
        return ctx
    return mp.get_context("fork")


def extract_many(paths: Iterable[str | Path], cfg: ProsodyConfig | None = None, workers: int = 0,
                 transcripts: dict[str, str] | None = None,
                 on_result: Callable[[dict[str, Any]], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one record per path, in input order (errors as ``{"audio_path", "error"}`` records).

    Args:
        paths: audio files.
        cfg: signal constants (default: the pipeline's).
        workers: processes; 0 = ``os.cpu_count()``, 1 = serial in this process.
        transcripts: ``{str(path): text}`` for the rate features (missing -> no rate).
        on_result: called after each record (e.g. to advance a progress bar).
    """
    cfg = cfg or ProsodyConfig()
    transcripts = transcripts or {}
    jobs = [(str(p), transcripts.get(str(p)), cfg) for p in paths]
    n = workers or os.cpu_count() or 1
    if n == 1 or len(jobs) <= 1:
        results: Iterable[dict[str, Any]] = map(extract_one, jobs)
        for rec in results:
            if on_result:
                on_result(rec)
            yield rec
        return
    warm_up_kernels(cfg)  # one process compiles and caches the numba kernels; workers never race on the cache
    with ProcessPoolExecutor(max_workers=min(n, len(jobs)), mp_context=_context()) as ex:
        for rec in ex.map(extract_one, jobs, chunksize=1):
            if on_result:
                on_result(rec)
            yield rec
