"""``power-sampling`` command line: ``generate`` (sample prompts from a JSONL file) and ``eval`` (Table 1 style).

Heavy imports (torch, transformers, vLLM) happen inside the commands so ``--help`` is instant. Both verbs stream
their results (one JSONL record per sample, written as soon as its batch is done); a rerun skips the records
already in ``--output``, and because every chain is seeded by (seed, prompt, chain index) the resumed file equals
an uninterrupted run.
"""

from __future__ import annotations

from typing import Any

import typer
from rlcore.cli import config_command, config_to_dict, console

from .config import EvalConfig, GenerateConfig

app = typer.Typer(help="Power sampling (Karan & Du, ICLR 2026): MCMC sampling from p^alpha with a base LM.",
                  no_args_is_help=True, add_completion=False)


class _Backend:
    """The model / generator behind a run.

    ``--backend hf`` loads the HF model (MH runs on it with prefix KV reuse; the MCMC-free baselines go through
    rlcore's ``HFGenerator``); ``--backend vllm`` builds rlcore's ``VLLMGenerator`` (checked before anything heavy
    is loaded) and runs every method through it.
    """

    def __init__(self, cfg: Any):
        from rlcore.builtins import resolve

        self.cfg, self.model, self._generator = cfg, None, None
        if cfg.backend == "vllm":
            from rlcore.rollout import make_generator

            self._generator = make_generator(resolve(cfg.model), None, backend="vllm", seed=cfg.seed,
                                             tensor_parallel_size=cfg.tensor_parallel_size,
                                             gpu_memory_utilization=cfg.gpu_memory_utilization)
            self.tokenizer = self._generator.tokenizer
        else:
            from rlcore.builtins import load_model_and_tokenizer

            self.model, self.tokenizer = load_model_and_tokenizer(
                cfg.model, device=None if cfg.device == "auto" else cfg.device, dtype=cfg.dtype)

    @property
    def generator(self):
        if self._generator is None:
            from rlcore.rollout import make_generator

            self._generator = make_generator(self.model, self.tokenizer, backend="hf", seed=self.cfg.seed)
        return self._generator

    def fit_context(self, prompts: list[str]) -> None:
        """Shorten ``max_new_tokens`` (and ``block_size``) to the model's context when the defaults exceed it."""
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        if not isinstance(limit, int) or not prompts:
            return
        longest = max(len(self.tokenizer(p).input_ids) for p in prompts)
        if longest + self.cfg.max_new_tokens <= limit:
            return
        room = limit - longest
        if room < 1:
            raise ValueError(f"the longest prompt has {longest} tokens: no room left in the model's context of "
                             f"{limit} tokens")
        console().print(f"note: max_new_tokens {self.cfg.max_new_tokens} -> {room} to fit the model's context "
                        f"({limit} tokens, longest prompt {longest})")
        self.cfg.max_new_tokens, self.cfg.block_size = room, min(self.cfg.block_size, room)

    def sampler(self, overrides: dict[str, Any]):
        from .generator_backend import GeneratorPowerSampler
        from .power_sampler import PowerSampler, default_eos

        kw = {**self.cfg.sampler_kwargs(), **overrides}
        # generate: --method mh|smc; eval: the method registry's override ("smc"), else MH
        kw["method"] = overrides.get("method", self.cfg.method if isinstance(self.cfg, GenerateConfig) else "mh")
        if kw["method"] == "smc":
            if self.cfg.backend == "vllm":
                raise ValueError("method smc needs --backend hf (particles resample by reordering the KV cache, "
                                 "which the vllm generator does not expose)")
            return PowerSampler(self.model, self.tokenizer, **kw)
        if self.cfg.backend == "vllm" or kw["mcmc_steps"] == 0:
            if kw["mcmc_steps"] == 0:
                kw["block_size"] = kw["max_new_tokens"]  # no MH step: one generate call per chain
            for k in ("method", "num_particles", "ess_threshold", "bridge_tokens"):
                kw.pop(k)
            return GeneratorPowerSampler(self.generator, eos_token_id=default_eos(self.model, self.tokenizer), **kw)
        return PowerSampler(self.model, self.tokenizer, **kw)


def _chat(tok: Any, text: str) -> str:
    return tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)


