"""``power-sampling`` command line: ``generate`` (sample prompts from a JSONL file) and ``eval`` (Table 1 style).

Heavy imports (torch, transformers) happen inside the commands so ``--help`` is instant.
"""

from __future__ import annotations

from typing import Any

import typer
from rlcore.cli import config_command, config_to_dict, console

from .config import EvalConfig, GenerateConfig

app = typer.Typer(help="Power sampling (Karan & Du, ICLR 2026): MCMC sampling from p^alpha with a base LM.",
                  no_args_is_help=True, add_completion=False)


def _load(cfg: Any):
    from rlcore.builtins import load_model_and_tokenizer

    return load_model_and_tokenizer(cfg.model, device=None if cfg.device == "auto" else cfg.device,
                                    dtype=cfg.dtype)


def _sampler(model, tok, cfg, overrides: dict[str, Any]):
    from .power_sampler import PowerSampler

    kw = {**cfg.sampler_kwargs(), **overrides}
    return PowerSampler(model, tok, **kw)


@config_command(app, "generate", GenerateConfig)
def generate(cfg: GenerateConfig) -> None:
    """Sample num_chains completions per prompt with power sampling; write one JSONL row per sample."""
    from rlcore.cli import progress
    from rlcore.io import read_jsonl, write_jsonl

    records = read_jsonl(cfg.prompts_file, required=(cfg.prompt_field,))
    model, tok = _load(cfg)
    sampler = _sampler(model, tok, cfg, {})
    prompts = [str(r[cfg.prompt_field]) for r in records]
    if cfg.chat_template:
        prompts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    rows = []
    with progress() as bar:
        task = bar.add_task("prompts", total=len(prompts))
        chains = bar.add_task("chains in batch", total=1)
        cb = lambda d, n: bar.update(chains, completed=d, total=n)  # noqa: E731
        for start in range(0, len(prompts), cfg.batch_size):
            batch = prompts[start:start + cfg.batch_size]
            for s in sampler.sample(prompts=batch, num_chains=cfg.num_chains, callback=cb):
                rows.append({"prompt_index": start + s.prompt_index, "chain": s.chain_index, "text": s.text,
                             "token_ids": s.token_ids, "logprob": s.logprob, "acceptance_rate": s.acceptance_rate,
                             "tokens_generated": s.tokens_generated, "finish_reason": s.finish_reason})
            bar.update(task, completed=min(start + cfg.batch_size, len(prompts)))
    write_jsonl(cfg.output, rows)
    console().print(f"wrote {len(rows)} samples to {cfg.output}")


@config_command(app, "eval", EvalConfig)
def evaluate(cfg: EvalConfig) -> None:
    """Evaluate methods (power, low_temp, base) on a task; results JSONL + <output>.summary.json + a table."""
    from rich.table import Table
    from rlcore.cli import progress
    from rlcore.io import write_json, write_jsonl

    from .evaluation import get_method, get_task, load_problems, resolve_prompt_style, run_eval, summarize

    get_task(cfg.task)
    for m in cfg.methods:
        get_method(m)
    problems = load_problems(cfg.task, cfg.data, cfg.split, cfg.limit, cfg.seed)
    model, tok = _load(cfg)
    with progress() as bar:
        bars = {m: bar.add_task(f"{cfg.task} / {m}: problems", total=len(problems)) for m in cfg.methods}
        chains = bar.add_task("chains in batch", total=1)
        rows = run_eval(lambda o: _sampler(model, tok, cfg, o), cfg.task, problems, cfg.methods, tok,
                        cfg.num_samples, cfg.batch_size, cfg.chat_template, cfg.timeout,
                        prompt_style=resolve_prompt_style(cfg.prompt_style, cfg.model),
                        on_batch=lambda m, n: bar.update(bars[m], completed=n),
                        on_chains=lambda m, d, n: bar.update(chains, completed=d, total=n))
    summary = summarize(rows)
    write_jsonl(cfg.output, rows)
    write_json(f"{cfg.output}.summary.json", {"config": config_to_dict(cfg), "summary": summary})
    table = Table(title=f"{cfg.task}: {len(problems)} problems x {cfg.num_samples} samples")
    cols = [c for c in next(iter(summary.values())) if c not in ("problems", "samples_per_problem")]
    table.add_column("method")
    for c in cols:
        table.add_column(c, justify="right")
    for m, s in summary.items():
        table.add_row(m, *(f"{s[c]:.3f}" if isinstance(s[c], float) else str(s[c]) for c in cols))
    console().print(table)
    console().print(f"wrote {len(rows)} rows to {cfg.output} and the summary to {cfg.output}.summary.json")


def main() -> None:
    """Console-script entry point."""
    app()
