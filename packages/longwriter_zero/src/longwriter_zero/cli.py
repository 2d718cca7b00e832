"""``longwriter-zero`` command line: train, generate, predict-length, eval, train-rm.

Every command's flags are its config dataclass's fields (``--config x.yaml`` first, flags override). Heavy
libraries are imported inside the commands so ``--help`` is instant.
"""

from __future__ import annotations

import json

import typer
from rlcore.cli import config_command, console

from .config import EvalConfig, GenerateConfig, PredictLengthConfig, TrainConfig, TrainRMConfig

app = typer.Typer(help="LongWriter-Zero: RL for ultra-long writing (length, writing-quality and format rewards).",
                  no_args_is_help=True, pretty_exceptions_enable=False)


@config_command(app, "train", TrainConfig, help="GRPO on a prompts JSONL with the three rewards and advantage averaging.")
def train_cmd(cfg: TrainConfig) -> None:
    """Run GRPO training."""
    from rlcore.training import is_main_process

    from .train import train

    res = train(cfg)
    if not is_main_process():  # under `accelerate launch` one process reports
        return
    steps = [h for h in res["log_history"] if "rewards/length_reward/mean" in h]
    if steps:
        console().print(f"length reward: step 1 {steps[0]['rewards/length_reward/mean']:.3f} -> "
                        f"step {len(steps)} {steps[-1]['rewards/length_reward/mean']:.3f}")
    typer.echo(res["final_model"])


@config_command(app, "generate", GenerateConfig, help="Answer requests with the paper's prompt and stop strings.")
def generate_cmd(cfg: GenerateConfig) -> None:
    """Generate answers."""
    from .generation import answer_one, generate_file

    if cfg.question:
        typer.echo(answer_one(cfg))
    else:
        counts = generate_file(cfg)
        console().print(f"wrote {counts['written']} generations to {cfg.output} "
                        f"({counts['skipped']} already there)")


@config_command(app, "predict-length", PredictLengthConfig, help="Add length_range to each record (rules, then an LM assessor).")
def predict_length_cmd(cfg: PredictLengthConfig) -> None:
    """Predict length ranges."""
    from .length_predictor import predict_length_file

    counts = predict_length_file(cfg)
    typer.echo(json.dumps(counts))


@config_command(app, "eval", EvalConfig, help="Length adherence, format validity, repetition; Elo vs baselines with a judge.")
def eval_cmd(cfg: EvalConfig) -> None:
    """Evaluate generations."""
    from .evaluate import evaluate

    typer.echo(json.dumps(evaluate(cfg), indent=2, ensure_ascii=False))


@config_command(app, "train-rm", TrainRMConfig, help="Train a Bradley-Terry writing RM on preference pairs (TRL RewardTrainer).")
def train_rm_cmd(cfg: TrainRMConfig) -> None:
    """Train a writing reward model."""
    from rlcore.training import is_main_process

    from .rm_training import train_reward_model

    res = train_reward_model(cfg)
    if is_main_process():
        typer.echo(json.dumps(res))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # python -m longwriter_zero.cli (and so `accelerate launch -m longwriter_zero.cli`)
    main()