@config_command(app, "generate", GenerateConfig)
def generate(cfg: GenerateConfig) -> None:
    """Sample num_chains completions per prompt with power sampling; stream one JSONL row per sample."""
    from rlcore.cli import progress
    from rlcore.io import DataError, ResumableJsonlWriter, read_jsonl

    records = read_jsonl(cfg.input, required=(cfg.prompt_field,))
    rids = [str(r.get(cfg.id_field, i)) for i, r in enumerate(records)]
    seen: dict[str, int] = {}
    for i, rid in enumerate(rids):
        if rid in seen:
            raise DataError(f"{cfg.input}: records {seen[rid]} and {i} share {cfg.id_field} {rid!r}")
        seen[rid] = i
    backend = _Backend(cfg)
    tok = backend.tokenizer
    prompts = [str(r[cfg.prompt_field]) for r in records]
    if cfg.chat_template:
        prompts = [_chat(tok, p) for p in prompts]
    backend.fit_context(prompts)
    sampler = backend.sampler({})
    n_new = 0
    with ResumableJsonlWriter(cfg.output) as out, progress() as bar:
        todo = [i for i in range(len(prompts)) if any(f"{rids[i]}:{c}" not in out.done for c in range(cfg.num_chains))]
        task = bar.add_task("prompts", total=len(prompts), completed=len(prompts) - len(todo))
        chains = bar.add_task("chains in batch", total=1)
        cb = lambda d, n: bar.update(chains, completed=d, total=n)  # noqa: E731
        for start in range(0, len(todo), cfg.batch_size):
            batch = todo[start:start + cfg.batch_size]
            for s in sampler.sample(prompts=[prompts[i] for i in batch], num_chains=cfg.num_chains, callback=cb):
                i = batch[s.prompt_index]
                key = f"{rids[i]}:{s.chain_index}"
                if key in out.done:
                    continue
                out.write({"id": key, "record_id": rids[i], "prompt_index": i, "chain": s.chain_index,
                           "text": s.text, "token_ids": s.token_ids, "logprob": s.logprob,
                           "acceptance_rate": s.acceptance_rate, "tokens_generated": s.tokens_generated,
                           "finish_reason": s.finish_reason}
                          | ({} if s.particle_weights is None else {"particle_weights": s.particle_weights,
                                                                    "resample_count": s.resample_count}))
                n_new += 1
            bar.update(task, advance=len(batch))
    console().print(f"wrote {n_new} samples to {cfg.output}"
                    + (f" ({len(records) * cfg.num_chains - n_new} were already there)" if n_new < len(records) * cfg.num_chains else ""))


@config_command(app, "eval", EvalConfig)
def evaluate(cfg: EvalConfig) -> None:
    """Evaluate methods (power, low_temp, base) on a task; stream results JSONL, then summary JSON + a table."""
    from rich.table import Table
    from rlcore.cli import progress
    from rlcore.io import ResumableJsonlWriter, read_jsonl, write_json

    from .evaluation import (
        build_prompt,
        get_method,
        get_task,
        load_problems,
        resolve_prompt_style,
        row_id,
        run_eval,
        summarize,
    )

    get_task(cfg.task)
    for m in cfg.methods:
        get_method(m)
    style = resolve_prompt_style(cfg.prompt_style, cfg.model)
    problems = load_problems(cfg.task, cfg.input, cfg.split, cfg.limit, cfg.seed)
    backend = _Backend(cfg)
    tok = backend.tokenizer
    backend.fit_context([build_prompt(cfg.task, r, tok, cfg.chat_template, style) for r in problems])
    with ResumableJsonlWriter(cfg.output) as out, progress() as bar:
        bars = {m: bar.add_task(f"{cfg.task} / {m}: problems", total=len(problems)) for m in cfg.methods}
        chains = bar.add_task("chains in batch", total=1)

        def write(rows):
            for r in rows:
                out.write(r)

        run_eval(backend.sampler, cfg.task, problems, cfg.methods, tok, cfg.num_samples, cfg.batch_size,
                 cfg.chat_template, cfg.timeout, prompt_style=style, done=set(out.done), on_rows=write,
                 on_batch=lambda m, n: bar.update(bars[m], completed=n),
                 on_chains=lambda m, d, n: bar.update(chains, completed=d, total=n))
    wanted = {row_id(m, i, j) for m in cfg.methods for i in range(len(problems)) for j in range(cfg.num_samples)}
    rows = [r for r in read_jsonl(cfg.output) if r.get("id") in wanted]
    summary = summarize(rows)
    write_json(f"{cfg.output}.summary.json", {"config": config_to_dict(cfg), "summary": summary})
    table = Table(title=f"{cfg.task}: {len(problems)} problems x {cfg.num_samples} samples")
    cols = [c for c in next(iter(summary.values())) if c not in ("problems", "samples_per_problem")]
    table.add_column("method")
    for c in cols:
        table.add_column(c, justify="right")
    for m, s in summary.items():
        table.add_row(m, *(f"{s[c]:.3f}" if isinstance(s[c], float) else str(s[c]) for c in cols))
    console().print(table)
    console().print(f"{len(rows)} rows in {cfg.output}, summary in {cfg.output}.summary.json")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    app()
