"""Evaluation: LongBench-style QA (sub-EM, F1), KeyChain held-out accuracy, and a needle-in-a-haystack grid."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .context_filling import TokenCounter, render_context
from .prompts import multihop_prompt, to_messages
from .reward import compute_exact_match, compute_f1, compute_sub_em, extract_final_answer

__all__ = ["score_item", "summarize", "evaluate_rows", "evaluate_memory_agent", "make_niah_example", "niah_examples",
           "niah_grid", "run_niah", "save_heatmap"]


def score_item(response: str, answers: Sequence[str], metric: str = "sub_em") -> dict[str, Any]:
    """Prediction and scores of one response: ``sub_em`` and ``f1`` always, ``em`` (exact match) too.

    ``score`` is the ``metric`` one (``"sub_em"`` for QA, ``"em"`` for needles).
    """
    pred = extract_final_answer(response)
    rec = {"prediction": pred, "answers": list(answers), "sub_em": compute_sub_em(pred, answers),
           "f1": compute_f1(pred, answers), "em": compute_exact_match(pred, answers)}
    rec["score"] = rec["em"] if metric == "em" else rec["sub_em"]
    return rec


def summarize(per_item: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Percent means of ``sub_em``, ``f1``, ``em`` and ``score`` over items."""
    n = len(per_item)
    if not n:
        return {"n": 0, "sub_em": 0.0, "f1": 0.0, "em": 0.0, "score": 0.0}
    return {"n": n, **{k: 100 * sum(p[k] for p in per_item) / n for k in ("sub_em", "f1", "em", "score")}}


def evaluate_rows(rows: Sequence[dict[str, Any]], sampler: Any, metric: str = "sub_em",
                  seeds: Sequence[int] | None = None) -> dict[str, Any]:
    """One sample per ``{"prompt", "answers"}`` row; sub-EM, F1 and EM of the final boxed answer, in percent.

    ``seeds``: one per row (per-row sampling seeds; a resumed run then reproduces an uninterrupted one).
    """
    if not rows:
        raise ValueError("no evaluation rows")
    prompts = [r["prompt"] for r in rows]
    responses = sampler.sample(prompts, 1) if seeds is None else sampler.sample(prompts, 1, seeds=seeds)
    per_item = [{**score_item(resp, row["answers"], metric), "response": resp}
                for row, (resp,) in zip(rows, responses)]
    return {**summarize(per_item), "items": per_item}


def evaluate_memory_agent(rows: Sequence[dict[str, Any]], agent: Any, metric: str = "sub_em") -> dict[str, Any]:
    """Memory-agent evaluation of ``{"context", "problem", "answers"}`` rows (see :mod:`loongrl.memory_agent`)."""
    if not rows:
        raise ValueError("no evaluation rows")
    outs = agent.run(rows)
    per_item = [{**score_item(o["response"], row["answers"], metric), **o} for row, o in zip(rows, outs)]
    return {**summarize(per_item), "items": per_item}


NEEDLE = "The special magic number for {key} is: {value}."
NIAH_QUESTION = "What is the special magic number for {key} mentioned in the provided text?"


def _exact_prefix(counter: TokenCounter, text_of, lo: int, hi: int, target: int) -> str | None:
    """The text ``text_of(k)`` for some ``k`` in ``[lo, hi]`` whose token count is exactly ``target`` (a binary search on ``k``, then a scan of the neighbours.

    counts of decoded prefixes are monotone up to merges).
    """
    a, b = lo, hi
    while a < b:
        mid = (a + b) // 2
        if counter.count(text_of(mid)) < target:
            a = mid + 1
        else:
            b = mid
    for k in sorted(range(max(lo, a - 4), min(hi, a + 4) + 1), key=lambda k: abs(k - a)):
        t = text_of(k)
        if counter.count(t) == target:
            return t
    return None


