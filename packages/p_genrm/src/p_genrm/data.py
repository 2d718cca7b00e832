"""PersonalRewardBench rows, PRISM stated preferences, per-user splits and history sampling.

A PersonalRewardBench row (SynthesizeMe's ``chatbot_arena_personalized_0125`` / ``prism_personalized_0125``) has
``user_id``, ``split`` in {train, val, test}, ``context`` (a list of ``{"content": ...}`` turns, or a string),
``chosen`` and ``rejected`` (``{"content": ...}`` or a string). Evaluation is per user over the test rows; the
preference history of a test query is a seeded random sample of the same user's train rows (spec: 6 pairs, seed 42).
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlcore.io import DataError, iter_jsonl

from .evaluation_chain import HistoryPair, ScoreRequest

__all__ = [
    "SPLITS",
    "PreferenceRow",
    "UserData",
    "parse_row",
    "load_rows",
    "load_hf_rows",
    "group_by_user",
    "load_stated_criteria",
    "sample_history",
    "make_request",
    "load_requests",
    "PRB_FIELDS",
    "select_profile",
    "parse_personalized_row",
    "load_personalized_rewardbench",
    "detect_format",
    "load_benchmark",
]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class PreferenceRow:
    """One preference pair of one user."""

    user_id: str
    split: str
    query: str
    first_turn: str
    chosen: str
    rejected: str
    row_id: str
    profile: tuple[str, ...] = ()

    def as_history(self) -> HistoryPair:
        """The row as a history pair (``User: context[0].content``, as in the released prompt)."""
        return HistoryPair(user=self.first_turn, chosen=self.chosen, rejected=self.rejected)


@dataclass
class UserData:
    """The rows of one user, by split."""

    user_id: str
    train: list[PreferenceRow]
    val: list[PreferenceRow]
    test: list[PreferenceRow]
    stated_criteria: str | None = None


def _content(value: Any, where: str, key: str) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict) and isinstance(value.get("content"), str):
        text = value["content"]
    else:
        raise DataError(f"{where}: '{key}' must be a string or an object with a string 'content'")
    if not text.strip():
        raise DataError(f"{where}: '{key}' is empty")
    return text


def _context(value: Any, where: str) -> tuple[str, str]:
    """(query text, first user turn) of a ``context`` field."""
    if isinstance(value, str):
        turns = [value]
    elif isinstance(value, list) and value:
        turns = [_content(t, where, f"context[{i}]") for i, t in enumerate(value)]
    else:
        raise DataError(f"{where}: 'context' must be a non-empty list of turns or a string")
    if len(turns) == 1:
        return turns[0], turns[0]
    roles = ["User", "Assistant"]
    query = "\n".join(f"{roles[i % 2]}: {t}" for i, t in enumerate(turns))
    return query, turns[0]


def parse_row(rec: dict[str, Any], where: str) -> PreferenceRow:
    """Validate one raw record; ``where`` (``file:line``) is named in every error.

    Raises:
        DataError: a missing field, an unknown split, or empty text.
    """
    missing = [k for k in ("user_id", "split", "context", "chosen", "rejected") if k not in rec]
    if missing:
        raise DataError(f"{where}: record lacks required field(s) {missing}")
    split = str(rec["split"])
    if split not in SPLITS:
        raise DataError(f"{where}: split must be one of {SPLITS}, got {split!r}")
    query, first = _context(rec["context"], where)
    return PreferenceRow(
        user_id=str(rec["user_id"]), split=split, query=query, first_turn=first,
        chosen=_content(rec["chosen"], where, "chosen"), rejected=_content(rec["rejected"], where, "rejected"),
        row_id=str(rec.get("conversation_id", where)),
    )


def load_rows(path: str | Path) -> list[PreferenceRow]:
    """Read PersonalRewardBench rows from a JSONL file (errors name ``file:line``)."""
    rows = []
    for i, rec in enumerate(iter_jsonl(path), 1):
        rows.append(parse_row(rec, f"{path}:{i}"))
    if not rows:
        raise DataError(f"{path}: no records")
    return rows


def load_hf_rows(name: str, split: str = "train") -> list[PreferenceRow]:
    """Read rows from an HF dataset (hub name or ``save_to_disk`` directory), e.g. ``MichaelR207/prism_personalized_0125``."""
    import datasets

    ds = datasets.load_from_disk(name) if Path(name).is_dir() else datasets.load_dataset(name, split=split)
    if isinstance(ds, datasets.DatasetDict):
        ds = datasets.concatenate_datasets(list(ds.values()))
    return [parse_row(dict(rec), f"{name}[{i}]") for i, rec in enumerate(ds)]


def _criteria_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        lines = [f"{k}: {v}" for k, v in value.items() if v is not None and str(v).strip()]
        return "\n".join(lines) or None
    text = str(value).strip()
    return text or None


def load_stated_criteria(path: str | Path, key: str = "stated_prefs") -> dict[str, str]:
    """PRISM survey rows (``user_id`` + ``stated_prefs`` dict or text) -> user_id -> "key: value" lines."""
    out: dict[str, str] = {}
    for i, rec in enumerate(iter_jsonl(path, required=("user_id", key)), 1):
        text = _criteria_text(rec[key])
        if text is not None:
            out[str(rec["user_id"])] = text
        elif rec[key] not in (None, "", {}):
            raise DataError(f"{path}:{i}: '{key}' has no usable content")
    return out


def group_by_user(rows: Iterable[PreferenceRow], stated: dict[str, str] | None = None) -> dict[str, UserData]:
    """Per-user splits, keeping the users' first-seen order."""
    by: dict[str, dict[str, list[PreferenceRow]]] = defaultdict(lambda: {s: [] for s in SPLITS})
    for r in rows:
        by[r.user_id][r.split].append(r)
    stated = stated or {}
    return {u: UserData(u, d["train"], d["val"], d["test"], stated.get(u)) for u, d in by.items()}


