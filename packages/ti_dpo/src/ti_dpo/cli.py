"""``ti-dpo``: train, importance, eval. Heavy imports (torch, trl) happen inside the commands."""

from __future__ import annotations

import json

import typer
from rlcore.cli import config_command, config_to_dict, console

from .config import EvalConfig, ImportanceConfig, TrainConfig

app = typer.Typer(help="TI-DPO: token-importance guided DPO (ICLR 2026) as a TRL trainer.", no_args_is_help=True)


@config_command(app, "train", TrainConfig, help="Train a policy with TI-DPO on preference pairs.")
def train(cfg: TrainConfig) -> None:
    """Train, then print the final logged metrics as JSON on stdout."""
    import contextlib
    import sys

    from rlcore.training import is_main_process

    from .runner import run_train

    with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its logs; stdout carries only the summary
        metrics = run_train(cfg)
    if not is_main_process():
        return
    last = [h for h in metrics["log_history"] if "loss/dpo" in h]
    summary = {"config": config_to_dict(cfg), "world_size": metrics["world_size"],
               "attribution": metrics["attribution"], "resumed_from": metrics["resumed_from"],
               "data": metrics["data"], "last_step": last[-1] if last else {}}
    typer.echo(json.dumps(summary, indent=1))


@config_command(app, "importance", ImportanceConfig, help="Show the TI-DPO token weights of one prompt+response.")
def importance(cfg: ImportanceConfig) -> None:
    """Colored weights on the terminal; HTML / PNG heatmaps and JSON on request."""
    from pathlib import Path

    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.device import get_device

    from .visualize import render_html, render_png, render_terminal, token_importance

    model, tok = load_model_and_tokenizer(cfg.model, device=get_device(cfg.device), dtype="float32")
    view = token_importance(model, tok, cfg.prompt, cfg.response, cfg.ti_lambda, cfg.prior_sigma_div,
                            cfg.weight_normalization, cfg.importance_span, cfg.importance, cfg.prior,
                            cfg.max_length, cfg.seed)
    console().print(render_terminal(view))
    if cfg.html:
        Path(cfg.html).write_text(render_html(view), encoding="utf-8")
    if cfg.png:
        render_png(view, cfg.png)
    if cfg.output:
        Path(cfg.output).write_text(json.dumps(view, indent=1), encoding="utf-8")
    rows = [{"token": t, "weight": round(w, 4)} for t, w, m in
            zip(view["tokens"], view["weights"], view["response_mask"], strict=True) if m]
    typer.echo(json.dumps(rows))


@config_command(app, "eval", EvalConfig, help="Preference accuracy and reward margins on held-out pairs.")
def evaluate(cfg: EvalConfig) -> None:
    """Print (and optionally write) the metrics JSON."""
    from .runner import run_eval

    metrics = run_eval(cfg)
    if cfg.output:
        from rlcore.io import write_json

        write_json(cfg.output, metrics)
    typer.echo(json.dumps(metrics, indent=1))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
