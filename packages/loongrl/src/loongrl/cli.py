"""``loongrl`` command line: synth, synth-mix, filter, train, eval, niah (flags = config fields; ``--config`` YAML/TOML)."""

from __future__ import annotations

import json

import typer
from rlcore.cli import config_command, config_to_dict, console, progress

from .config import EvalConfig, FilterConfig, NiahConfig, SynthConfig, SynthMixConfig, TrainConfig

app = typer.Typer(help="LoongRL: KeyChain long-context data synthesis and RL for long-context reasoning.",
                  no_args_is_help=True, add_completion=False)


def _need(cfg: object, *names: str) -> None:
    """Required flags are set, and a model reference is checked before anything heavy loads."""
    for n in names:
        if not getattr(cfg, n):
            raise ValueError(f"--{n.replace('_', '-')} is required")
    if "model" in names:
        from rlcore.cli import check_model_ref

        check_model_ref(cfg.model)


@config_command(app, "synth", SynthConfig)
def synth(cfg: SynthConfig) -> None:
    """Fill seed QA contexts to --max-seq-length tokens and insert KeyChain chains; writes JSONL."""
    from rlcore.builtins import resolve
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


@config_command(app, "synth-mix", SynthMixConfig)
def synth_mix(cfg: SynthMixConfig) -> None:
    """Write the plain multi-hop, needle and math files of the RL data mix (each row tagged with data_source)."""
    from pathlib import Path

    from rlcore.builtins import resolve
    from rlcore.io import write_jsonl
    from transformers import AutoTokenizer

    from .data import load_qa
    from .data_mix import load_math, math_records, mix_file_names, multihop_records, needle_records

    _need(cfg, "input", "tokenizer")
    items = load_qa(cfg.input, cfg.format)
    math = load_math(cfg.math_input, cfg.num_math) if cfg.num_math else []
    tok = AutoTokenizer.from_pretrained(resolve(cfg.tokenizer))
    names = mix_file_names(cfg.max_seq_length)
    out = Path(cfg.output_dir)
    counts = {}
    with progress() as bar:
        def tick(name, total, it):
            task = bar.add_task(name, total=total)
            for rec in it:
                bar.advance(task)
                yield rec

        n_mh = min(cfg.num_multihop, len(items))
        counts["multihop"] = write_jsonl(out / names["multihop"], tick("multihop", n_mh, multihop_records(
            items, tok, cfg.max_seq_length, n_mh, cfg.seed, reserve_tokens=cfg.reserve_tokens, doc_step=cfg.doc_step)))
        counts["needle"] = write_jsonl(out / names["needle"], tick("needle", cfg.num_needle, needle_records(
            items, tok, cfg.max_seq_length - cfg.reserve_tokens, cfg.num_needle, cfg.seed, cfg.needle_digits)))
        counts["math"] = write_jsonl(out / names["math"], tick("math", len(math), math_records(math)))
    print(json.dumps({"files": {k: str(out / names[k]) for k in names}, "rows": counts}))


@config_command(app, "filter", FilterConfig)
def filter_cmd(cfg: FilterConfig) -> None:
    """Keep items the model answers in some but not all of --num-samples tries (0 < passes < k).

    Streams per-item pass counts to <output>.passes.jsonl (a rerun skips the items already there).
    """
    from rlcore.io import ResumableJsonlWriter, iter_jsonl, write_json

    from .data import load_qa, save_qa
    from .difficulty_filter import count_passes, filter_prompt, select_by_passes
    from .generation import check_backend, load_policy, make_chat_sampler, row_seed

    _need(cfg, "input", "output", "model")
    check_backend(cfg.backend)
    items = load_qa(cfg.input, cfg.format)
    items = items if cfg.limit < 0 else items[: cfg.limit]
    model, tok = load_policy(cfg.model, cfg.device)
    sampler = make_chat_sampler(cfg, model, tok, top_p=1.0)
    passes_path = cfg.output + ".passes.jsonl"
    with ResumableJsonlWriter(passes_path) as w, progress() as bar:
        todo = [it for it in items if it.id not in w]
        task = bar.add_task("filter", total=len(items), completed=len(items) - len(todo))
        for b in range(0, len(todo), cfg.batch_size):
            chunk = todo[b: b + cfg.batch_size]
            seeds = [row_seed(cfg.seed, it.id) for it in chunk]
            for it, rs in zip(chunk, sampler.sample([filter_prompt(it) for it in chunk], cfg.num_samples, seeds=seeds)):
                w.write({"id": it.id, "passes": count_passes(it, rs, cfg.cem_match, cfg.answer_occurrence)})
                bar.advance(task)
    passes = {r["id"]: r["passes"] for r in iter_jsonl(passes_path)}
    kept, stats = select_by_passes(items, [passes[it.id] for it in items], cfg.num_samples)
    save_qa(cfg.output, kept)
    stats["notes"] = sampler.notes
    write_json(cfg.output + ".stats.json", stats)
    print(json.dumps(stats))


