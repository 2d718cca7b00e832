"""The training driver: rollouts + updates, periodic evaluation with best-model selection, checkpoints, resume."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .config import DEFAULT_ENCODER, TrainConfig, model_settings
from .data import Sample, get_loader
from .pqn import PQNTrainer
from .q_function import QFunction
from .retriever import evaluate_retrieval

__all__ = ["load_q_function", "run_training", "train_from_config"]


def load_q_function(ref: str, device: str = "auto", base_model: str | None = None, **requested) -> QFunction:
    """A Q-function from a saved Q-RAG dir, an official run dir or a base encoder (``default`` = offline MiniLM).

    ``requested`` settings (position, step_size, pooling, max_*_tokens, sort_by_index) that are None come from the
    model (saved dirs, official runs) or the defaults (base encoders); explicit values contradicting a saved model
    raise ``ValueError``.
    """
    from rlcore.builtins import default_encoder_path, resolve
    from rlcore.device import get_device

    from .official import is_official_run, load_official_checkpoint

    path = default_encoder_path() if ref in (DEFAULT_ENCODER, "") else resolve(ref)
    if is_official_run(path):
        qf = load_official_checkpoint(path, base_model or None, **requested)
    elif base_model:
        raise ValueError(f"--base-model applies to official run directories only; {ref} is not one "
                         f"(no config.yaml + model_best.pt/model_last.pt)")
    else:
        qf = QFunction.from_pretrained(path, **requested)
    return qf.to(get_device(None if device == "auto" else device))


def _init_distributed() -> tuple[int, int]:
    """(rank, world size); under ``accelerate launch`` / torchrun starts a gloo/nccl process group once."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def run_training(qf: QFunction, cfg: TrainConfig, train_samples: Sequence[Sample],
                 eval_samples: Sequence[Sample] | None = None, output_dir: str | Path | None = None,
                 log: Callable[[dict], None] | None = None) -> dict:
    """Train ``qf`` in place for ``cfg.total_steps`` optimizer steps; return the best evaluation metrics.

    With ``output_dir``: ``checkpoint-<step>/`` (``rlcore.checkpoint``: encoders + targets, optimizer, scheduler,
    RNGs, live episodes) every ``save_steps`` steps and at the end, ``best/`` (the Q-function with the best mean
    evaluation return), ``metrics.jsonl`` and ``summary.json``. ``cfg.resume`` (``latest`` or a checkpoint path)
    continues a run exactly (metrics rows after the checkpoint step are dropped first). Under a multi-process
    launch every rank acts in its own episodes, gradients are averaged over ranks, and only the main process
    evaluates, logs and writes.
    """
    from rlcore.checkpoint import load_checkpoint, resolve_resume, save_checkpoint, truncate_jsonl
    from rlcore.cli import progress
    from rlcore.device import seed_everything
    from rlcore.io import write_json

    rank, world = _init_distributed()
    main = rank == 0
    seed_everything(cfg.seed)
    trainer = PQNTrainer(qf, cfg, train_samples, rank=rank, world_size=world)
    evals = list(eval_samples or train_samples)[: cfg.eval_episodes]
    out = Path(output_dir) if output_dir else None
    best: dict = {"return": float("-inf")}
    if out:
        ckpt = resolve_resume(cfg.resume, out)
        if ckpt is not None:
            st = load_checkpoint(ckpt, model=trainer.modules, optimizer=trainer.optimizer, scheduler=trainer.scheduler)
            extra = st["extra"]
            ranks = extra["ranks"]
            trainer.load_loop_state(ranks[rank] if rank < len(ranks) else ranks[0], st["step"])
            best = extra.get("best") or best
            if best.get("return") is None:
                best["return"] = float("-inf")
            truncate_jsonl(out / "metrics.jsonl", st["step"])
        if main:
            out.mkdir(parents=True, exist_ok=True)
    elif cfg.resume:
        raise ValueError("--resume needs an output directory")
    metrics_f = open(out / "metrics.jsonl", "a", encoding="utf-8") if out and main else None  # noqa: SIM115
    bar = progress(disable=not main)
    try:
        with bar:
            task = bar.add_task("training", total=cfg.total_steps, completed=trainer.step)
            while trainer.step < cfg.total_steps:
                row = trainer.update()
                if main and (trainer.step % cfg.eval_interval == 0 or trainer.step == cfg.total_steps):
                    ev = evaluate_retrieval(qf, evals, cfg.max_steps, stop_on_success=True)
                    row.update({f"eval_{k}": v for k, v in ev.items()})
                    if ev["return"] > best["return"]:
                        best = {**ev, "step": trainer.step}
                        if out:
                            qf.save(out / "best")
                if main and log:
                    log(row)
                if metrics_f:
                    metrics_f.write(json.dumps(row) + "\n")
                    metrics_f.flush()
                bar.advance(task)
                if out and ((cfg.save_steps and trainer.step % cfg.save_steps == 0)
                            or trainer.step == cfg.total_steps):
                    ranks = _gather(trainer.loop_state(), world)
                    save_checkpoint(out, trainer.step, model=trainer.modules, optimizer=trainer.optimizer,
                                    scheduler=trainer.scheduler, extra={"ranks": ranks, "best": _finite(best)})
    finally:
        if metrics_f:
            metrics_f.close()
    drawn = _gather(trainer.drawn[:32], world)
    if out and main:
        write_json(out / "summary.json", {"world_size": world, "steps": trainer.step, "best": _finite(best),
                                          "samples_per_rank": drawn})
    return best


def _gather(obj, world: int) -> list:
    if world <= 1:
        return [obj]
    out = [None] * world
    torch.distributed.all_gather_object(out, obj)
    return out


def _finite(d: dict) -> dict:
    """JSON-safe copy (``-inf`` best return before any evaluation becomes None)."""
    return {k: (v if not isinstance(v, float) or v == v and abs(v) != float("inf") else None) for k, v in d.items()}


def train_from_config(cfg: TrainConfig, log: Callable[[dict], None] | None = None) -> dict:
    """Load data and the base encoder named by ``cfg`` and train (the ``q-rag train`` command)."""
    loader = get_loader(cfg.data_format)
    train = loader(cfg.input)
    evals = loader(cfg.eval_input) if cfg.eval_input else None
    qf = load_q_function(cfg.model, cfg.device, **model_settings(cfg))
    return run_training(qf, cfg, train, evals, cfg.output_dir, log)