def sample_history(pool: list[PreferenceRow], n: int, seed: int = 42, exclude: str | None = None,
                   key: str = "") -> tuple[HistoryPair, ...]:
    """A seeded random sample of ``n`` history pairs from ``pool`` (all of it when smaller), skipping ``exclude``.

    The RNG is seeded by ``(seed, key)`` so each user/query gets its own reproducible sample. A user with no
    history gets an empty tuple (the prompt then says no history is available).
    """
    cands = [r for r in pool if r.row_id != exclude]
    rng = random.Random(f"{seed}:{key}")
    picked = cands if len(cands) <= n else rng.sample(cands, n)
    return tuple(r.as_history() for r in picked)


def make_request(row: PreferenceRow, history: tuple[HistoryPair, ...], chosen_first: bool,
                 stated_criteria: str | None = None) -> ScoreRequest:
    """A :class:`ScoreRequest` for ``row`` with the chosen response at position 1 iff ``chosen_first``."""
    r1, r2 = (row.chosen, row.rejected) if chosen_first else (row.rejected, row.chosen)
    return ScoreRequest(query=row.query, response_1=r1, response_2=r2, history=history,
                        stated_criteria=stated_criteria, user_id=row.user_id, profile=row.profile)


def load_requests(path: str | Path) -> list[ScoreRequest]:
    """Score requests from JSONL (errors name ``file:line``).

    Fields: ``query, response_1, response_2`` and optional ``history`` (list of ``{user, chosen, rejected}``),
    ``stated_criteria``, ``user_id``.
    """
    out = []
    for i, rec in enumerate(iter_jsonl(path, required=("query", "response_1", "response_2")), 1):
        where = f"{path}:{i}"
        hist = rec.get("history") or []
        if not isinstance(hist, list) or not all(isinstance(h, dict) and {"user", "chosen", "rejected"} <= set(h)
                                                  for h in hist):
            raise DataError(f"{where}: 'history' must be a list of {{user, chosen, rejected}} objects")
        texts = [_content(rec[k], where, k) for k in ("query", "response_1", "response_2")]
        out.append(ScoreRequest(*texts, history=tuple(HistoryPair.from_dict(h) for h in hist),
                                stated_criteria=_criteria_text(rec.get("stated_criteria")),
                                user_id=None if rec.get("user_id") is None else str(rec["user_id"])))
    if not out:
        raise DataError(f"{path}: no records")
    return out


# ---------------------------------------------------------------- Personalized RewardBench (arXiv 2604.07343)
PRB_FIELDS = ("id", "question", "profile", "chosen", "rejected")
_WORDS = re.compile(r"\w+")