@config_command(app, "train", TrainConfig)
def train_cmd(cfg: TrainConfig) -> None:
    """GRPO with the warm-up / stage I (KeyChain) / stage II (hard mining) curriculum."""
    from rlcore.training import main_print

    from .trainer import train

    _need(cfg, "model")
    log = train(cfg)
    summary = [{k: v for k, v in s.items() if k != "log_history"} for s in log["stages"]]
    main_print(json.dumps({"final_model": log["final_model"], "world_size": log.get("world_size", 1),
                           "stages": summary}))


def _eval_rows(cfg: EvalConfig) -> list[dict]:
    """Rows ``{"id", "prompt", "context", "problem", "answers"}`` of the eval input."""
    from pathlib import Path

    from rlcore.builtins import resolve
    from rlcore.io import read_jsonl

    from .context_filling import render_context
    from .data import load_qa
    from .memory_agent import keychain_problem
    from .trainer import keychain_rows, multihop_rows

    sys_prompt = cfg.system_prompt or None
    path = Path(resolve(cfg.input))
    records = read_jsonl(path) if path.is_file() else []
    if cfg.task == "longbench" and not (records and "context" in records[0]):
        items = load_qa(cfg.input, cfg.format)  # a seed QA file: its own documents are the context
        records = [{"id": it.id, "context": render_context(it.documents), "input": it.question,
                    "answers": list(it.answers)} for it in items]
    if not records:
        raise ValueError(f"{cfg.input}: no records")
    records = records if cfg.limit < 0 else records[: cfg.limit]
    if cfg.task == "keychain":
        rows = keychain_rows(records, cfg.prompt_variant, sys_prompt, cfg.input)
        for r, rec in zip(rows, records):
            r["context"], r["head"] = rec["distractor_context"], rec["chain_head_with_question"]
            r["problem"] = keychain_problem(rec["chain_head_with_question"])
            r["problem_short"] = keychain_problem(rec["chain_head_with_question"], full=False)
    else:
        rows = multihop_rows(records, sys_prompt, cfg.input)
        for r, rec in zip(rows, records):
            r["context"], r["problem"] = rec["context"], f"Question: {rec['input']}"
    for n, (r, rec) in enumerate(zip(rows, records)):
        r["id"] = str(rec.get("id", rec.get("_id", n)))
    return rows


