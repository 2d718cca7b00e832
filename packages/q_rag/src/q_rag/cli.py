"""``q-rag``: data / train / index / retrieve / eval. Heavy imports live inside the commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rlcore.cli import config_command, config_to_dict, console

from .config import DataConfig, DocConfig, EvalConfig, IndexConfig, RetrieveConfig, TrainConfig

app = typer.Typer(help="Q-RAG: multi-step retrieval by value-based embedder training.", no_args_is_help=True)


@config_command(app, "data", DataConfig)
def data_cmd(cfg: DataConfig) -> None:
    """Build BabiLong-style / NIAH samples as unified JSONL."""
    import random

    from .babilong import build_babilong, build_synthetic_dataset, filler_sentences, read_babi, read_filler
    from .data import write_samples

    if cfg.task == "babi":
        rng = random.Random(cfg.seed)
        stories = read_babi(cfg.babi_input)
        filler = read_filler(cfg.filler_input, rng) if cfg.filler_input else filler_sentences(rng)
        samples = [build_babilong(stories[i % len(stories)], cfg.tokens, filler, rng, f"babi-{i}") for i in range(cfg.n)]
    else:
        samples = build_synthetic_dataset(cfg.task, cfg.n, cfg.tokens, cfg.seed, cfg.n_facts, cfg.filler_input or None)
    write_samples(cfg.output, samples)
    console().print(f"wrote {len(samples)} samples to {cfg.output}")


@config_command(app, "train", TrainConfig)
def train_cmd(cfg: TrainConfig) -> None:
    """PQN soft Q(lambda) training: checkpoint-N/, best/, metrics.jsonl, summary.json in output_dir.

    Multi-process: accelerate launch --num_processes N -m q_rag train ... (gradients averaged over ranks).
    """
    from rlcore.io import write_json
    from rlcore.training import is_main_process, preflight_launch

    from .train import train_from_config

    preflight_launch()
    con = console()
    main = is_main_process()
    if main:
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        write_json(Path(cfg.output_dir) / "config.json", config_to_dict(cfg))

    def log(row: dict) -> None:
        if row["step"] % max(1, cfg.eval_interval // 5) == 0 or "eval_return" in row:
            con.print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})

    best = train_from_config(cfg, log)
    if main:
        print(json.dumps({k: (None if isinstance(v, float) and v != v else v) for k, v in best.items()}))


def _load_model(cfg: DocConfig):
    from .config import model_settings
    from .train import load_q_function

    return load_q_function(cfg.model, cfg.device, base_model=cfg.base_model or None, **model_settings(cfg))


def _check_unique_ids(path: str, samples) -> None:
    seen: set[str] = set()
    for s in samples:
        if s.id in seen:
            raise ValueError(f"{path}: duplicate sample id {s.id!r} (ids key the resumable output)")
        seen.add(s.id)


def _encode_kw(cfg: DocConfig) -> dict:
    return dict(batch_size=cfg.batch_size, max_chunks=cfg.max_chunks, workers=cfg.encode_workers,
                cache_max_gb=cfg.cache_max_gb or None)


@config_command(app, "index", IndexConfig)
def index_cmd(cfg: IndexConfig) -> None:
    """Compute and cache the chunk embeddings of every document."""
    from .data import get_loader
    from .index import encode_chunks

    samples = get_loader(cfg.data_format)(cfg.input)
    qf = _load_model(cfg)
    for s in samples:
        emb = encode_chunks(qf, s.chunks, cfg.output_dir, show_progress=True, **_encode_kw(cfg))
        print(json.dumps({"id": s.id, "chunks": len(s.chunks), "dim": int(emb.shape[1])}))


@config_command(app, "retrieve", RetrieveConfig)
def retrieve_cmd(cfg: RetrieveConfig) -> None:
    """Greedy multi-step retrieval; one JSON line per question (ids, q-values, support-fact metrics), streamed.

    Each question's line is written when it is done; a rerun skips the ids already in --output.
    """
    from rlcore.cli import progress
    from rlcore.io import ResumableJsonlWriter

    from .data import get_loader
    from .index import ChunkIndex, encode_chunks
    from .retriever import retrieve, support_fact_metrics

    samples = get_loader(cfg.data_format)(cfg.input)
    _check_unique_ids(cfg.input, samples)
    qf = _load_model(cfg)
    written = 0
    with ResumableJsonlWriter(cfg.output) as out, progress() as bar:
        task = bar.add_task("retrieving", total=len(samples))
        for s in samples:
            if s.id not in out:
                emb = encode_chunks(qf, s.chunks, cfg.cache_dir, **_encode_kw(cfg))
                index = ChunkIndex(emb, qf.position, qf.rope_theta, cfg.search_backend,
                                   max_index_gb=cfg.max_index_gb, step_size=qf.step_size)
                res = retrieve(qf, s, cfg.max_steps, cfg.sort_by_index, index=index)
                out.write({"id": s.id, "retrieved": res.ids, "qvalues": res.qvalues,
                           **support_fact_metrics(res.ids, s.sf_idx)})
                written += 1
            bar.advance(task)
    console().print(f"wrote {written} results to {cfg.output} ({len(samples) - written} already there)")


@config_command(app, "eval", EvalConfig)
def eval_cmd(cfg: EvalConfig) -> None:
    """Support-fact recall/EM (+ reader EM/F1) per dataset/length; metrics.json and accuracy_vs_length.png."""
    from rlcore.io import write_json

    from .data import get_loader
    from .evaluate import evaluate_by_length, plot_accuracy_vs_length

    files = [f.strip() for f in cfg.input.split(",") if f.strip()]
    datasets = {f: get_loader(cfg.data_format)(f) for f in files}
    for f, samples in datasets.items():
        _check_unique_ids(f, samples)
    generator = None
    if cfg.reader_model:  # first: a missing backend fails before any model is loaded
        from .reader import make_reader

        generator = make_reader(cfg)
    qf = _load_model(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = evaluate_by_length(qf, datasets, cfg.max_steps, cfg.sort_by_index, cfg.cache_dir, cfg.search_backend,
                                 generator, cfg.max_new_tokens, cfg.qvalue_threshold, cfg.reader_task,
                                 encode_kw=_encode_kw(cfg), records_path=out / "records.jsonl", show_progress=True)
    write_json(out / "metrics.json", results)
    plot_accuracy_vs_length(results, out / "accuracy_vs_length.png")
    print(json.dumps(results))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    app()
