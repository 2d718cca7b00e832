"""The training driver: rollouts + updates, periodic evaluation with best-model selection, checkpoints, resume."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .config import DEFAULT_ENCODER, TrainConfig
from .data import Sample, get_loader
from .pqn import PQNTrainer
from .q_function import QFunction
from .retriever import evaluate_retrieval

__all__ = ["load_q_function", "run_training", "train_from_config"]


def load_q_function(ref: str, device: str = "auto", **kw) -> QFunction:
    """A Q-function from a saved Q-RAG dir or base encoder (``default`` = offline all-MiniLM-L6-v2)."""
    from rlcore.builtins import default_encoder_path, resolve
    from rlcore.device import get_device

    path = default_encoder_path() if ref in (DEFAULT_ENCODER, "") else resolve(ref)
    qf = QFunction.from_pretrained(path, **kw)
    return qf.to(get_device(None if device == "auto" else device))


def run_training(qf: QFunction, cfg: TrainConfig, train_samples: Sequence[Sample],
                 eval_samples: Sequence[Sample] | None = None, output_dir: str | Path | None = None,
                 log: Callable[[dict], None] | None = None) -> dict:
    """Train ``qf`` in place for ``cfg.total_steps`` optimizer steps; return the best evaluation metrics.

    With ``output_dir``: ``checkpoint.pt`` every ``checkpoint_interval`` steps (resumed when ``cfg.resume``),
    ``best/`` (the Q-function with the best mean evaluation return), ``metrics.jsonl``.
    """
    from rlcore.device import seed_everything

    seed_everything(cfg.seed)
    trainer = PQNTrainer(qf, cfg, train_samples)
    evals = list(eval_samples or train_samples)[: cfg.eval_episodes]
    out = Path(output_dir) if output_dir else None
    ckpt = out / "checkpoint.pt" if out else None
    best: dict = {"return": float("-inf")}
    if out:
        out.mkdir(parents=True, exist_ok=True)
        if cfg.resume and ckpt.is_file():
            sd = torch.load(ckpt, map_location="cpu", weights_only=False)
            trainer.load_state_dict(sd)
            best = sd.get("best", best)
    metrics_f = open(out / "metrics.jsonl", "a", encoding="utf-8") if out else None  # noqa: SIM115
    try:
        while trainer.step < cfg.total_steps:
            row = trainer.update()
            if trainer.step % cfg.eval_interval == 0 or trainer.step == cfg.total_steps:
                ev = evaluate_retrieval(qf, evals, cfg.max_steps, cfg.sort_by_index, stop_on_success=True)
                row.update({f"eval_{k}": v for k, v in ev.items()})
                if ev["return"] > best["return"]:
                    best = {**ev, "step": trainer.step}
                    if out:
                        qf.save(out / "best")
            if log:
                log(row)
            if metrics_f:
                metrics_f.write(json.dumps(row) + "\n")
                metrics_f.flush()
            if ckpt and (trainer.step % cfg.checkpoint_interval == 0 or trainer.step == cfg.total_steps):
                tmp = ckpt.with_suffix(".tmp")
                torch.save({**trainer.state_dict(), "best": best}, tmp)
                tmp.replace(ckpt)
    finally:
        if metrics_f:
            metrics_f.close()
    return best


def train_from_config(cfg: TrainConfig, log: Callable[[dict], None] | None = None) -> dict:
    """Load data and the base encoder named by ``cfg`` and train (the ``q-rag train`` command)."""
    loader = get_loader(cfg.data_format)
    train = loader(cfg.train_data)
    evals = loader(cfg.eval_data) if cfg.eval_data else None
    qf = load_q_function(cfg.encoder, cfg.device, position=cfg.position, max_state_tokens=cfg.max_state_tokens,
                         max_action_tokens=cfg.max_action_tokens)
    return run_training(qf, cfg, train, evals, cfg.output_dir, log)
