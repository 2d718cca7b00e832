"""Benchmarks as declared data (task registry) and the method comparison of Table 1: power vs low-temp vs base.

A task is a :class:`TaskSpec` record (prompt template, fields, grader, version) in a registry; a method is a set
of :class:`~power_sampling.PowerSampler` overrides in another. ``run_eval`` samples every problem with every
method (the paper runs both baselines in the same job), grades, and summarises accuracy and pass@k.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlcore.io import DataError, read_jsonl

from .grading import (
    GradeResult,
    compute_pass_at_k,
    extract_code,
    grade_choice,
    grade_math,
    grade_number,
    run_humaneval,
)

__all__ = ["TaskSpec", "register_task", "get_task", "register_method", "get_method", "load_problems",
           "build_prompt", "humaneval_phi_prompt", "resolve_prompt_style", "row_id", "run_eval", "summarize"]

PROMPT_STYLES = ("auto", "raw", "phi")

MATH_PROMPT = ("Can you solve the following math problem? {question} Please reason step by step, and put your final "
               "answer within \\boxed{{}}.")  # the reference never .format()s it, so the double braces stay
GPQA_PROMPT = ("Answer the following multiple choice question. The last line of your response should be of the "
               "following format: '\\boxed{$LETTER}' (without quotes) where LETTER is one of ABCD. Think step by step "
               "before answering.\n\n{question}\n\n{choices}")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """A benchmark: how to read a record, build its prompt, and grade a completion."""

    name: str
    template: str  # "{question}" (and "{choices}") are replaced literally, nothing else is interpreted
    question_fields: tuple[str, ...]  # first one present in the record is used
    answer_field: str
    grade: Callable[[str, dict[str, Any], float], GradeResult]  # (completion, record, timeout) -> result
    version: int = 1


_TASKS: dict[str, TaskSpec] = {}
_METHODS: dict[str, dict[str, Any]] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task; registering a different spec under a taken name is an error."""
    if spec.name in _TASKS and _TASKS[spec.name] != spec:
        raise ValueError(f"task {spec.name!r} is already registered")
    _TASKS[spec.name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    """The registered task ``name``; raises ValueError listing the available ones."""
    try:
        return _TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; available: {sorted(_TASKS)}") from None


def register_method(name: str, overrides: dict[str, Any]) -> None:
    """A decoding method = PowerSampler overrides applied on top of the sampler config."""
    if name in _METHODS and _METHODS[name] != overrides:
        raise ValueError(f"method {name!r} is already registered")
    _METHODS[name] = dict(overrides)


def get_method(name: str) -> dict[str, Any]:
    """The sampler overrides of method ``name``; raises ValueError listing the available ones."""
    try:
        return dict(_METHODS[name])
    except KeyError:
        raise ValueError(f"unknown method {name!r}; available: {sorted(_METHODS)}") from None


def _grade_humaneval(completion: str, rec: dict[str, Any], timeout: float) -> GradeResult:
    for key in ("test", "entry_point"):
        if key not in rec:
            raise DataError(f"HumanEval record {rec.get('task_id', '?')} lacks field {key!r}")
    return run_humaneval(extract_code(rec["prompt"], completion), rec["test"], rec["entry_point"], timeout)


register_task(TaskSpec("math500", MATH_PROMPT, ("problem", "question", "prompt"), "answer",
                       lambda c, r, _t: grade_math(c, str(r["answer"]))))
register_task(TaskSpec("humaneval", "{question}", ("prompt",), "entry_point", _grade_humaneval))
register_task(TaskSpec("gpqa", GPQA_PROMPT, ("question", "Question"), "answer",
                       lambda c, r, _t: grade_choice(c, str(r["answer"]))))
register_task(TaskSpec("arith", "{question}", ("prompt", "question"), "answer",
                       lambda c, r, _t: grade_number(c, str(r["answer"]))))

register_method("power", {})
register_method("smc", {"method": "smc"})  # Power-SMC: same target p^alpha, particles instead of MH
register_method("low_temp", {"mcmc_steps": 0})  # proposal alone: temperature 1/alpha
# "std" in the official code: generate(do_sample=True) with the model's defaults, i.e. temperature 1 and HF's
# top_k=50 (inherited from the sampler config: --top-k 0 turns it off for every method)
register_method("base", {"mcmc_steps": 0, "alpha": 1.0, "proposal_temperature": 1.0})


def _gpqa_record(rec: dict[str, Any], index: int, seed: int) -> dict[str, Any]:
    """HF GPQA rows (Correct Answer + Incorrect Answer 1-3) -> choices + letter, correct at a seeded random index."""
    if "choices" in rec and "answer" in rec:
        return rec
    keys = ["Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]
    missing = [k for k in keys if k not in rec]
    if missing:
        raise DataError(f"GPQA record {index} needs 'choices'+'answer' or the fields {keys}; missing {missing}")
    wrong = [rec[k] for k in keys[1:]]
    rng = random.Random(seed * 100003 + index)
    rng.shuffle(wrong)
    pos = rng.randrange(4)
    choices = wrong[:pos] + [rec["Correct Answer"]] + wrong[pos:]
    return {**rec, "choices": choices, "answer": "ABCD"[pos]}


def load_problems(task: str, data: str, split: str = "test", limit: int = 0, seed: int = 0) -> list[dict[str, Any]]:
    """Problems from a JSONL file, a JSON list, ``builtin:<name>/<file>`` or ``hf:<name>[:<config>]``.

    A JSON list is the reference's ``MATH500.json`` layout; ``hf:`` loads a hub dataset (needs network access).
    """
    spec = get_task(task)
    if data.startswith("builtin:"):
        from rlcore.builtins import resolve

        name, _, rest = data.partition("/")
        data = str(Path(resolve(name)) / rest)
    if data.startswith("hf:"):
        import datasets

        name, _, cfg = data[3:].partition(":")
        records = [dict(r) for r in datasets.load_dataset(name, cfg or None, split=split)]
    else:
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(f"problem file not found: {path}")
        if path.suffix == ".json":
            records = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(records, list):
                raise DataError(f"{path}: expected a JSON list of records")
        else:
            records = read_jsonl(path)
    if limit:
        records = records[:limit]
    out = []
    for i, rec in enumerate(records):
        if task == "gpqa":
            rec = _gpqa_record(rec, i, seed)
        if not any(f in rec for f in spec.question_fields):
            raise DataError(f"{data} record {i}: none of the fields {list(spec.question_fields)} is present")
        if spec.answer_field not in rec:
            raise DataError(f"{data} record {i}: missing field {spec.answer_field!r}")
        if task == "humaneval" and "test" not in rec:
            raise DataError(f"{data} record {i}: missing field 'test' (HumanEval unit tests)")
        out.append(rec)
    return out


def humaneval_phi_prompt(prompt: str, entry_point: str) -> str:
    """The official HumanEval rewrite for Phi models: an instruction naming the signature, then the docstring.

    (``tests/test_evaluation.py::test_humaneval_phi_prompt_rewrite`` shows a worked example.)
    """
    lines = prompt.splitlines()
    head = f"def {entry_point}("
    at = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith(head)), None)
    if at is None:
        return prompt
    sig = lines[at].strip()[len("def "):].rstrip(":").strip()
    body = "\n".join(lines[at + 1:])
    for q in ('"""', "'''"):
        start = body.find(q)
        if start >= 0:
            end = body.find(q, start + 3)
            doc = body[start + 3: end if end >= 0 else len(body)]
            break
    else:
        doc = ""
    doc = "\n".join(ln.strip() for ln in doc.strip().splitlines())
    return f"Write a Python function `{sig}` to solve the following problem:\n{doc}"


