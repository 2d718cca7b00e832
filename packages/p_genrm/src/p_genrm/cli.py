"""``p-genrm``: score, build-prototypes, eval, train --stage, study (the synthetic-user study).

Heavy libraries (torch, trl, faiss, sentence-transformers) are imported inside the commands so ``--help`` is fast.
"""

from __future__ import annotations

import json

import typer
from rlcore.cli import config_command, console, fail

from .config import EvalConfig, PrototypeConfig, ScoreConfig, TrainConfig

app = typer.Typer(help="P-GenRM: personalised generative reward model with test-time user-based scaling.",
                  no_args_is_help=True, add_completion=False)


def _scorer(cfg, seed: int | None = None):
    from .scoring import load_scorer

    return load_scorer(cfg.model, device=cfg.device or None, dtype=cfg.dtype, batch_size=cfg.gen_batch_size or None,
                       max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                       max_retries=cfg.max_retries, seed=cfg.seed if seed is None else seed)


def _scaler(cfg, scorer, preset: str):
    from .prototypes import PrototypeIndex, SentenceEmbedder
    from .scaling import TestTimeScaler, get_preset

    ind_n, pro_k = get_preset(preset)
    index = embedder = None
    if pro_k > 0:
        index = PrototypeIndex.load(cfg.prototypes)
        embedder = SentenceEmbedder(cfg.encoder or index.meta.get("encoder") or None)
    return TestTimeScaler(scorer, index, embedder, ind_n=ind_n, pro_k=pro_k, coef_self=cfg.coef_self,
                          coef_neighbors=cfg.coef_neighbors, tie_rule=cfg.tie_rule)


@config_command(app, "score", ScoreConfig)
def score(cfg: ScoreConfig) -> None:
    """Score request pairs (Ind-n / Pro-k per --preset) and write one JSON record per request."""
    from rlcore.io import write_jsonl

    from .data import load_requests

    requests = load_requests(cfg.input)
    scorer = _scorer(cfg)
    results = _scaler(cfg, scorer, cfg.preset).score(requests)
    n = write_jsonl(cfg.output, ({"user_id": r.user_id, "scores": res.final, "preferred": res.preferred,
                                  "self_scores": res.self_scores, "neighbor_scores": res.nb_scores,
                                  "chains_used": res.n_self, "neighbors_used": res.n_neighbors,
                                  "neighbors_requested": res.neighbors_requested, "prototype": res.prototype,
                                  "pro_skipped": res.pro_skipped} for r, res in zip(requests, results)))
    console().print(f"wrote {n} scored requests to {cfg.output}; parsing: {scorer.stats.as_dict()}")


@config_command(app, "build-prototypes", PrototypeConfig)
def build_prototypes(cfg: PrototypeConfig) -> None:
    """Score training users' train+val rows, embed PART 1, K-means + refinement, save the prototype index."""
    from .data import group_by_user, load_rows, load_stated_criteria
    from .prototype_building import build_prototype_index
    from .prototypes import SentenceEmbedder

    stated = load_stated_criteria(cfg.stated_prefs) if cfg.stated_prefs else None
    users = group_by_user(load_rows(cfg.data), stated)
    embedder = SentenceEmbedder(cfg.encoder or None)
    index, metrics = build_prototype_index(
        _scorer(cfg), users, embedder, num_prototypes=cfg.num_prototypes, history_size=cfg.history_size,
        seed=cfg.seed, refine=cfg.refine, kmeans_kw={"n_iter": cfg.kmeans_iters, "n_init": cfg.kmeans_init},
        refine_kw={"epochs": cfg.refine_epochs, "batch_size": cfg.refine_batch_size, "lr": cfg.refine_lr,
                   "rho": cfg.rho, "lambda_q": cfg.lambda_q, "lambda_s": cfg.lambda_s},
    )
    index.meta["encoder"] = embedder.path
    index.save(cfg.output_dir)
    typer.echo(json.dumps({"output_dir": cfg.output_dir, **metrics}))


@config_command(app, "eval", EvalConfig)
def evaluate(cfg: EvalConfig) -> None:
    """Per-user pairwise accuracy on the test rows for each preset; mean and std over --seeds."""
    from rlcore.io import write_json

    from .data import group_by_user, load_rows, load_stated_criteria
    from .evaluation import evaluate_users, summarize_seeds

    stated = load_stated_criteria(cfg.stated_prefs) if cfg.stated_prefs else None
    users = group_by_user(load_rows(cfg.data), stated)
    report = {}
    for preset in cfg.presets:
        runs = []
        for seed in cfg.seeds:
            scorer = _scorer(cfg, seed)
            run = evaluate_users(_scaler(cfg, scorer, preset), users, cfg.history_size, seed)
            runs.append({**run, "seed": seed, "parsing": scorer.stats.as_dict()})
        report[preset] = {**summarize_seeds(runs), "runs": runs}
    if cfg.output:
        write_json(cfg.output, report)
    typer.echo(json.dumps(report))


@config_command(app, "train", TrainConfig)
def train(cfg: TrainConfig) -> None:
    """Train one stage: --stage sft (PSI), grpo (CRE: alpha*process + beta*outcome) or curriculum."""
    from .training import run_training

    out = run_training(cfg)
    losses = [h["loss"] for h in out["log_history"] if "loss" in h]
    typer.echo(json.dumps({"stage": cfg.stage, "steps": len(losses), "losses": losses, "data": out["data"],
                           "output_dir": cfg.output_dir}))


@app.command("study")
def study(quick: bool = typer.Option(False, help="smaller population (about 15 s)"),
          seed: int = typer.Option(0, help="seed of the synthetic world and judge")) -> None:
    """The synthetic-user study (no LLM): Ind-n vs n=1, Ind+Pro vs Ind for short- and long-history users."""
    from .synthetic import run_synthetic_study

    if seed < 0:
        fail(f"seed must be >= 0, got {seed}")
    typer.echo(json.dumps(run_synthetic_study(quick=quick, seed=seed), indent=2))


def main() -> None:
    """Console-script entry point."""
    app()
