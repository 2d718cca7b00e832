"""``q-rag``: data / train / index / retrieve / eval. Heavy imports live inside the commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rlcore.cli import config_command, config_to_dict, console

from .config import DataConfig, EvalConfig, IndexConfig, RetrieveConfig, TrainConfig

app = typer.Typer(help="Q-RAG: multi-step retrieval by value-based embedder training.", no_args_is_help=True)


@config_command(app, "data", DataConfig)
def data_cmd(cfg: DataConfig) -> None:
    """Build BabiLong-style / NIAH samples as unified JSONL."""
    import random

    from .babilong import build_babilong, build_synthetic_dataset, filler_sentences, read_babi, read_filler
    from .data import write_samples

    if cfg.task == "babi":
        rng = random.Random(cfg.seed)
        stories = read_babi(cfg.babi_file)
        filler = read_filler(cfg.filler_file, rng) if cfg.filler_file else filler_sentences(rng)
        samples = [build_babilong(stories[i % len(stories)], cfg.tokens, filler, rng, f"babi-{i}") for i in range(cfg.n)]
    else:
        samples = build_synthetic_dataset(cfg.task, cfg.n, cfg.tokens, cfg.seed, cfg.n_facts, cfg.filler_file or None)
    write_samples(cfg.output, samples)
    console().print(f"wrote {len(samples)} samples to {cfg.output}")


@config_command(app, "train", TrainConfig)
def train_cmd(cfg: TrainConfig) -> None:
    """PQN-style soft Q(lambda) training; writes checkpoint.pt, best/ and metrics.jsonl to output_dir."""
    from rlcore.io import write_json

    from .train import train_from_config

    con = console()
    Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(cfg.output_dir) / "config.json", config_to_dict(cfg))

    def log(row: dict) -> None:
        if row["step"] % max(1, cfg.eval_interval // 5) == 0 or "eval_return" in row:
            con.print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})

    best = train_from_config(cfg, log)
    print(json.dumps(best))


def _load_model(cfg: IndexConfig):
    from .train import load_q_function

    return load_q_function(cfg.model, cfg.device, position=cfg.position)


@config_command(app, "index", IndexConfig)
def index_cmd(cfg: IndexConfig) -> None:
    """Compute and cache the chunk embeddings of every document."""
    from .data import get_loader
    from .index import encode_chunks

    samples = get_loader(cfg.data_format)(cfg.data)
    qf = _load_model(cfg)
    for s in samples:
        emb = encode_chunks(qf, s.chunks, cfg.cache_dir, cfg.batch_size, show_progress=True, max_chunks=cfg.max_chunks)
        print(json.dumps({"id": s.id, "chunks": len(s.chunks), "dim": int(emb.shape[1])}))


@config_command(app, "retrieve", RetrieveConfig)
def retrieve_cmd(cfg: RetrieveConfig) -> None:
    """Greedy multi-step retrieval; one JSON line per question (ids, q-values, support-fact metrics)."""
    from rlcore.io import write_jsonl

    from .data import get_loader
    from .index import ChunkIndex, encode_chunks
    from .retriever import retrieve, support_fact_metrics

    samples = get_loader(cfg.data_format)(cfg.data)
    qf = _load_model(cfg)
    rows = []
    for s in samples:
        emb = encode_chunks(qf, s.chunks, cfg.cache_dir, cfg.batch_size, max_chunks=cfg.max_chunks)
        index = ChunkIndex(emb, qf.position, qf.rope_theta, cfg.backend, max_index_gb=cfg.max_index_gb)
        res = retrieve(qf, s, cfg.max_steps, cfg.sort_by_index, index=index)
        rows.append({"id": s.id, "retrieved": res.ids, "qvalues": res.qvalues,
                     **support_fact_metrics(res.ids, s.sf_idx)})
    write_jsonl(cfg.output, rows)
    console().print(f"wrote {len(rows)} results to {cfg.output}")


@config_command(app, "eval", EvalConfig)
def eval_cmd(cfg: EvalConfig) -> None:
    """Support-fact recall/EM (+ reader accuracy) per dataset/length; metrics.json and accuracy_vs_length.png."""
    from rlcore.io import write_json

    from .data import get_loader
    from .evaluate import evaluate_by_length, plot_accuracy_vs_length

    files = [f.strip() for f in cfg.data.split(",") if f.strip()]
    datasets = {f: get_loader(cfg.data_format)(f) for f in files}
    qf = _load_model(cfg)
    generator = None
    if cfg.reader:
        from rlcore.builtins import load_model_and_tokenizer
        from rlcore.rollout import HFGenerator

        model, tok = load_model_and_tokenizer(cfg.reader, None if cfg.device == "auto" else cfg.device)
        generator = HFGenerator(model, tok)
    results = evaluate_by_length(qf, datasets, cfg.max_steps, cfg.sort_by_index, cfg.cache_dir, cfg.backend,
                                 generator, cfg.max_new_tokens, cfg.qvalue_threshold)
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", results)
    plot_accuracy_vs_length(results, out / "accuracy_vs_length.png")
    print(json.dumps(results))


def main() -> None:
    """Console-script entry point."""
    app()
