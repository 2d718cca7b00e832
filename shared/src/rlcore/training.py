"""Multi-process helpers: rank queries, a launch preflight, the shared accelerate configs, a ``GRPOConfig`` builder.

A user who outgrows one GPU runs the same command under
``accelerate launch --config_file <accelerate_config_path("zero2")> --num_processes N -m <pkg> train ...``.
The shipped configs carry no process count: the launcher's ``--num_processes`` decides.

The rank helpers read ``torch.distributed`` when a process group is up, else the launcher's environment
(``RANK`` / ``WORLD_SIZE``, set by ``accelerate launch`` and ``torchrun``), so they answer correctly before
``Accelerator()`` is built and cost nothing in a single-process run.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "make_grpo_config",
    "accelerate_config_path",
    "ACCELERATE_CONFIGS",
    "preflight_launch",
    "is_main_process",
    "process_index",
    "world_size",
    "main_print",
    "end_distributed",
    "DEEPSPEED_HINT",
    "accelerate_launch",
    "accelerate_launch_command",
    "run_and_kill",
    "CPU_LAUNCH_FLAGS",
    "CPU_LAUNCH_ENV",
    "trl_vllm_kwargs",
    "VLLM_MODES",
]

ACCELERATE_CONFIGS = ("ddp", "zero2", "zero3", "fsdp")
_CONFIG_DIR = Path(__file__).resolve().parent / "accelerate_configs"
DEEPSPEED_HINT = "DeepSpeed is not installed: pip install 'rlcore[deepspeed]'"


def _dist():
    """``torch.distributed`` if a process group is initialised, else ``None`` (torch is only imported if loaded)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    dist = torch.distributed
    return dist if dist.is_available() and dist.is_initialized() else None


