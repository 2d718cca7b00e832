"""Run untrusted Python (HumanEval completions) in a confined subprocess.

Layers, each independent of the others:

- a fresh ``python -I -B`` process (no site-packages of the user, no environment, no bytecode writes) in an empty
  temporary working directory, stdin closed, killed (whole process group) after ``timeout`` seconds;
- resource limits set before ``exec``: CPU seconds (RLIMIT_CPU), address space (RLIMIT_AS), file size
  (RLIMIT_FSIZE), number of processes (RLIMIT_NPROC), open files (RLIMIT_NOFILE), no core dumps;
- no network: the process runs in a new network namespace (``unshare -n`` as root, ``unshare -rn`` otherwise)
  when the kernel allows it, and in any case an audit hook (PEP 578, cannot be removed from Python code) refuses
  sockets (connect/bind/sendto/getaddrinfo);
- the same audit hook refuses writes, deletes, renames and permission changes outside the working directory,
  new processes (subprocess, os.system, exec*, spawn, fork), signals to other processes and ctypes.

This is defence in depth for a research harness, not a container: run hostile code under a real sandbox
(gVisor, a VM) when it matters.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

__all__ = ["SandboxLimits", "SandboxResult", "run_python_sandboxed", "network_isolation_prefix"]

# the guard, run inside the sandbox before the program; {root} is the sandbox directory (a repr'd string)
_GUARD = r'''
import os, sys
_ROOT = os.path.realpath({root})
_DENY = {{"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
          "os.kill", "os.killpg", "pty.spawn", "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
          "socket.getaddrinfo", "socket.gethostbyname", "socket.__new__", "ctypes.dlopen", "ctypes.dlsym",
          "ctypes.cdata", "ctypes.call_function", "ctypes.addressof", "ctypes.string_at", "ctypes.wstring_at",
          "sys.setprofile", "sys.settrace", "os.startfile", "webbrowser.open", "winreg"}}
_PATH_EVENTS = {{"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.truncate",
                "os.symlink", "os.link", "os.utime", "os.chflags", "os.lchflags", "os.setxattr", "os.removexattr",
                "shutil.rmtree", "shutil.move", "shutil.copyfile", "shutil.copytree", "os.mkfifo", "os.mknod"}}
_W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def _inside(p):
    if isinstance(p, int):
        return True
    try:
        p = os.fsdecode(os.fspath(p))
    except TypeError:
        return False
    if p in ("/dev/null",):
        return True
    full = os.path.realpath(p if os.path.isabs(p) else os.path.join(os.getcwd(), p))
    return full == _ROOT or full.startswith(_ROOT + os.sep)

_NO_IMPORT = {{"_posixsubprocess", "_ctypes", "ctypes", "_socket", "socket", "multiprocessing", "_multiprocessing"}}

def _hook(event, args):
    if event == "import" and args and str(args[0]).split(".")[0] in _NO_IMPORT:
        raise ImportError(f"sandbox: importing {{args[0]}} is not allowed")
    if event in _DENY or event.startswith("ctypes."):
        raise PermissionError(f"sandbox: {{event}} is not allowed")
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, 0))[:3]
        write = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _W)
        if write and not _inside(path):
            raise PermissionError(f"sandbox: writing {{path!r}} outside the sandbox is not allowed")
    elif event in _PATH_EVENTS:
        for a in args:
            if isinstance(a, (str, bytes, os.PathLike)) and not _inside(a):
                raise PermissionError(f"sandbox: {{event}} on {{a!r}} outside the sandbox is not allowed")

sys.addaudithook(_hook)
del _hook
import runpy
runpy.run_path("prog.py", run_name="__main__")
'''


@dataclasses.dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one sandboxed run (defaults sized for HumanEval problems)."""

    cpu_seconds: int = 10
    memory_bytes: int = 1 << 30  # RLIMIT_AS, 1 GiB
    file_size_bytes: int = 1 << 20  # RLIMIT_FSIZE, 1 MiB per written file
    max_processes: int = 64  # RLIMIT_NPROC (per user; root ignores it, the audit hook blocks forks anyway)
    max_open_files: int = 64


@dataclasses.dataclass
class SandboxResult:
    """Exit status (None on timeout), captured output (truncated to 64 KB each) and whether it timed out."""

    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool


@functools.cache
def network_isolation_prefix() -> tuple[str, ...]:
    """``("unshare", "-n")`` (root) or ``("unshare", "-rn")`` if a new network namespace works here, else ``()``."""
    exe = shutil.which("unshare")
    if exe is None:
        return ()
    for flags in (("-n",), ("-rn",)) if os.geteuid() == 0 else (("-rn",),):
        try:
            r = subprocess.run([exe, *flags, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            return (exe, *flags)
    return ()


def _limiter(limits: SandboxLimits):
    def apply() -> None:  # runs in the child between fork and exec
        os.setsid()
        for res, val in ((resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_AS, limits.memory_bytes),
                         (resource.RLIMIT_FSIZE, limits.file_size_bytes), (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_NOFILE, limits.max_open_files),
                         (resource.RLIMIT_NPROC, limits.max_processes)):
            try:
                resource.setrlimit(res, (val, val))
            except (ValueError, OSError):
                pass  # a limit the platform lacks or forbids lowering; the other layers still apply
    return apply


def run_python_sandboxed(source: str, timeout: float = 3.0, limits: SandboxLimits | None = None) -> SandboxResult:
    r"""Run ``source`` as ``__main__`` in the sandbox described in the module docstring; never raises on its behalf.

    Example:
        >>> run_python_sandboxed("print(6 * 7)").stdout
        '42\n'
        >>> run_python_sandboxed("import socket").returncode
        1
    """
    limits = limits or SandboxLimits()
    with tempfile.TemporaryDirectory(prefix="ps-sandbox-") as d:
        root = os.path.realpath(d)
        with open(os.path.join(root, "prog.py"), "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(source)
        with open(os.path.join(root, "_guard.py"), "w", encoding="utf-8") as f:
            f.write(_GUARD.format(root=repr(root)))
        cmd = [*network_isolation_prefix(), sys.executable, "-I", "-B", "_guard.py"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0", "HOME": root, "TMPDIR": root}
        try:
            proc = subprocess.Popen(cmd, cwd=root, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, preexec_fn=_limiter(limits))
        except OSError as e:
            return SandboxResult(None, "", f"sandbox: could not start python: {e}", False)
        try:
            out, err = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                proc.kill()
            out, err = proc.communicate()
            timed_out = True
    decode = lambda b: b[:65536].decode("utf-8", "replace")  # noqa: E731
    return SandboxResult(None if timed_out else proc.returncode, decode(out), decode(err), timed_out)
