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

#: The package's own tiny preference set (24 pairs: arithmetic and short facts), for tests and the demo; split
#: "train". Split "test" is 8 held-out pairs whose prompts appear nowhere in the train split.
TINY_PAIRS = Path(__file__).resolve().parent / "assets" / "tiny_prefs.jsonl"
TINY_TEST_PAIRS = Path(__file__).resolve().parent / "assets" / "tiny_prefs_test.jsonl"


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

    ``ref`` is ``"tiny"`` (the package's own set: split ``train`` or ``test``), ``builtin:<name>`` (rlcore assets:
    a ``.jsonl`` file, or a folder holding ``<split>.jsonl``), a local ``.jsonl`` file (the split is ignored: the
    file is the data), a local folder holding ``<split>.jsonl``, or an HF dataset name.

    Raises:
        FileNotFoundError: a local path that does not exist, or a folder without ``<split>.jsonl`` (never another
            split's file in its place: evaluating on training pairs must not happen silently).
        ValueError: ``tiny`` with a split other than train/test.
        rlcore.io.DataError: a JSONL record without prompt/chosen/rejected (names file and line).
    """
    from datasets import Dataset
    from rlcore.builtins import resolve
    from rlcore.io import read_jsonl

    if ref == "tiny":
        if split not in ("train", "test"):
            raise ValueError(f"the tiny pairs have splits 'train' and 'test', got split {split!r}")
        path = str(TINY_PAIRS if split == "train" else TINY_TEST_PAIRS)
    else:
        path = resolve(ref)
    p = Path(path)
    if p.is_dir():
        if not (p / f"{split}.jsonl").is_file():
            have = sorted(c.name for c in p.glob("*.jsonl"))
            raise FileNotFoundError(f"no {split}.jsonl in {p} (split {split!r}); files there: {have}")
        p = p / f"{split}.jsonl"
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
