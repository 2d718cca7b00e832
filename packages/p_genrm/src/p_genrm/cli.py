"""``p-genrm``: score, build-prototypes, eval, train --stage, study (the synthetic-user study).

Heavy libraries (torch, trl, faiss, sentence-transformers) are imported inside the commands so ``--help`` is fast.
``score``, ``eval`` and ``build-prototypes`` stream their records (``rlcore.io.ResumableJsonlWriter``): each is
written as soon as it is done, and a rerun after a crash skips the ids already in the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rlcore.cli import config_command, console, fail, progress

from .config import EvalConfig, PrototypeConfig, ScoreConfig, TrainConfig

app = typer.Typer(help="P-GenRM: personalised generative reward model with test-time user-based scaling.",
                  no_args_is_help=True, add_completion=False)


def _scorer(cfg, seed: int | None = None):
    from .scoring import load_scorer

    return load_scorer(cfg.model, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.gen_batch_size or None,
                       backend=cfg.backend, tensor_parallel_size=cfg.tensor_parallel_size,
                       gpu_memory_utilization=cfg.gpu_memory_utilization, max_new_tokens=cfg.max_new_tokens,
                       temperature=cfg.temperature, top_p=cfg.top_p, max_retries=cfg.max_retries,
                       seed=cfg.seed if seed is None else seed, strict_arithmetic=cfg.strict_arithmetic)


def _scaler(cfg, scorer, preset: str, index=None):
    from .prototypes import PrototypeIndex, SentenceEmbedder
    from .scaling import TestTimeScaler, get_preset, preset_pro_mode

    ind_n, pro_k = get_preset(preset)
    embedder = None
    if pro_k > 0:
        index = index or PrototypeIndex.load(cfg.prototypes)
        embedder = SentenceEmbedder(cfg.encoder or index.meta.get("encoder") or None)
    return TestTimeScaler(scorer, index if pro_k > 0 else None, embedder, ind_n=ind_n, pro_k=pro_k,
                          coef_self=cfg.coef_self, coef_neighbors=cfg.coef_neighbors, tie_rule=cfg.tie_rule,
                          pro_mode=preset_pro_mode(preset))


def _notes(scorer) -> None:
    st = scorer.stats
    if st.system_folded:
        console().print("note: the model's chat template has no system turn; the system prompt was put at the start "
                        "of the user turn")
    if st.truncated_prompts:
        console().print(f"note: {st.truncated_prompts} prompts were longer than the model's context "
                        f"({scorer.context} tokens) allows with the chain budget and kept only their last tokens")


@config_command(app, "score", ScoreConfig)
def score(cfg: ScoreConfig) -> None:
    """Score request pairs (Ind-n / Pro-k per --preset); one JSON record per request, streamed (resumable)."""
    from rlcore.io import ResumableJsonlWriter

    from .data import load_requests

    requests = load_requests(cfg.input)
    ids = [f"{i}" if r.user_id is None else f"{i}:{r.user_id}" for i, r in enumerate(requests)]
    scorer = _scorer(cfg)
    scaler = _scaler(cfg, scorer, cfg.preset)
    batch = 16
    with ResumableJsonlWriter(cfg.output) as out, progress() as bar:
        todo = [i for i in range(len(requests)) if ids[i] not in out]
        task = bar.add_task("scoring pairs", total=len(requests), completed=len(requests) - len(todo))
        for s in range(0, len(todo), batch):
            chunk = todo[s:s + batch]
            for i, res in zip(chunk, scaler.score([requests[i] for i in chunk])):
                out.write({"id": ids[i], "user_id": requests[i].user_id, "scores": res.final,
                           "preferred": res.preferred, "self_scores": res.self_scores,
                           "neighbor_scores": res.nb_scores, "chains_used": res.n_self,
                           "neighbors_used": res.n_neighbors, "neighbors_requested": res.neighbors_requested,
                           "prototype": res.prototype, "pro_skipped": res.pro_skipped})
            bar.advance(task, len(chunk))
    _notes(scorer)
    console().print(f"wrote {len(todo)} scored requests to {cfg.output} ({len(requests) - len(todo)} already there); "
                    f"parsing: {scorer.stats.as_dict()}")


@config_command(app, "build-prototypes", PrototypeConfig)
def build_prototypes(cfg: PrototypeConfig) -> None:
    """Score training users' train+val rows, embed PART 1, K-means + refinement, save the prototype index.

    The member chains are streamed to OUTPUT_DIR/chains.jsonl; a rerun reuses them and scores only the rest.
    """
    from .data import group_by_user, load_rows, load_stated_criteria
    from .prototype_building import build_prototype_index
    from .prototypes import SentenceEmbedder

    stated = load_stated_criteria(cfg.stated_prefs) if cfg.stated_prefs else None
    users = group_by_user(load_rows(cfg.input), stated)
    embedder = SentenceEmbedder(cfg.encoder or None)
    scorer = _scorer(cfg)
    with progress() as bar:
        task = bar.add_task("member chains", total=None)
        index, metrics = build_prototype_index(
            scorer, users, embedder, num_prototypes=cfg.num_prototypes, history_size=cfg.history_size,
            seed=cfg.seed, refine=cfg.refine, kmeans_kw={"n_iter": cfg.kmeans_iters, "n_init": cfg.kmeans_init},
            refine_kw={"epochs": cfg.refine_epochs, "batch_size": cfg.refine_batch_size, "lr": cfg.refine_lr,
                       "rho": cfg.rho, "lambda_q": cfg.lambda_q, "lambda_s": cfg.lambda_s},
            chains_path=Path(cfg.output_dir) / "chains.jsonl",
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    _notes(scorer)
    index.meta["encoder"] = embedder.path
    index.save(cfg.output_dir)
    typer.echo(json.dumps({"output_dir": cfg.output_dir, **metrics}))


@config_command(app, "eval", EvalConfig)
def evaluate(cfg: EvalConfig) -> None:
    """Per-user pairwise accuracy on the test rows for each preset, both accuracy protocols, mean/std over seeds.

    With --output M.json, every scored pair is streamed to M.records.jsonl (resumable) and the metrics to M.json.
    """
    from rlcore.io import ResumableJsonlWriter, read_jsonl, write_json

    from .data import load_benchmark, load_stated_criteria
    from .evaluation import evaluate_users, summarize_seeds

    stated = load_stated_criteria(cfg.stated_prefs) if cfg.stated_prefs else None
    users = load_benchmark(cfg.input, cfg.input_format, stated, cfg.profile_size, cfg.profile_chars)
    n_pairs = sum(len(u.test) for u in users.values())
    records = Path(cfg.output).with_suffix(".records.jsonl") if cfg.output else None
    writer = ResumableJsonlWriter(records) if records else None
    previous = read_jsonl(records) if records and writer.done else []
    index = None
    report = {}
    try:
        with progress() as bar:
            for preset in cfg.presets:
                runs = []
                for seed in cfg.seeds:
                    run_key = f"{preset}|{seed}|"
                    done = {k[len(run_key):] for k in (writer.done if writer else ()) if str(k).startswith(run_key)}
                    prev = [{**r, "id": r["id"][len(run_key):]} for r in previous if r["id"].startswith(run_key)]
                    scorer = _scorer(cfg, seed)
                    scaler = _scaler(cfg, scorer, preset, index)
                    index = scaler.index or index
                    task = bar.add_task(f"{preset} seed {seed}", total=n_pairs, completed=len(done))
                    on = (lambda rec, k=run_key: writer.write({**rec, "id": k + rec["id"]})) if writer else None
                    run = evaluate_users(scaler, users, cfg.history_size, seed, on_result=on, done=done,
                                         previous=prev, progress=lambda k, t=task: bar.advance(t, k))
                    runs.append({**run, "seed": seed, "parsing": scorer.stats.as_dict()})
                    if preset == cfg.presets[0] and seed == cfg.seeds[0]:
                        _notes(scorer)
                report[preset] = {**summarize_seeds(runs), "runs": runs}
    finally:
        if writer:
            writer.close()
    if cfg.output:
        write_json(cfg.output, report)
    typer.echo(json.dumps(report))


@config_command(app, "train", TrainConfig)
def train(cfg: TrainConfig) -> None:
    """Train one stage: --stage sft (PSI), grpo (CRE: alpha*process + beta*outcome) or curriculum."""
    from rlcore.training import is_main_process

    from .training import run_training

    out = run_training(cfg)
    if is_main_process():
        losses = [h["loss"] for h in out["log_history"] if "loss" in h]
        typer.echo(json.dumps({"stage": cfg.stage, "steps": len(losses), "losses": losses, "data": out["data"],
                               "output_dir": cfg.output_dir, "world_size": out["world_size"],
                               "resumed_from": out["resumed_from"]}))


@app.command("study")
def study(quick: bool = typer.Option(False, help="smaller population (about 15 s)"),
          seed: int = typer.Option(0, help="seed of the synthetic world and judge"),
          strict_arithmetic: bool = typer.Option(False, help="parse with our structured format's arithmetic check")
          ) -> None:
    """The synthetic-user study (no LLM): Ind-n vs n=1, Ind+Pro vs Ind for short- and long-history users."""
    from .synthetic import run_synthetic_study

    if seed < 0:
        fail(f"seed must be >= 0, got {seed}")
    typer.echo(json.dumps(run_synthetic_study(quick=quick, seed=seed, strict_arithmetic=strict_arithmetic),
                          indent=2))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
