"""Run every method in the workspace end to end on the built-in models and data, and print one table.

Usage (from the workspace root)::

    uv run tools/demo.py               # all seven packages (target: under 10 minutes on 2 CPU cores)
    uv run tools/demo.py --quick       # reduced settings, for CI
    uv run tools/demo.py --only power_sampling --only q_rag --json demo.json

Each package provides ``<pkg>.demo.run_demo(quick: bool) -> {"what", "headline", "metrics"}``; the figures come from
that run, nothing here is hard-coded. A package without a ``demo`` module is listed as "not built yet"; a demo that
raises is listed as FAILED with its error, and the script then exits with status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import sys
import time
import traceback
from pathlib import Path

PACKAGES = {  # import name -> the method, as the paper calls it
    "longwriter_zero": "LongWriter-Zero",
    "emotionthinker": "EmotionThinker",
    "ti_dpo": "TI-DPO",
    "p_genrm": "P-GenRM",
    "power_sampling": "Power sampling",
    "loongrl": "LoongRL (KeyChain)",
    "q_rag": "Q-RAG",
}
STATUS_OK, STATUS_MISSING, STATUS_FAILED = "ok", "not built yet", "FAILED"


def demo_available(pkg: str) -> bool:
    """True when ``<pkg>.demo`` can be imported (the package is installed and has a demo module)."""
    try:
        return importlib.util.find_spec(f"{pkg}.demo") is not None
    except ModuleNotFoundError:  # the package itself is not installed
        return False


def check_result(pkg: str, result: object) -> dict:
    """Validate the demo contract: a dict with string ``what`` and ``headline`` and a dict ``metrics``."""
    if not isinstance(result, dict):
        raise TypeError(f"{pkg}.demo.run_demo returned {type(result).__name__}, expected a dict")
    for key, typ in (("what", str), ("headline", str), ("metrics", dict)):
        if not isinstance(result.get(key), typ):
            raise TypeError(f"{pkg}.demo.run_demo result needs {key!r} of type {typ.__name__}, got "
                            f"{type(result.get(key)).__name__}")
    return result


def run_one(pkg: str, quick: bool, verbose: bool = False) -> dict:
    """Run one package's demo; never raises (a failure becomes a FAILED row with its error).

    Unless ``verbose``, the demo's own stdout/stderr (trainer logs, progress bars) is captured; a failed demo's
    captured output is kept in the row's ``log`` and printed at the end.
    """
    row = {"package": pkg, "method": PACKAGES.get(pkg, pkg), "what": "", "headline": "", "metrics": {},
           "seconds": 0.0}
    if not demo_available(pkg):
        return {**row, "status": STATUS_MISSING, "what": f"{pkg}.demo does not exist yet"}
    buf = io.StringIO()
    capture = contextlib.nullcontext() if verbose else _captured(buf)
    t0 = time.perf_counter()
    try:
        with capture:
            module = importlib.import_module(f"{pkg}.demo")
            result = check_result(pkg, module.run_demo(quick=quick))
    except Exception as e:  # noqa: BLE001 - any error in a demo is reported in its row, never hidden
        return {**row, "status": STATUS_FAILED, "seconds": time.perf_counter() - t0,
                "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(), "log": buf.getvalue()}
    return {**row, "status": STATUS_OK, "seconds": time.perf_counter() - t0, "what": result["what"],
            "headline": result["headline"], "metrics": result["metrics"]}


@contextlib.contextmanager
def _captured(buf: io.StringIO):
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        yield


def render(rows: list[dict], quick: bool, total: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rl-orals demo{' (--quick)' if quick else ''}: {total:.0f} s in all", show_lines=True)
    for col, style in (("method", "bold"), ("what ran", ""), ("headline figure", "cyan"), ("time", "")):
        table.add_column(col, style=style, overflow="fold", justify="right" if col == "time" else "left")
    for r in rows:
        if r["status"] == STATUS_OK:
            table.add_row(r["method"], r["what"], r["headline"], f"{r['seconds']:.1f} s")
        elif r["status"] == STATUS_MISSING:
            table.add_row(r["method"], f"[dim]{STATUS_MISSING}[/dim]", "[dim]-[/dim]", "-")
        else:
            table.add_row(r["method"], f"[red]{STATUS_FAILED}[/red]", f"[red]{r['error']}[/red]",
                          f"{r['seconds']:.1f} s")
    console = Console()
    if not console.is_terminal:  # piped or captured (CI): rich would wrap at 80 columns
        console = Console(width=160)
    console.print(table)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="reduced settings (CI): each demo in about 15 s")
    ap.add_argument("--only", action="append", metavar="PKG", default=None,
                    help=f"run only this package (repeatable): {', '.join(PACKAGES)}")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    ap.add_argument("--verbose", action="store_true", help="show each demo's own output (trainer logs) live")
    args = ap.parse_args(argv)
    for pkg in args.only or []:
        if pkg not in PACKAGES:
            ap.error(f"--only: unknown package {pkg!r}; choose from {', '.join(PACKAGES)}")
    return args


def main(argv=None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    args = parse_args(argv)
    pkgs = args.only or list(PACKAGES)
    rows, t0 = [], time.perf_counter()
    # The bar writes to the real stderr; demos' own output is captured separately (see run_one).
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=Console(file=sys.stderr), transient=True,
                  redirect_stdout=False, redirect_stderr=False) as bar:
        task = bar.add_task("demos", total=len(pkgs))
        for pkg in pkgs:
            bar.update(task, description=f"running {pkg}")
            rows.append(run_one(pkg, args.quick, args.verbose))
            bar.advance(task)
    total = time.perf_counter() - t0
    render(rows, args.quick, total)
    failed = [r for r in rows if r["status"] == STATUS_FAILED]
    for r in failed:
        log = r["log"][-4000:]
        print(f"\n{r['package']} FAILED:\n{r['traceback']}" + (f"\n--- its output (tail) ---\n{log}" if log else ""),
              file=sys.stderr)
    if args.json is not None:
        from rlcore.io import write_json

        write_json(args.json, {"quick": args.quick, "seconds": round(total, 2),
                               "results": [{k: v for k, v in r.items() if k not in ("traceback", "log")} for r in rows]})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