def make_agent(cfg, sampler, window: int) -> object:
    """The memory agent of an eval/niah config (memory capped at a quarter of the window)."""
    from .memory_agent import MemoryAgent

    mem = cfg.memory_tokens
    if mem > window // 4:
        sampler.notes.append(f"memory_tokens {mem} capped at {window // 4} (a quarter of the {window}-token window)")
        mem = window // 4
    return MemoryAgent(sampler, window, memory_tokens=mem, answer_tokens=min(cfg.max_new_tokens, window // 2),
                       passes=cfg.memory_passes, system=cfg.system_prompt or None, fit_memory=True,
                       notes=sampler.notes)


def _load_for_eval(cfg):
    from .generation import check_backend, load_policy, make_chat_sampler, model_window

    check_backend(cfg.backend)
    model, tok = load_policy(cfg.model, cfg.device, cfg.rope_scaling)
    sampler = make_chat_sampler(cfg, model, tok)
    window = cfg.window or model_window(model)
    if cfg.window:
        sampler.window = cfg.window
    return sampler, window


@config_command(app, "eval", EvalConfig)
def eval_cmd(cfg: EvalConfig) -> None:
    """Sub-EM, F1 and EM on LongBench-style QA or KeyChain records, single pass or memory agent.

    --task longbench|keychain; --mode single (middle-truncated to the window) or memory-agent (segments + a
    bounded memory); predictions stream to --output (a rerun skips done ids).
    """
    from rlcore.io import ResumableJsonlWriter, iter_jsonl, write_json

    from .evaluation import evaluate_memory_agent, evaluate_rows, summarize
    from .generation import row_seed

    _need(cfg, "model", "input")
    rows = _eval_rows(cfg)
    sampler, window = _load_for_eval(cfg)
    if cfg.mode == "memory-agent" and window is None:
        raise ValueError("--mode memory-agent needs --window (the model's window is unknown)")
    agent = make_agent(cfg, sampler, window) if cfg.mode == "memory-agent" else None
    items = []
    writer = ResumableJsonlWriter(cfg.output) if cfg.output else None
    todo = [r for r in rows if writer is None or r["id"] not in writer]
    with progress() as bar:
        task = bar.add_task(f"eval ({cfg.mode})", total=len(rows), completed=len(rows) - len(todo))
        for b in range(0, len(todo), cfg.batch_size):
            chunk = todo[b: b + cfg.batch_size]
            seeds = [row_seed(cfg.seed, r["id"]) for r in chunk]
            res = evaluate_memory_agent(chunk, agent) if agent else evaluate_rows(chunk, sampler, seeds=seeds)
            for r, item in zip(chunk, res["items"]):
                rec = {"id": r["id"], **item}
                items.append(rec)
                if writer is not None:
                    writer.write(rec)
                bar.advance(task)
    if writer is not None:
        writer.close()
        items = list(iter_jsonl(cfg.output))
    metrics = {"task": cfg.task, "mode": cfg.mode, **summarize(items), "truncated_prompts": sampler.truncated,
               "notes": sampler.notes}
    if cfg.output:
        write_json(cfg.output + ".metrics.json", {"config": config_to_dict(cfg), **metrics})
    print(json.dumps(metrics))


@config_command(app, "niah", NiahConfig)
def niah_cmd(cfg: NiahConfig) -> None:
    """Needle-in-a-haystack exact-match accuracy over --lengths x --depths (exact token lengths).

    Saves a heatmap PNG and a JSON grid; --mode memory-agent reads haystacks longer than the window in
    segments.
    """
    _niah_impl(cfg)


def _niah_impl(cfg: NiahConfig) -> None:
    from pathlib import Path

    from rlcore.io import write_json

    from .data import DocPool, load_qa
    from .evaluation import evaluate_memory_agent, evaluate_rows, niah_examples, niah_grid, save_heatmap
    from .prompts import to_messages

    _need(cfg, "model", "input", "output")
    docs = DocPool(load_qa(cfg.input, cfg.format)).docs
    sampler, window = _load_for_eval(cfg)
    agent = make_agent(cfg, sampler, window) if cfg.mode == "memory-agent" else None
    exs = niah_examples(docs, sampler.tokenizer, cfg.lengths, cfg.depths, cfg.trials, cfg.seed, cfg.needle_digits)
    items: list[dict] = []
    with progress() as bar:
        task = bar.add_task(f"niah ({cfg.mode})", total=len(exs))
        for b in range(0, len(exs), cfg.batch_size):
            chunk = [e for _, _, e in exs[b: b + cfg.batch_size]]
            if agent is not None:
                res = evaluate_memory_agent([{"context": e["context"], "problem": e["question"],
                                              "answers": e["answers"]} for e in chunk], agent, metric="em")
            else:
                res = evaluate_rows([{"prompt": to_messages(e["prompt"], cfg.system_prompt or None),
                                      "answers": e["answers"]} for e in chunk], sampler, metric="em")
            items += res["items"]
            bar.advance(task, len(chunk))
    res = niah_grid([(i, j) for i, j, _ in exs], items, cfg.lengths, cfg.depths, cfg.trials)
    res["token_lengths"] = [e["length"] for _, _, e in exs]
    res.update(mode=cfg.mode, window=window, truncated_prompts=sampler.truncated, notes=sampler.notes)
    save_heatmap(res, cfg.output, title=f"Needle in a haystack, {cfg.mode} (exact match %)")
    write_json(Path(cfg.output).with_suffix(".json"), res)
    print(json.dumps({"mean": res["mean"], "png": cfg.output, "mode": cfg.mode, "notes": sampler.notes}))


def expand_list_flags(argv: list[str]) -> list[str]:
    """Expand ``--lengths 4096 8192`` to ``--lengths 4096 --lengths 8192`` (typer takes one value per flag).

    Applies to the list-valued flags of the command being run.

    Example:
        >>> expand_list_flags(["niah", "--lengths", "1", "2", "--trials", "1"])
        ['niah', '--lengths', '1', '--lengths', '2', '--trials', '1']
    """
    import dataclasses
    import typing

    cls = next((c for name, c in COMMANDS.items() if name in argv[:1]), None)
    if cls is None:
        return list(argv)
    hints = typing.get_type_hints(cls)
    flags = {"--" + f.name.replace("_", "-") for f in dataclasses.fields(cls)
             if typing.get_origin(hints[f.name]) is list}
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        out.append(a)
        i += 1
        if a in flags:
            first = True
            while i < len(argv) and not argv[i].startswith("--"):
                if not first:
                    out.append(a)
                out.append(argv[i])
                first = False
                i += 1
    return out


COMMANDS = {"synth": SynthConfig, "synth-mix": SynthMixConfig, "filter": FilterConfig, "train": TrainConfig,
            "eval": EvalConfig, "niah": NiahConfig}


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``loongrl``, ``python -m loongrl``, ``python -m loongrl.cli``)."""
    import sys

    app(args=expand_list_flags(sys.argv[1:] if argv is None else list(argv)), prog_name="loongrl")


if __name__ == "__main__":
    main()
