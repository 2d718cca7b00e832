"""Sampling answers with the paper's prompt and stop strings (``longwriter-zero generate``).

Every sample goes through :mod:`rlcore.rollout` (``--backend hf`` or ``vllm``). A file of requests is answered in
batches and streamed: each generation is appended to the output as soon as its batch is done, and a rerun skips the
records already there (a killed 10K-request job loses at most one batch). Each request is sampled with its own seed
(``seed + its line index``), so a resumed run writes exactly what an uninterrupted one would.
"""

from __future__ import annotations

from typing import Any

from .prompts import STOP_STRINGS, build_prompt, extract_answer

__all__ = ["make_writer_generator", "answer_one", "generate_file"]


def make_writer_generator(cfg: Any):
    """The policy's rlcore generator and tokenizer for ``cfg`` (model, device, backend options)."""
    from rlcore.device import seed_everything
    from rlcore.rollout import make_generator

    seed_everything(cfg.seed)
    if cfg.backend == "vllm":
        from rlcore.builtins import resolve

        gen = make_generator(resolve(cfg.model), backend="vllm", tensor_parallel_size=cfg.tensor_parallel_size,
                             gpu_memory_utilization=cfg.gpu_memory_utilization, seed=cfg.seed)
        return gen, gen.tokenizer
    from rlcore.builtins import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(cfg.model, device=None if cfg.device == "auto" else cfg.device)
    return make_generator(model, tok, batch_size=cfg.batch_size, seed=cfg.seed), tok


def _params(cfg: Any):
    from rlcore.rollout import SamplingParams

    return SamplingParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                          stop=list(STOP_STRINGS))


def answer_one(cfg: Any) -> str:
    """Answer ``cfg.question``; returns the completion text (the CLI prints it)."""
    gen, _ = make_writer_generator(cfg)
    out = gen.generate(prompts=[build_prompt(cfg.question, cfg.think, cfg.template or None)], params=_params(cfg),
                       seeds=[cfg.seed])
    return out[0][0].text


def _load_requests(path: str) -> list[dict[str, Any]]:
    from rlcore.io import DataError, read_jsonl

    records = read_jsonl(path)
    seen: set[str] = set()
    for i, rec in enumerate(records, 1):
        if not isinstance(rec.get("question"), str) or not rec["question"].strip():
            raise DataError(f"{path}: record {i}: field 'question' must be a non-empty string")
        rec.setdefault("id", i - 1)  # resume key: the record's own id, else its index
        key = str(rec["id"])
        if key in seen:
            raise DataError(f"{path}: record {i}: duplicate id {rec['id']!r} (ids key the resumable output)")
        seen.add(key)
    return records


def generate_file(cfg: Any) -> dict[str, int]:
    """Answer every ``question`` of ``cfg.input`` into ``cfg.output`` (input fields + completion, answer).

    Returns ``{"written": n, "skipped": m}`` (``skipped``: already in the output from an earlier run).
    """
    from rlcore.cli import progress
    from rlcore.io import ResumableJsonlWriter

    records = _load_requests(cfg.input)
    with ResumableJsonlWriter(cfg.output, key="id") as out:
        todo = [(i, r) for i, r in enumerate(records) if r["id"] not in out]
        if not todo:
            return {"written": 0, "skipped": len(records)}
        gen, _ = make_writer_generator(cfg)
        params = _params(cfg)
        with progress() as bar:
            task = bar.add_task("generate", total=len(todo))
            for s in range(0, len(todo), cfg.batch_size):
                chunk = todo[s : s + cfg.batch_size]
                prompts = [build_prompt(r["question"], cfg.think, cfg.template or None) for _, r in chunk]
                outs = gen.generate(prompts=prompts, params=params, seeds=[cfg.seed + i for i, _ in chunk])
                for (_, rec), comps in zip(chunk, outs, strict=True):
                    text = comps[0].text
                    out.write({**rec, "completion": text, "answer": extract_answer(text)})
                bar.advance(task, len(chunk))
        return {"written": out.n_written, "skipped": len(records) - len(todo)}
