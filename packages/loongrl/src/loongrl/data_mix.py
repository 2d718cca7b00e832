r"""The non-KeyChain parts of the paper's RL data mix (spec "Data mix").

plain multi-hop QA filled to the RL length, needle-retrieval rows and math rows, written as the files the
train recipes read (``loongrl synth-mix``).

Every row carries ``data_source`` so the reward is routed (``reward.reward_kind``): ``qa`` rows get two-way sub-EM,
``needle`` rows exact match, ``math`` rows math-verify.

Math input: a local JSON/JSONL file, ``builtin:arithmetic``, or a Hugging Face dataset name (DAPO-Math, MATH);
a row's problem is read from ``problem``/``question``/``prompt`` and its answer from ``answer`` (or the last
``\\boxed{}`` of ``solution``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rlcore.io import DataError
from rlcore.rewards import extract_boxed

from .context_filling import TokenCounter, fill_context
from .data import DocPool, QAItem

__all__ = ["MATH_SUFFIX", "multihop_records", "needle_records", "load_math", "math_records", "mix_file_names"]

# the usual instruction of DAPO/MATH RL prompts (answer in \boxed{})
MATH_SUFFIX = "\n\nPlease reason step by step, and put your final answer within \\boxed{}."
_PROBLEM_KEYS = ("problem", "question", "prompt")


def mix_file_names(max_seq_length: int) -> dict[str, str]:
    """The recipe file names: ``multihop_16k.jsonl``, ``needle_16k.jsonl``, ``math.jsonl`` (16K example)."""
    tag = f"{max_seq_length // 1024}k" if max_seq_length % 1024 == 0 else str(max_seq_length)
    return {"multihop": f"multihop_{tag}.jsonl", "needle": f"needle_{tag}.jsonl", "math": "math.jsonl"}


def multihop_records(items: Sequence[QAItem], tokenizer: Any, max_seq_length: int, n: int, seed: int = 42,
                     **fill_kw: Any) -> Iterator[dict[str, Any]]:
    """Plain multi-hop rows: each item's own documents filled with pool fillers to the RL length (no KeyChain)."""
    pool, counter = DocPool(items), TokenCounter(tokenizer)
    for it in items[:n]:
        filled = fill_context(it, pool, counter, max_seq_length, seed, **fill_kw)
        yield {"id": it.id, "input": it.question, "context": filled.text, "answers": list(it.answers),
               "length": filled.num_tokens, "data_source": "qa"}


def needle_records(items: Sequence[QAItem], tokenizer: Any, length: int, n: int, seed: int = 42,
                   digits: int = 7) -> Iterator[dict[str, Any]]:
    """Needle-retrieval rows.

    a magic-number needle at a uniform random depth in a haystack of exactly ``length`` tokens (the documents
    of ``items``); answered by exact match.
    """
    from .evaluation import make_niah_example

    docs = DocPool(items).docs
    counter = TokenCounter(tokenizer)
    rng = random.Random(seed)
    for k in range(n):
        ex = make_niah_example(docs, counter, length, rng.random(), rng, digits)
        yield {"id": f"needle-{seed}-{k}", "prompt": ex["prompt"], "answers": ex["answers"], "length": ex["length"],
               "data_source": "needle"}


def _rows_from_path(ref: str) -> Iterator[dict[str, Any]]:
    from rlcore.builtins import resolve

    p = Path(resolve(ref))
    if p.is_dir():
        p = p / "train.jsonl"
    if p.is_file():
        text = p.read_text(encoding="utf-8")
        if text.lstrip().startswith("["):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"{p}: malformed JSON ({e.msg} at line {e.lineno})") from None
            yield from data
        else:
            from rlcore.io import iter_jsonl

            yield from iter_jsonl(p)
        return
    if ref.startswith(("./", "/", "../")) or ref.endswith((".json", ".jsonl")):
        raise FileNotFoundError(f"math input not found: {ref}")
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets ships with trl
        raise ValueError(f"math input {ref!r} is not a local file and `datasets` is not installed") from e
    try:
        yield from datasets.load_dataset(ref, split="train")
    except Exception as e:  # noqa: BLE001 - offline / unknown name: one clear line
        raise ValueError(f"math input {ref!r}: not a local file, and loading it as a Hugging Face dataset failed "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def load_math(ref: str, limit: int = -1) -> list[dict[str, Any]]:
    """``[{"id", "problem", "answer"}]`` from a math file / built-in / HF dataset (see the module docstring).

    Raises:
        DataError: a row has no problem or no answer (the row is named).
    """
    out = []
    for n, rec in enumerate(_rows_from_path(ref)):
        if 0 <= limit <= len(out):
            break
        where = f"{ref} row {n}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected an object")
        problem = next((rec[k] for k in _PROBLEM_KEYS if isinstance(rec.get(k), str) and rec[k].strip()), None)
        if problem is None:
            raise DataError(f"{where}: no problem text (fields {list(_PROBLEM_KEYS)})")
        ans = rec.get("answer")
        if ans is None and isinstance(rec.get("solution"), str):
            ans = extract_boxed(rec["solution"])
        if isinstance(ans, int | float) and not isinstance(ans, bool):
            ans = str(ans)
        if not isinstance(ans, str) or not ans.strip():
            raise DataError(f"{where}: no answer ('answer' field or a \\boxed{{}} in 'solution')")
        if problem.endswith("\nAnswer: <think>"):  # builtin:arithmetic rows carry tiny-reasoner's raw prompt
            problem = rec.get("question", problem)
        out.append({"id": str(rec.get("id", f"math-{n}")), "problem": problem, "answer": ans.strip()})
    if not out:
        raise DataError(f"{ref}: no math rows")
    return out


def math_records(rows: Sequence[dict[str, Any]], suffix: str = MATH_SUFFIX) -> Iterator[dict[str, Any]]:
    """Math rows in the trainer's ``{"prompt", "answers", "data_source": "math"}`` form."""
    for r in rows:
        yield {"id": r["id"], "prompt": r["problem"] + suffix, "answers": [r["answer"]], "data_source": "math"}
