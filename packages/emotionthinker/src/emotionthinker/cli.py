"""``emotionthinker`` command line: prosody, annotate, train, infer, eval.

Heavy imports (librosa, torch, transformers) happen inside the commands so ``--help`` is instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rlcore.cli import config_command, config_to_dict, console, fail, load_config, progress

from .config import AnnotateConfig, EvalConfig, InferConfig, ProsodyConfig, RunConfig, TrainConfig

app = typer.Typer(help="EmotionThinker: prosody features and GRPO-PTR for speech emotion reasoning.",
                  no_args_is_help=True, add_completion=False)


def _transcripts(path: str, files: list[Path]) -> dict[str, str]:
    from rlcore.io import iter_jsonl

    out = {}
    if path:
        base = Path(path).parent
        for rec in iter_jsonl(path, required=("audio_path", "transcription")):
            p = Path(rec["audio_path"])
            out[str(p if p.is_absolute() else base / p)] = rec["transcription"]
    for f in files:  # sidecar transcripts: clip.wav + clip.txt
        txt = f.with_suffix(".txt")
        if str(f) not in out and txt.is_file():
            out[str(f)] = txt.read_text(encoding="utf-8").strip()
    return out


@app.command("prosody")
def prosody_cmd(
    inputs: Annotated[list[str] | None, typer.Argument(help="audio files and/or folders")] = None,
    input: Annotated[list[str] | None, typer.Option(
        "--input", help="audio file or folder (repeatable; same as the positional arguments)")] = None,
    output: Annotated[str | None, typer.Option(help=RunConfig.__dataclass_fields__["output"].metadata["help"])] = None,
    workers: Annotated[int | None, typer.Option(help=RunConfig.__dataclass_fields__["workers"].metadata["help"])] = None,
    recursive: Annotated[bool | None, typer.Option(help="search folders recursively")] = None,
    transcripts: Annotated[str | None, typer.Option(help=RunConfig.__dataclass_fields__["transcripts"].metadata["help"])] = None,
    prosody_config: Annotated[str | None, typer.Option(help="YAML/TOML/JSON of ProsodyConfig constants")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML/TOML/JSON file of these options")] = None,
) -> None:
    """Prosody features of audio files (folders searched), one JSONL record per file; bad files -> error records."""
    inputs = [*(inputs or []), *(input or [])]
    if not inputs:
        fail("give audio files/folders (positional or --input)")
    try:
        run = load_config(RunConfig, config, output=output, workers=workers, recursive=recursive, transcripts=transcripts,
                          prosody_config=prosody_config)
        pcfg = load_config(ProsodyConfig, run.prosody_config or None)
        from .batch import extract_many, find_audio_files

        files = find_audio_files(inputs, run.recursive)
        texts = _transcripts(run.transcripts, files)
    except (ValueError, FileNotFoundError) as e:
        fail(str(e))
    if not files:
        fail(f"no audio files found in {inputs}")
    n_err = 0
    sink = open(run.output, "w", encoding="utf-8") if run.output else sys.stdout  # noqa: SIM115
    try:
        with progress() as bar:
            task = bar.add_task("prosody", total=len(files))
            for rec in extract_many(files, pcfg, run.workers, texts, on_result=lambda _: bar.advance(task)):
                n_err += "error" in rec
                sink.write(json.dumps(rec) + "\n")
    finally:
        if run.output:
            sink.close()
    console().print(f"{len(files) - n_err} ok, {n_err} failed" + (f" -> {run.output}" if run.output else ""))


@config_command(app, "annotate", AnnotateConfig)
def annotate_cmd(cfg: AnnotateConfig) -> None:
    """Prosody + calibrated levels + caption + CoT prompt for each record of an EmotionCoT-style JSONL."""
    from .annotate import annotate

    summary = annotate(cfg)
    console().print(json.dumps(summary))


@config_command(app, "train", TrainConfig)
def train_cmd(cfg: TrainConfig) -> None:
    """GRPO-PTR training (own loop on rlcore.pg: TRL 1.16 cannot carry audio features into the loss)."""
    from rlcore.io import write_json
    from rlcore.training import is_main_process

    from .trainer import train_ptr

    res = train_ptr(cfg)
    if not is_main_process():
        return
    write_json(Path(cfg.output_dir) / "config.json", config_to_dict(cfg))
    if not res["history"]:
        console().print(f"nothing to do: already at step {cfg.steps} -> {res['output_dir']}")
        return
    last = res["history"][-1]
    console().print(f"done: {len(res['history'])} steps (world size {res['world_size']}), last reward "
                    f"{last['reward']:.3f}, w_t {last['w_t']:.3f}, judge calls {res['judge_calls']} -> "
                    f"{res['output_dir']}")


@config_command(app, "infer", InferConfig)
def infer_cmd(cfg: InferConfig) -> None:
    """Run the policy on EmotionCoT records; writes completions and parsed labels as JSONL."""
    from .infer import run_inference

    n = run_inference(cfg)
    console().print(f"{n['written']} predictions written, {n['skipped']} already there -> {cfg.output}")


@config_command(app, "eval", EvalConfig)
def eval_cmd(cfg: EvalConfig) -> None:
    """Accuracy, UA, soft-label agreement, per-class recall, confusion PNG and judge scores of predictions."""
    from .infer import evaluate_predictions

    m = evaluate_predictions(cfg)
    typer.echo(json.dumps({k: m[k] for k in ("n", "accuracy", "ua", "soft_agreement", "unparsed", "judge_mean")
                           if k in m}))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    app()