def resolve_prompt_style(style: str, model: str) -> str:
    """``auto`` -> ``phi`` when the model reference names a Phi model (as the official script does), else ``raw``."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"prompt_style must be one of {PROMPT_STYLES}, got {style!r}")
    if style == "auto":
        return "phi" if "phi" in model.lower() else "raw"
    return style


def build_prompt(task: str, rec: dict[str, Any], tokenizer: Any = None, chat_template: bool = False,
                 prompt_style: str = "raw") -> str:
    """The task's prompt text for one record (optionally wrapped in the tokenizer's chat template).

    ``prompt_style="phi"`` rewrites HumanEval prompts as the official code does for Phi (other tasks unchanged).
    """
    spec = get_task(task)
    question = next(str(rec[f]) for f in spec.question_fields if f in rec)
    if task == "humaneval" and prompt_style == "phi":
        question = humaneval_phi_prompt(question, str(rec.get("entry_point", "")))
    text = spec.template.replace("{question}", question)
    if "{choices}" in text:
        text = text.replace("{choices}", "\n".join(f"{'ABCD'[j]}) {c}" for j, c in enumerate(rec["choices"])))
    if chat_template:
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("chat_template=True but the tokenizer has no chat template")
        text = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return text


def row_id(method: str, problem: int, sample: int) -> str:
    """The key of one eval result row (streaming output: a rerun skips the keys already written)."""
    return f"{method}:{problem}:{sample}"


def run_eval(sampler_factory: Callable[[dict[str, Any]], Any], task: str, problems: list[dict[str, Any]],
             methods: list[str], tokenizer: Any = None, num_samples: int = 1, batch_size: int = 8,
             chat_template: bool = False, timeout: float = 3.0, prompt_style: str = "raw",
             on_batch: Callable[[str, int], None] | None = None,
             on_chains: Callable[[str, int, int], None] | None = None,
             done: set[str] | frozenset[str] = frozenset(),
             on_rows: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Sample and grade every problem with every method; one result row per (method, problem, sample).

    ``sampler_factory(overrides)`` builds a sampler with the method's overrides applied. Rows whose
    :func:`row_id` is in ``done`` are neither sampled nor returned (resume); each batch's new rows are passed to
    ``on_rows`` as soon as they are graded (streaming). Chains are seeded per (seed, prompt, sample), so a resumed
    run produces the same rows as an uninterrupted one. ``on_batch(method, n_done)`` is called after each batch
    and ``on_chains(method, n_finished, n_chains)`` as the chains of the current batch finish (progress bars).
    """
    spec = get_task(task)
    prompts = [build_prompt(task, r, tokenizer, chat_template, prompt_style) for r in problems]
    rows: list[dict[str, Any]] = []
    for method in methods:
        todo = [i for i in range(len(problems))
                if any(row_id(method, i, j) not in done for j in range(num_samples))]
        if not todo:
            if on_batch is not None:
                on_batch(method, len(problems))
            continue
        sampler = sampler_factory(get_method(method))
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            t0 = time.perf_counter()
            extra = {} if on_chains is None else {"callback": lambda d, n, m=method: on_chains(m, d, n)}
            samples = sampler.sample(prompts=[prompts[i] for i in batch], num_chains=num_samples, **extra)
            dt = (time.perf_counter() - t0) / max(len(samples), 1)
            new = []
            for s in samples:
                idx = batch[s.prompt_index]
                rid = row_id(method, idx, s.chain_index)
                if rid in done:
                    continue
                try:
                    g = spec.grade(s.text, problems[idx], timeout)
                except Exception as e:  # noqa: BLE001 - graders are total; a bad record must not lose the run
                    g = GradeResult(False, None, error=f"{type(e).__name__}: {str(e)[:200]}")
                new.append({"id": rid, "task": task, "task_version": spec.version, "method": method, "problem": idx,
                            "sample": s.chain_index, "correct": g.correct, "prediction": g.prediction,
                            "grade_error": g.error, "detail": g.detail,
                            "answer": str(problems[idx].get(spec.answer_field)), "completion": s.text,
                            "num_tokens": len(s.token_ids), "tokens_generated": s.tokens_generated,
                            "acceptance_rate": s.acceptance_rate, "logprob": s.logprob, "seconds": dt})
            rows += new
            if on_rows is not None:
                on_rows(new)
            if on_batch is not None:
                on_batch(method, len(problems) - len(todo) + min(start + batch_size, len(todo)))
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method: accuracy (= mean pass@1), pass@k (k = 2, 4, ...), mean tokens, acceptance, grader errors."""
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mrows = [r for r in rows if r["method"] == method]
        by_problem: dict[int, list[bool]] = {}
        for r in mrows:
            by_problem.setdefault(r["problem"], []).append(bool(r["correct"]))
        n = min(len(v) for v in by_problem.values())
        acc = [r["acceptance_rate"] for r in mrows if r["acceptance_rate"] == r["acceptance_rate"]]
        summ = {"problems": len(by_problem), "samples_per_problem": n,
                "accuracy": sum(r["correct"] for r in mrows) / len(mrows),
                "mean_tokens": sum(r["num_tokens"] for r in mrows) / len(mrows),
                "mean_tokens_generated": sum(r["tokens_generated"] for r in mrows) / len(mrows),
                "acceptance_rate": (sum(acc) / len(acc)) if acc else float("nan"),
                "grade_errors": sum(r["grade_error"] is not None for r in mrows),
                "seconds_per_sample": sum(r["seconds"] for r in mrows) / len(mrows)}
        k = 2
        while k <= n:
            summ[f"pass@{k}"] = sum(compute_pass_at_k(len(v), sum(v), k) for v in by_problem.values()) / len(by_problem)
            k *= 2
        out[method] = summ
    return out
