"""The CLI flag table of shared/README.md, generated from the packages' typer apps (so it stays true).

    python tools/cli_table.py            # print the markdown table
    python tools/cli_table.py --write    # replace the table between the markers in shared/README.md
    python tools/cli_table.py --check    # exit 1 if shared/README.md's table is out of date

tests/test_cli_convention.py uses `collect()` and `violations()` from here to check the convention.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "shared" / "README.md"
START, END = "<!-- cli-table:start -->", "<!-- cli-table:end -->"

# Names that the convention replaces (flag name without the leading dashes, underscores as dashes).
MODEL_ALIASES = {"model-path", "model-name", "model-name-or-path", "model-dir", "model-id", "model-ref",
                 "base-model-path", "ckpt", "policy", "model-checkpoint"}
INPUT_ALIASES = {"data", "dataset", "data-path", "data-file", "dataset-path", "input-file", "input-path", "in",
                 "in-file", "input-jsonl", "jsonl", "prompts", "prompts-file", "prompt-file", "train-file",
                 "train-data", "eval-file", "eval-data", "test-file", "questions", "pairs"}
OUTPUT_ALIASES = {"out", "out-dir", "outdir", "out-file", "output-path", "output-file", "output-jsonl", "save-dir",
                  "save-path", "save-to", "results", "results-file", "dest", "output-directory", "output-folder"}
SEED_ALIASES = {"random-seed", "rng-seed", "seed-value", "sampling-seed"}
DEVICE_ALIASES = {"dev", "gpu", "cuda", "use-cuda", "use-gpu", "cpu", "use-cpu", "device-name"}
# Options that mark a verb as generating text (so it needs --backend); sampling ones also need --seed.
GENERATION_MARKERS = {"max-new-tokens", "num-generations", "max-completion-length"}
SAMPLING_MARKERS = {"temperature", "top-p", "num-generations", "n-samples"}
# A role model flag in place of --model: --policy-model, --base-model alone are the main model misnamed.
MAIN_ROLES = {"policy", "base", "main", "lm", "actor", "student", "generator"}
# Verbs that write a directory besides train*: need --output-dir.
DIRECTORY_VERBS = {"index", "build-prototypes", "prototypes"}
BACKEND_FLAGS = ("backend", "tensor-parallel-size", "gpu-memory-utilization")


@dataclasses.dataclass
class Verb:
    package: str  # distribution directory name (packages/<package>)
    module: str
    name: str  # verb path, e.g. "train" or "data build"
    flags: list[str]  # long option names without dashes, e.g. "output-dir" (secondary "--no-x" left out)
    all_names: list[str]  # every option string, e.g. "--use-kl", "--no-use-kl"

    @property
    def is_train(self) -> bool:
        return self.name.split()[-1].startswith("train")

    @property
    def is_generating(self) -> bool:
        return bool(GENERATION_MARKERS & set(self.flags)) or "backend" in self.flags


def package_modules() -> list[tuple[str, str]]:
    """(package dir, import name) of every package with a cli.py."""
    out = []
    for cli in sorted(ROOT.glob("packages/*/src/*/cli.py")):
        out.append((cli.parents[2].name, cli.parent.name))
    return out


def _walk(group, prefix: str = ""):
    for name, cmd in sorted(group.commands.items()):
        full = f"{prefix}{name}"
        if hasattr(cmd, "commands"):  # a group (typer may vendor its own click: no isinstance checks)
            yield from _walk(cmd, full + " ")
        else:
            yield full, cmd


def load_app(module: str):
    """The typer app of ``<module>.cli`` (attribute ``app``)."""
    return importlib.import_module(f"{module}.cli").app


def collect(errors: list[str] | None = None) -> list[Verb]:
    """Every verb of every package CLI with its option names; import failures go to ``errors``."""
    import typer

    verbs = []
    for pkg, mod in package_modules():
        try:
            app = load_app(mod)
            group = typer.main.get_command(app)
        except Exception as e:  # a package mid-edit: reported, not fatal
            if errors is not None:
                errors.append(f"{pkg}: cannot import {mod}.cli: {type(e).__name__}: {e}")
            continue
        commands = _walk(group) if hasattr(group, "commands") else [(group.name or mod, group)]
        for name, cmd in commands:
            flags, names = [], []
            for p in cmd.params:
                if getattr(p, "param_type_name", "") != "option" or p.name == "help":
                    continue
                names += [*p.opts, *p.secondary_opts]
                longs = [o for o in p.opts if o.startswith("--")]
                if longs:
                    flags.append(longs[0][2:])
            verbs.append(Verb(pkg, mod, name, flags, names))
    return verbs


def _cell(flags: list[str]) -> str:
    return " ".join(f"`--{f}`" for f in flags) if flags else "-"


def categories(v: Verb) -> dict[str, list[str]]:
    main = {"input": 0, "output": 0, "output-dir": 1, "model": 0}
    f = sorted(v.flags, key=lambda x: main.get(x, 2))  # the main flag first, roles after (stable)
    return {
        "input": [x for x in f if x == "input" or x.endswith("-input") or x in INPUT_ALIASES],
        "output": [x for x in f if x in ("output", "output-dir") or x in OUTPUT_ALIASES],
        "model": [x for x in f if x == "model" or x.endswith("-model") or x in MODEL_ALIASES],
        "seed": [x for x in f if x == "seed" or x in SEED_ALIASES],
        "device": [x for x in f if x == "device" or x in DEVICE_ALIASES],
        "backend": [x for x in f if x == "backend"],
        "resume": [x for x in f if x in ("save-steps", "resume")],
    }


def table(verbs: list[Verb]) -> str:
    head = "| package | verb | input | output | model | seed | device | backend | checkpoints |"
    lines = [head, "|" + "---|" * 9]
    for v in verbs:
        c = categories(v)
        lines.append(f"| {v.package} | `{v.name}` | " + " | ".join(
            _cell(c[k]) for k in ("input", "output", "model", "seed", "device", "backend", "resume")) + " |")
    return "\n".join(lines)


def violations(verbs: list[Verb]) -> list[str]:
    """Every breach of the CLI convention (shared/README.md), one line each."""
    out = []
    for v in verbs:
        where = f"{v.package} `{v.name}`"
        f = set(v.flags)
        for bad, use in ((MODEL_ALIASES, "--model"), (INPUT_ALIASES, "--input"), (SEED_ALIASES, "--seed"),
                         (DEVICE_ALIASES, "--device")):
            for x in sorted(f & bad):
                out.append(f"{where}: --{x} should be {use} (or --<role>-{use[2:]})")
        for x in sorted(f & OUTPUT_ALIASES):
            out.append(f"{where}: --{x} should be --output (one file) or --output-dir (a directory)")
        roles = sorted(x for x in f if x.endswith("-model") and x[: -len("-model")] in MAIN_ROLES)
        if roles and "model" not in f:
            out.append(f"{where}: {', '.join('--' + r for r in roles)} is the main model: call it --model")
        if v.name.split()[-1] in DIRECTORY_VERBS and "output-dir" not in f:
            out.append(f"{where}: writes a directory: needs --output-dir")
        if v.is_train:
            if "output-dir" not in f:
                out.append(f"{where}: a train verb writes a directory: needs --output-dir")
            for x in ("save-steps", "resume"):
                if x not in f:
                    out.append(f"{where}: a train verb needs --{x}")
            for x in ("seed", "device"):
                if x not in f:
                    out.append(f"{where}: a train verb needs --{x}")
        if v.is_generating:
            for x in BACKEND_FLAGS:
                if x not in f:
                    out.append(f"{where}: a generating verb needs --{x}")
            if "seed" not in f and SAMPLING_MARKERS & f:
                out.append(f"{where}: a sampling verb needs --seed")
    for pkg, mod in package_modules():
        src = ROOT / "packages" / pkg / "src" / mod
        if not (src / "__main__.py").is_file():
            out.append(f"{pkg}: no {mod}/__main__.py (python -m {mod} must work)")
        if 'if __name__ == "__main__"' not in (src / "cli.py").read_text(encoding="utf-8"):
            out.append(f"{pkg}: {mod}/cli.py lacks an `if __name__ == \"__main__\"` guard (python -m {mod}.cli)")
    return out


def render_readme(text: str, tbl: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"{README}: markers {START} / {END} not found")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{tbl}\n{END}{tail}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="update shared/README.md in place")
    ap.add_argument("--check", action="store_true", help="exit 1 if shared/README.md is out of date")
    args = ap.parse_args()
    errors: list[str] = []
    tbl = table(collect(errors))
    for e in errors:
        print(f"warning: {e}", file=sys.stderr)
    if args.write or args.check:
        text = README.read_text(encoding="utf-8")
        new = render_readme(text, tbl)
        if args.check:
            if new != text:
                print("shared/README.md CLI table is out of date: run python tools/cli_table.py --write")
                return 1
            return 0
        README.write_text(new, encoding="utf-8")
        return 0
    print(tbl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