def select_profile(question: str, entries: list[str], k: int, max_chars: int) -> tuple[str, ...]:
    """The ``k`` profile entries sharing the most distinct words with ``question``.

    Ties keep the original order; each entry is clipped to ``max_chars``; the result is in the original order.

    Example:
        >>> select_profile("best jazz albums", ["I cook pasta", "jazz piano albums I love", "albums"], 2, 10)
        ('jazz piano', 'albums')
    """
    if k <= 0 or not entries:
        return ()
    q = set(_WORDS.findall(question.lower()))
    scored = sorted(range(len(entries)), key=lambda i: (-len(q & set(_WORDS.findall(entries[i][:20_000].lower()))), i))
    return tuple(entries[i][:max_chars].strip() for i in sorted(scored[:k]))


def parse_personalized_row(rec: dict[str, Any], where: str, profile_size: int = 8,
                           profile_chars: int = 600) -> PreferenceRow:
    """One Personalized RewardBench record -> a test :class:`PreferenceRow` of its own user.

    Used fields: ``id`` (the user/row id), ``question`` (the query), ``profile`` (list of ``{category, id, text}``
    or strings: the user's past texts, shown as evidence), ``chosen``/``rejected`` (strings). Kept out of the
    prompt: ``rubric_aspects`` and ``narrative`` (the rubric the pair was built from, i.e. the answer) and
    ``category``.

    Raises:
        DataError: a missing field or a wrongly typed one (``where`` names file:line).
    """
    missing = [k for k in PRB_FIELDS if k not in rec]
    if missing:
        raise DataError(f"{where}: Personalized RewardBench record lacks field(s) {missing}")
    prof = rec["profile"]
    if not isinstance(prof, list):
        raise DataError(f"{where}: 'profile' must be a list of {{category, id, text}} objects")
    texts = []
    for i, e in enumerate(prof):
        t = e.get("text") if isinstance(e, dict) else e
        if not isinstance(t, str):
            raise DataError(f"{where}: profile[{i}] must be a string or an object with a string 'text'")
        if t.strip():
            texts.append(t)
    question = _content(rec["question"], where, "question")
    return PreferenceRow(
        user_id=str(rec["id"]), split="test", query=question, first_turn=question,
        chosen=_content(rec["chosen"], where, "chosen"), rejected=_content(rec["rejected"], where, "rejected"),
        row_id=str(rec["id"]), profile=select_profile(question, texts, profile_size, profile_chars),
    )


def _records(path: str | Path):
    p = Path(path)
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        if not p.is_file():
            raise FileNotFoundError(f"parquet file not found: {p}")
        for i, rec in enumerate(pq.read_table(p).to_pylist(), 1):
            yield f"{p}[{i}]", rec
        return
    for i, rec in enumerate(iter_jsonl(p), 1):
        yield f"{p}:{i}", rec


def load_personalized_rewardbench(path: str | Path, profile_size: int = 8,
                                  profile_chars: int = 600) -> dict[str, UserData]:
    """Personalized RewardBench rows (JSONL or the released parquet) -> one test-only user per record.

    Raises:
        DataError: a bad record (file:line named), a duplicated ``id``, or no records.
    """
    users: dict[str, UserData] = {}
    for where, rec in _records(path):
        row = parse_personalized_row(rec, where, profile_size, profile_chars)
        if row.user_id in users:
            raise DataError(f"{where}: duplicated id {row.user_id!r}")
        users[row.user_id] = UserData(row.user_id, [], [], [row])
    if not users:
        raise DataError(f"{path}: no records")
    return users


def detect_format(path: str | Path) -> str:
    """The file's format: ``personalized-rewardbench`` (``question`` + ``profile``) or ``personalrewardbench``."""
    for _, rec in _records(path):
        return "personalized-rewardbench" if {"question", "profile"} <= set(rec) else "personalrewardbench"
    raise DataError(f"{path}: no records")


def load_benchmark(path: str | Path, input_format: str = "auto", stated: dict[str, str] | None = None,
                   profile_size: int = 8, profile_chars: int = 600) -> dict[str, UserData]:
    """Users of either benchmark file (see :func:`detect_format`)."""
    fmt = detect_format(path) if input_format == "auto" else input_format
    if fmt == "personalized-rewardbench":
        return load_personalized_rewardbench(path, profile_size, profile_chars)
    if fmt != "personalrewardbench":
        raise ValueError(f"input_format: unknown {input_format!r}")
    return group_by_user(load_rows(path), stated)