def process_index() -> int:
    """Global rank of this process (0 in a single-process run)."""
    d = _dist()
    return d.get_rank() if d is not None else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """Number of processes of the launch (1 in a single-process run)."""
    d = _dist()
    return d.get_world_size() if d is not None else int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on global rank 0: the only process that prints summaries and writes results."""
    return process_index() == 0


def main_print(*args: Any, **kwargs: Any) -> None:
    """``print`` on the main process only (flushed); other ranks print nothing."""
    if is_main_process():
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)


def end_distributed(exit_process: bool = False) -> None:
    """Wait for every rank, tear the default process group down and, with ``exit_process``, end the process now.

    A no-op when no process group is up (a single-process run). Every ``config_command`` verb calls it with
    ``exit_process=True`` when it returns; call it last in a multi-process script of your own.

    Why: under a CPU (gloo) launch with torch 2.11, a rank that reached interpreter shutdown while its peers still
    held the group was aborted ("terminate called without an active exception", exit -6) in 9 of 30 two-process
    launches on a 2-core machine, the rank that writes nothing (it finishes first) nearly always. The barrier and
    ``destroy_process_group`` brought that to 0 of 30, but CI under full load still saw it; the abort comes from
    C++ teardown at interpreter exit, so with ``exit_process`` the process runs its ``atexit`` handlers, flushes
    stdout/stderr and leaves through ``os._exit(0)``, skipping that teardown (the verb's files are closed by then).
    """
    d = _dist()
    if d is None:
        return
    try:
        d.barrier()
    finally:
        d.destroy_process_group()
    if exit_process:
        import atexit

        atexit._run_exitfuncs()  # what a normal exit runs (logging.shutdown, user handlers), in the same order
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed or broken pipe: nothing left to deliver
                pass
        os._exit(0)


def _uses_deepspeed() -> bool:
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true", "yes"):
        return True
    cfg = os.environ.get("ACCELERATE_CONFIG_FILE")
    if cfg and Path(cfg).is_file():
        try:
            import yaml

            with open(cfg, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
        except Exception:  # an unreadable config is accelerate's error to report, not ours
            return False
        return isinstance(data, dict) and str(data.get("distributed_type", "")).upper() == "DEEPSPEED"
    return False


def preflight_launch() -> None:
    """Check the launch environment before any heavy work; call it first in every ``train`` verb.

    Raises:
        ValueError: the launch asks for DeepSpeed (``ACCELERATE_USE_DEEPSPEED=true`` or a DeepSpeed
            ``ACCELERATE_CONFIG_FILE``) and it is not installed: one line naming the extra to install.

    """
    if _uses_deepspeed() and importlib.util.find_spec("deepspeed") is None:
        raise ValueError(DEEPSPEED_HINT)


def accelerate_config_path(name: str) -> str:
    """Path of a shipped accelerate config (``ddp``, ``zero2``, ``zero3`` or ``fsdp``); none sets num_processes."""
    if name not in ACCELERATE_CONFIGS:
        raise ValueError(f"unknown accelerate config {name!r}; choose from {list(ACCELERATE_CONFIGS)}")
    return str(_CONFIG_DIR / f"{name}.yaml")


def _backend_unavailable(message: str) -> ValueError:
    """The engine's ``BackendUnavailableError`` (a ``ValueError``) wherever it is defined, else a ValueError."""
    for mod in ("rlcore.backends", "rlcore.rollout"):
        try:
            cls = importlib.import_module(mod).BackendUnavailableError
        except (ImportError, AttributeError):
            continue
        return cls(message)
    return ValueError(message)


VLLM_MODES = ("colocate", "server")
_VLLM_MISSING = "the vllm backend needs vLLM: pip install 'rlcore[vllm]'"


def trl_vllm_kwargs(
    backend: str = "hf",
    vllm_mode: str = "colocate",
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.9,
) -> dict[str, Any]:
    """``GRPOConfig`` keyword arguments for a package's ``--backend`` options (TRL's own vLLM integration).

    ``backend="hf"`` -> ``{}`` (TRL generates with transformers); ``"vllm"`` -> ``use_vllm=True``, ``vllm_mode``
    (``colocate``: in-process on the training GPUs; ``server``: a separate ``trl vllm-serve``),
    ``vllm_tensor_parallel_size`` and ``vllm_gpu_memory_utilization``.

    Raises:
        ValueError: an unknown backend or vllm_mode (the valid names listed); ``BackendUnavailableError``
            (a ``ValueError``, one line) when vLLM is not installed.

    """
    if backend == "hf":
        return {}
    if backend != "vllm":
        raise ValueError(f"unknown backend {backend!r}; choose from ['hf', 'vllm']")
    if vllm_mode not in VLLM_MODES:
        raise ValueError(f"unknown vllm_mode {vllm_mode!r}; choose from {list(VLLM_MODES)}")
    if importlib.util.find_spec("vllm") is None:
        raise _backend_unavailable(_VLLM_MISSING)
    return {
        "use_vllm": True,
        "vllm_mode": vllm_mode,
        "vllm_tensor_parallel_size": int(tensor_parallel_size),
        "vllm_gpu_memory_utilization": float(gpu_memory_utilization),
    }


def make_grpo_config(
    output_dir: str,
    *,
    backend: str = "hf",
    vllm_mode: str = "colocate",
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.9,
    **overrides: Any,
):
    """A ``trl.GRPOConfig`` with defaults that run anywhere, then ``overrides`` (GRPOConfig field names).

    Defaults: bf16 only where CUDA supports it, CPU when no GPU, no external loggers, no checkpoint saving unless
    asked (``save_strategy``), ``logging_steps=1``. ``backend``/``vllm_mode``/``tensor_parallel_size``/
    ``gpu_memory_utilization`` are the packages' backend options, mapped by :func:`trl_vllm_kwargs`.
    Unknown keys raise ``ValueError`` listing the bad names.
    """
    import dataclasses

    import torch
    from trl import GRPOConfig

    names = {f.name for f in dataclasses.fields(GRPOConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown GRPOConfig field(s) {unknown}")
    cuda = torch.cuda.is_available()
    kw: dict[str, Any] = dict(
        output_dir=output_dir,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        use_cpu=not cuda,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    kw.update(trl_vllm_kwargs(backend, vllm_mode, tensor_parallel_size, gpu_memory_utilization))
    kw.update(overrides)
    return GRPOConfig(**kw)


# --- launching subprocesses (tests, kill-resume checks) ---------------------------------------------------------

#: ``accelerate launch`` flags that give an N-process CPU/gloo launch on any machine: ``--multi_gpu`` selects the
#: torchrun-style multi-process launcher (``--cpu`` would run one process), ``ACCELERATE_USE_CPU=true`` in the
#: environment makes accelerate pick ``MULTI_CPU`` with the gloo backend, port 0 lets concurrent launches coexist.
CPU_LAUNCH_FLAGS = (
    "--multi_gpu",
    "--num_machines", "1",
    "--mixed_precision", "no",
    "--dynamo_backend", "no",
    "--main_process_port", "0",
)
CPU_LAUNCH_ENV = {"ACCELERATE_USE_CPU": "true", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def accelerate_launch_command(argv: list[str], *, num_processes: int = 2, config_file: str | None = None) -> list[str]:
    """The argv of ``accelerate launch [--config_file F] --num_processes N <CPU flags> -m <module> args...``.

    ``argv`` is ``[module, *args]``; run it with :data:`CPU_LAUNCH_ENV` added to the environment.
    """
    if not argv:
        raise ValueError("argv must start with the module to run (e.g. ['my_pkg', 'train', ...])")
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file is not None:
        cmd += ["--config_file", str(config_file)]
    return [*cmd, "--num_processes", str(num_processes), *CPU_LAUNCH_FLAGS, "-m", *map(str, argv)]


def _child_env(env: dict[str, str] | None, cpu_launch: bool) -> dict[str, str]:
    out = dict(os.environ)
    out.update({"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):  # never inherit a parent launch
        out.pop(k, None)
    if cpu_launch:
        out.update(CPU_LAUNCH_ENV)
    out.update(env or {})
    return out


def accelerate_launch(
    argv: list[str],
    *,
    num_processes: int = 2,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    config_file: str | None = None,
    cwd: str | os.PathLike | None = None,
):
    """Run ``accelerate launch --num_processes N -m <module> args...`` on CPU (gloo) and wait for it.

    ``argv`` is ``[module, *args]``. ``config_file`` (e.g. ``accelerate_config_path("ddp")``) is passed as
    ``--config_file``; the CPU flags given on the command line override its GPU settings. Returns the
    ``subprocess.CompletedProcess`` (text stdout/stderr); a run past ``timeout`` is killed with its workers and
    raises ``subprocess.TimeoutExpired``.
    """
    import subprocess

    cmd = accelerate_launch_command(argv, num_processes=num_processes, config_file=config_file)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_child_env(env, True), cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        raise subprocess.TimeoutExpired(cmd, timeout, output=out, stderr=err) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _kill_group(proc) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and every worker it started
    except ProcessLookupError:
        pass


def run_and_kill(
    argv: list[str],
    *,
    when,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    num_processes: int | None = None,
    poll: float = 0.05,
    cwd: str | os.PathLike | None = None,
):
    """Start ``python -m <module> args...`` and SIGKILL its whole process group once ``when()`` is true.

    With ``num_processes`` the module runs under an accelerate CPU launch (all workers are killed).
    ``when`` is polled every ``poll`` seconds, e.g. ``lambda: (out / "checkpoint-2").exists()``.

    Returns:
        ``subprocess.CompletedProcess``; ``returncode == -9`` when it was killed. A process that ends first keeps
        its own return code (the caller's assertion on ``-9`` then fails with its stderr at hand).

    Raises:
        subprocess.TimeoutExpired: neither ``when()`` nor the process finished within ``timeout`` seconds.

    """
    import subprocess
    import tempfile
    import time

    if num_processes is None:
        cmd = [sys.executable, "-m", *map(str, argv)]
    else:
        cmd = accelerate_launch_command(argv, num_processes=num_processes)
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, text=True, cwd=cwd, start_new_session=True,
                                env=_child_env(env, num_processes is not None))
        deadline = time.monotonic() + timeout
        killed = False
        try:
            while proc.poll() is None:
                if when():
                    _kill_group(proc)
                    killed = True
                    break
                if time.monotonic() > deadline:
                    _kill_group(proc)
                    proc.wait()
                    fe.seek(0)
                    raise subprocess.TimeoutExpired(cmd, timeout, stderr=fe.read())
                time.sleep(poll)
            proc.wait()
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        fo.seek(0)
        fe.seek(0)
        code = -9 if killed else proc.returncode
        return subprocess.CompletedProcess(cmd, code, fo.read(), fe.read())
