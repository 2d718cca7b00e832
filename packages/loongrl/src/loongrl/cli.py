"""``loongrl`` command line: synth, filter, train, eval, niah (flags = config fields; ``--config`` YAML/TOML)."""

from __future__ import annotations

import json

import typer
from rlcore.cli import config_command, config_to_dict, console

from .config import EvalConfig, FilterConfig, NiahConfig, SynthConfig, TrainConfig

app = typer.Typer(help="LoongRL: KeyChain long-context data synthesis and RL for long-context reasoning.",
                  no_args_is_help=True, add_completion=False)


def _need(cfg: object, *names: str) -> None:
    for n in names:
        if not getattr(cfg, n):
            raise ValueError(f"--{n.replace('_', '-')} is required")


@config_command(app, "synth", SynthConfig)
def synth(cfg: SynthConfig) -> None:
    """Fill seed QA contexts to --max-seq-length tokens and insert KeyChain chains; writes JSONL."""
    from rlcore.builtins import resolve
    from rlcore.cli import progress
    from rlcore.io import write_jsonl
    from transformers import AutoTokenizer

    from .data import load_qa
    from .synthesis import synthesize

    _need(cfg, "input", "output", "tokenizer")
    items = load_qa(cfg.input, cfg.format)
    tok = AutoTokenizer.from_pretrained(resolve(cfg.tokenizer))
    n = len(items) if cfg.num_samples < 0 else min(cfg.num_samples, len(items))
    kw = dict(seed=cfg.seed, reserve_tokens=cfg.reserve_tokens, doc_step=cfg.doc_step, core_sigma=cfg.core_sigma,
              passage_template=cfg.passage_template, num_uuids=cfg.num_uuids, chains_per_1k=cfg.chains_per_1k,
              distractors_per_1k=cfg.distractors_per_1k, id_format=cfg.id_format)
    with progress() as bar:
        task = bar.add_task("synth", total=n)

        def gen():
            for rec in synthesize(items, tok, cfg.max_seq_length, n, **kw):
                bar.advance(task)
                yield rec

        written = write_jsonl(cfg.output, gen())
    console().print(f"wrote {written} KeyChain records to {cfg.output}")


@config_command(app, "filter", FilterConfig)
def filter_cmd(cfg: FilterConfig) -> None:
    """Keep items the model answers in some but not all of --num-samples tries (0 < passes < k)."""
    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.io import write_json

    from .data import load_qa, save_qa
    from .difficulty_filter import filter_by_difficulty
    from .sampling import HFSampler

    _need(cfg, "input", "output", "model")
    items = load_qa(cfg.input, cfg.format)
    items = items if cfg.limit < 0 else items[: cfg.limit]
    model, tok = load_model_and_tokenizer(cfg.model, device=None if cfg.device == "auto" else cfg.device)
    sampler = HFSampler(model, tok, cfg.temperature, 1.0, cfg.max_new_tokens, cfg.batch_size, cfg.seed)
    kept, stats = filter_by_difficulty(items, sampler, cfg.num_samples)
    save_qa(cfg.output, kept)
    write_json(cfg.output + ".stats.json", stats)
    print(json.dumps(stats))


@config_command(app, "train", TrainConfig)
def train_cmd(cfg: TrainConfig) -> None:
    """GRPO with the warm-up / stage I (KeyChain) / stage II (hard mining) curriculum."""
    from .trainer import train

    log = train(cfg)
    summary = [{k: v for k, v in s.items() if k != "log_history"} for s in log["stages"]]
    print(json.dumps({"final_model": log["final_model"], "stages": summary}))


@config_command(app, "eval", EvalConfig)
def eval_cmd(cfg: EvalConfig) -> None:
    """Sub-EM and F1 on LongBench-style QA JSONL (--task longbench) or KeyChain records (--task keychain)."""
    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.io import read_jsonl, write_json

    from .evaluation import evaluate_rows
    from .sampling import HFSampler
    from .trainer import keychain_rows, multihop_rows

    _need(cfg, "model", "data")
    records = read_jsonl(cfg.data)
    records = records if cfg.limit < 0 else records[: cfg.limit]
    sys = cfg.system_prompt or None
    rows = (keychain_rows(records, cfg.prompt_variant, sys, cfg.data) if cfg.task == "keychain"
            else multihop_rows(records, sys, cfg.data))
    model, tok = load_model_and_tokenizer(cfg.model, device=None if cfg.device == "auto" else cfg.device)
    res = evaluate_rows(rows, HFSampler(model, tok, cfg.temperature, cfg.top_p, cfg.max_new_tokens,
                                        cfg.batch_size, cfg.seed))
    if cfg.output:
        write_json(cfg.output, {"config": config_to_dict(cfg), **res})
    print(json.dumps({"task": cfg.task, "n": res["n"], "sub_em": res["sub_em"], "f1": res["f1"]}))


@config_command(app, "niah", NiahConfig)
def niah_cmd(cfg: NiahConfig) -> None:
    """Needle-in-a-haystack accuracy over --lengths x --depths; saves a heatmap PNG and a JSON grid."""
    from pathlib import Path

    from rlcore.builtins import load_model_and_tokenizer
    from rlcore.io import write_json

    from .data import DocPool, load_qa
    from .evaluation import run_niah, save_heatmap
    from .sampling import HFSampler

    _need(cfg, "model", "haystack", "output")
    docs = DocPool(load_qa(cfg.haystack, cfg.format)).docs
    model, tok = load_model_and_tokenizer(cfg.model, device=None if cfg.device == "auto" else cfg.device)
    sampler = HFSampler(model, tok, cfg.temperature, cfg.top_p, cfg.max_new_tokens, 4, cfg.seed)
    res = run_niah(docs, tok, sampler, cfg.lengths, cfg.depths, cfg.trials, cfg.system_prompt or None, cfg.seed)
    save_heatmap(res, cfg.output)
    write_json(Path(cfg.output).with_suffix(".json"), res)
    print(json.dumps({"mean": res["mean"], "png": cfg.output}))


def main() -> None:
    """Console-script entry point."""
    app()
