"""Preference pairs: loading (JSONL, built-ins, HF datasets) and the bad-input policy.

A record is ``{"prompt", "chosen", "rejected"}`` with strings (plain) or chat-message lists (conversational), as
TRL's DPO expects. Bad pairs are dropped and counted, never silently trained on:
``empty_chosen`` / ``empty_rejected`` (no text once stripped), ``identical`` (chosen == rejected: the DPO margin
is identically 0 and carries no signal), and ``prompt_too_long`` (counted by the trainer: TRL drops prompts that
fill ``max_length``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["TINY_PAIRS", "load_preference_pairs", "filter_preference_pairs", "classify_pair"]

#: The package's own tiny preference set (24 pairs: arithmetic and short facts), for tests and the demo.
TINY_PAIRS = Path(__file__).resolve().parent / "assets" / "tiny_prefs.jsonl"


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # conversational: a list of {"role", "content"}
        return "".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    return "" if value is None else str(value)


def classify_pair(record: dict[str, Any]) -> str | None:
    """The reason a pair is unusable (``"empty_chosen"``, ``"empty_rejected"``, ``"identical"``) or ``None``."""
    chosen, rejected = _text(record.get("chosen")), _text(record.get("rejected"))
    if not chosen.strip():
        return "empty_chosen"
    if not rejected.strip():
        return "empty_rejected"
    if record.get("chosen") == record.get("rejected"):
        return "identical"
    return None


def filter_preference_pairs(dataset: Any, name: str = "train") -> tuple[Any, dict[str, int]]:
    """Drop unusable pairs from a ``datasets.Dataset``; return it and the counts per reason (plus ``kept``).

    Raises:
        ValueError: a column ``chosen`` or ``rejected`` is missing (the message names the dataset).
    """
    missing = [c for c in ("chosen", "rejected") if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{name} dataset lacks column(s) {missing}; columns: {dataset.column_names}")
    report = {"empty_chosen": 0, "empty_rejected": 0, "identical": 0}
    keep = []
    for i, row in enumerate(dataset.select_columns(["chosen", "rejected"])):
        reason = classify_pair(row)
        if reason is None:
            keep.append(i)
        else:
            report[reason] += 1
    if len(keep) < len(dataset):
        dataset = dataset.select(keep)
    report["kept"] = len(keep)
    return dataset, report


def load_preference_pairs(ref: str, split: str = "train") -> Any:
    """Load pairs as a ``datasets.Dataset``.

    ``ref`` is ``"tiny"`` (the package's own set), ``builtin:<name>`` (rlcore assets: a ``.jsonl`` file, or a folder
    holding ``<split>.jsonl``), a local ``.jsonl`` file, or an HF dataset name.

    Raises:
        FileNotFoundError: a local path that does not exist.
        rlcore.io.DataError: a JSONL record without prompt/chosen/rejected (names file and line).
    """
    from datasets import Dataset
    from rlcore.builtins import resolve
    from rlcore.io import read_jsonl

    path = str(TINY_PAIRS) if ref == "tiny" else resolve(ref)
    p = Path(path)
    if p.is_dir():
        candidates = [p / f"{split}.jsonl", *sorted(p.glob("*.jsonl"))]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise FileNotFoundError(f"no {split}.jsonl (or any .jsonl) in {p}")
        p = found[0]
    if p.suffix == ".jsonl" or p.is_file():
        if not p.is_file():
            raise FileNotFoundError(f"preference file not found: {p}")
        rows = read_jsonl(p, required=("prompt", "chosen", "rejected"))
        if not rows:
            raise ValueError(f"{p} holds no records")
        return Dataset.from_list(rows)
    if path.startswith((".", "/")) or path.endswith(".json"):
        raise FileNotFoundError(f"preference file not found: {path}")
    from datasets import load_dataset

    return load_dataset(path, split=split)
