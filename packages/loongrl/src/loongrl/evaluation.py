"""Evaluation: LongBench-style QA (sub-EM, F1), KeyChain held-out accuracy, and a needle-in-a-haystack grid."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .context_filling import TokenCounter, render_context
from .prompts import multihop_prompt, to_messages
from .reward import compute_f1, compute_sub_em, extract_final_answer
from .sampling import Sampler

__all__ = ["evaluate_rows", "make_niah_example", "run_niah", "save_heatmap"]


def evaluate_rows(rows: Sequence[dict[str, Any]], sampler: Sampler) -> dict[str, Any]:
    """One sample per ``{"prompt", "answers"}`` row; sub-EM and F1 of the final boxed answer, in percent."""
    if not rows:
        raise ValueError("no evaluation rows")
    responses = sampler.sample([r["prompt"] for r in rows], 1)
    per_item = []
    for row, (resp,) in zip(rows, responses):
        pred = extract_final_answer(resp)
        per_item.append({"prediction": pred, "answers": row["answers"], "sub_em": compute_sub_em(pred, row["answers"]),
                         "f1": compute_f1(pred, row["answers"]), "response": resp})
    n = len(per_item)
    return {"n": n, "sub_em": 100 * sum(p["sub_em"] for p in per_item) / n,
            "f1": 100 * sum(p["f1"] for p in per_item) / n, "items": per_item}


def make_niah_example(docs: Sequence[str], counter: TokenCounter, length: int, depth: float,
                      rng: random.Random) -> dict[str, Any]:
    """A haystack of whole documents up to ``length`` tokens with a magic-number needle at relative ``depth``.

    Documents are drawn in random order and counted once each (running sum); the needle goes between documents at
    index ``round(depth * n_docs)``. Returns ``{"prompt" (user text), "answers", "length"}``.
    """
    key = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))
    value = str(rng.randint(1_000_000, 9_999_999))
    needle = f"The special magic number for {key} is: {value}."
    question = f"What is the special magic number for {key} mentioned in the provided text?"
    budget = length - counter.count(multihop_prompt("", question)) - counter.count(needle) - 8
    order = list(range(len(docs)))
    rng.shuffle(order)
    chosen, total = [], 0
    for i in order:
        n = counter.count_cached(docs[i]) + 6  # + "Passage i:\n" and separator, approximately
        if total + n > budget:
            break
        chosen.append(docs[i])
        total += n
    if not chosen:
        raise ValueError(f"length {length} is too short for any haystack document")
    at = round(depth * len(chosen))
    hay = render_context([*chosen[:at], needle, *chosen[at:]])
    return {"prompt": multihop_prompt(hay, question), "answers": [value], "length": total}


def run_niah(docs: Sequence[str], tokenizer: Any, sampler: Sampler, lengths: Sequence[int], depths: Sequence[float],
             trials: int = 2, system: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Accuracy (sub-EM, %) for every (length, depth) cell; ``grid[i][j]`` is lengths[i] x depths[j]."""
    counter = TokenCounter(tokenizer)
    rng = random.Random(seed)
    rows, cells = [], []
    for i, L in enumerate(lengths):
        for j, d in enumerate(depths):
            for _ in range(trials):
                ex = make_niah_example(docs, counter, L, d, rng)
                rows.append({"prompt": to_messages(ex["prompt"], system), "answers": ex["answers"]})
                cells.append((i, j))
    res = evaluate_rows(rows, sampler)
    grid = [[0.0] * len(depths) for _ in lengths]
    for (i, j), item in zip(cells, res["items"]):
        grid[i][j] += 100 * item["sub_em"] / trials
    return {"lengths": list(lengths), "depths": list(depths), "grid": grid, "mean": res["sub_em"], "trials": trials}


def save_heatmap(result: dict[str, Any], path: str | Path, title: str = "Needle in a haystack (sub-EM %)") -> str:
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