def make_niah_example(docs: Sequence[str], counter: TokenCounter, length: int, depth: float,
                      rng: random.Random, digits: int = 7) -> dict[str, Any]:
    """A haystack prompt of exactly ``length`` tokens with a magic-number needle at relative ``depth``.

    Whole documents (random order) are added while they fit; the last one is cut to the token that makes the user
    prompt (``multihop_prompt(haystack, question)``) exactly ``length`` tokens. The needle goes between documents
    at index ``round(depth * n_docs)``. Returns ``{"prompt", "context", "question", "answers", "length"}``.

    Raises:
        ValueError: ``length`` is shorter than the prompt without a haystack, or the pool runs out of documents
            before ``length`` (the message gives both numbers).
    """
    key = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))
    value = str(rng.randint(10 ** (digits - 1), 10 ** digits - 1))
    needle = NEEDLE.format(key=key, value=value)
    question = NIAH_QUESTION.format(key=key)
    bare = counter.count(multihop_prompt(render_context([needle]), question))
    if length <= bare + 8:
        raise ValueError(f"NIAH length {length} is too short: the prompt without a haystack has {bare} tokens")
    order = list(range(len(docs)))
    rng.shuffle(order)
    chosen: list[str] = []
    total = bare
    for i in order:
        total += counter.count_cached(docs[i]) + 8  # + "Passage i:\n" and separator, approximately
        chosen.append(docs[i])
        if total > length + 16:
            break
    else:
        raise ValueError(f"NIAH length {length}: the haystack pool ({len(docs)} documents, about {total} tokens "
                         "with the prompt) cannot fill it; give a larger --input haystack file or shorter --lengths")

    def build(parts: list[str]) -> str:
        at = round(depth * len(parts))
        return multihop_prompt(render_context([*parts[:at], needle, *parts[at:]]), question)

    # drop whole documents while the prompt is too long, then cut the last one to the exact token count
    while len(chosen) > 1 and counter.count(build(chosen[:-1])) >= length:
        chosen.pop()
    if counter.count(build(chosen)) < length:
        raise ValueError(f"NIAH length {length}: the haystack pool ({len(docs)} documents) cannot fill it; give a "
                         "larger --input haystack file or shorter --lengths")
    last_ids = counter.tokenizer(chosen[-1], add_special_tokens=False)["input_ids"]
    if len(chosen) > 1 and counter.count(build([*chosen[:-1], ""])) > length:
        # the target falls inside the new passage header: cut a merge of the last two documents instead
        chosen = [*chosen[:-2], chosen[-2] + " " + chosen[-1]]
        last_ids = counter.tokenizer(chosen[-1], add_special_tokens=False)["input_ids"]

    def text_of(k: int) -> str:
        return build([*chosen[:-1], counter.tokenizer.decode(last_ids[:k])])

    prompt = _exact_prefix(counter, text_of, 0, len(last_ids), length)
    if prompt is None:
        for pad in (" ", ".", "\n"):  # a merge skipped the count: pad the cut document by one more character
            prompt = _exact_prefix(counter, lambda k, p=pad: build([*chosen[:-1],
                                                                    counter.tokenizer.decode(last_ids[:k]) + p]),
                                   0, len(last_ids), length)
            if prompt is not None:
                break
    if prompt is None:
        raise ValueError(f"NIAH length {length}: could not reach exactly {length} tokens with this tokenizer")
    context = prompt[len("The following are given passages.\n"): -len(f"\n\nQuestion: {question}")]
    return {"prompt": prompt, "context": context, "question": question, "answers": [value],
            "length": counter.count(prompt)}


def niah_examples(docs: Sequence[str], tokenizer: Any, lengths: Sequence[int], depths: Sequence[float],
                  trials: int = 2, seed: int = 0, digits: int = 7) -> list[tuple[int, int, dict[str, Any]]]:
    """``(length index, depth index, example)`` for every grid cell and trial."""
    counter = TokenCounter(tokenizer)
    rng = random.Random(seed)
    return [(i, j, make_niah_example(docs, counter, L, d, rng, digits))
            for i, L in enumerate(lengths) for j, d in enumerate(depths) for _ in range(trials)]


def niah_grid(cells: Sequence[tuple[int, int]], items: Sequence[dict[str, Any]], lengths: Sequence[int],
              depths: Sequence[float], trials: int) -> dict[str, Any]:
    """The accuracy grid (exact match, %) from per-item scores; ``grid[i][j]`` is lengths[i] x depths[j]."""
    grid = [[0.0] * len(depths) for _ in lengths]
    for (i, j), item in zip(cells, items):
        grid[i][j] += 100 * item["score"] / trials
    mean = 100 * sum(it["score"] for it in items) / max(len(items), 1)
    return {"lengths": list(lengths), "depths": list(depths), "grid": grid, "mean": mean, "trials": trials,
            "metric": "em"}


def run_niah(docs: Sequence[str], tokenizer: Any, sampler: Any, lengths: Sequence[int], depths: Sequence[float],
             trials: int = 2, system: str | None = None, seed: int = 0, agent: Any = None,
             digits: int = 7) -> dict[str, Any]:
    """Exact-match accuracy (%) for every (length, depth) cell; through the memory ``agent`` when given."""
    exs = niah_examples(docs, tokenizer, lengths, depths, trials, seed, digits)
    cells = [(i, j) for i, j, _ in exs]
    if agent is not None:
        res = evaluate_memory_agent([{"context": e["context"], "problem": e["question"], "answers": e["answers"]}
                                     for _, _, e in exs], agent, metric="em")
    else:
        res = evaluate_rows([{"prompt": to_messages(e["prompt"], system), "answers": e["answers"]}
                             for _, _, e in exs], sampler, metric="em")
    out = niah_grid(cells, res["items"], lengths, depths, trials)
    out["token_lengths"] = [e["length"] for _, _, e in exs]
    return out


def save_heatmap(result: dict[str, Any], path: str | Path, title: str = "Needle in a haystack (exact match %)") -> str:
    """Save the NIAH grid as a PNG heatmap (matplotlib Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid, lengths, depths = result["grid"], result["lengths"], result["depths"]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(lengths), 1.2 + 0.6 * len(depths)))
    cols = list(zip(*grid))  # rows: depths, columns: lengths
    im = ax.imshow(cols, vmin=0, vmax=100, cmap="RdYlGn", aspect="auto")
    ax.set_xticks(range(len(lengths)), [f"{L // 1024}K" if L >= 1024 else str(L) for L in lengths])
    ax.set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths])
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("needle depth")
    for j, row in enumerate(cols):
        for i, v in enumerate(row):
            ax.text(i, j, f"{v:.0f}", ha="center", va="center", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
