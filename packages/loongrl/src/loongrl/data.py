r"""Seed multi-hop QA: one record type (:class:`QAItem`) and loaders for the published formats (spec step 1).

Documents are rendered ``"title\\nparagraph"`` as in the official KeyChain readers; HotpotQA/2WikiMQA sentences are
joined with ``""`` (their sentences carry their own leading spaces). MuSiQue keeps answerable items only.

Generic JSONL (also what ``loongrl filter`` writes), one object per line::

    {"id": "q1", "question": "...", "answers": ["..."], "documents": ["title\\ntext", {"title": .., "text": ..}]}

``input`` is accepted for ``question`` and ``answer`` (a string) for ``answers``.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rlcore.io import DataError, iter_jsonl, write_jsonl

__all__ = ["QAItem", "DocPool", "load_qa", "detect_format", "save_qa", "make_synthetic_qa", "LOADERS"]


@dataclasses.dataclass(frozen=True)
class QAItem:
    r"""One multi-hop question with its own short context.

    Attributes:
        id: item id from the source file (or ``"<file>#<n>"``).
        question: the question text (the KeyChain "true question").
        answers: gold answers (at least one, none empty).
        documents: the item's own documents, each ``"title\\nparagraph"`` (the "core" docs).
        source: which loader produced it.
    """

    id: str
    question: str
    answers: tuple[str, ...]
    documents: tuple[str, ...]
    source: str = "jsonl"

    def __post_init__(self) -> None:
        if not isinstance(self.question, str) or not self.question.strip():
            raise DataError(f"item {self.id!r}: empty question")
        if not self.answers or any(not isinstance(a, str) or not a.strip() for a in self.answers):
            raise DataError(f"item {self.id!r}: no answer (answers={list(self.answers)!r})")
        if not self.documents:
            raise DataError(f"item {self.id!r}: no documents")

    def to_json(self) -> dict[str, Any]:
        """The generic JSONL form."""
        return {"id": self.id, "question": self.question, "answers": list(self.answers),
                "documents": list(self.documents), "source": self.source}


def _doc(title: str, text: str) -> str:
    return f"{title}\n{text}"


def _read_json_list(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of QA items, got {type(data).__name__}")
    return data


def _get(rec: dict[str, Any], key: str, where: str) -> Any:
    if key not in rec:
        raise DataError(f"{where}: missing field {key!r}")
    return rec[key]


def _answers(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or any(not isinstance(a, str) or not a.strip() for a in value):
        raise DataError(f"{where}: no answer (got {value!r})")
    return tuple(value)


def _load_title_sentences(path: Path, source: str) -> list[QAItem]:
    """HotpotQA v1.1 and 2WikiMultihopQA share ``context = [[title, [sentence, ...]], ...]``."""
    items = []
    for n, rec in enumerate(_read_json_list(path)):
        where = f"{path} item {n} (id {rec.get('_id', '?')!r})" if isinstance(rec, dict) else f"{path} item {n}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: expected an object")
        ctx = _get(rec, "context", where)
        try:
            docs = tuple(_doc(t, "".join(sents)) for t, sents in ctx)
        except (TypeError, ValueError):
            raise DataError(f"{where}: context must be a list of [title, [sentences]]") from None
        items.append(QAItem(str(rec.get("_id", f"{path.name}#{n}")), _get(rec, "question", where),
                            _answers(_get(rec, "answer", where), where), docs, source))
    return items


def load_hotpotqa(path: Path) -> list[QAItem]:
    """HotpotQA ``hotpot_train_v1.1.json``: a JSON list of {_id, question, answer, context, ...}."""
    return _load_title_sentences(path, "hotpotqa")


def load_2wikimqa(path: Path) -> list[QAItem]:
    """2WikiMultihopQA ``train.json``: HotpotQA's layout plus ``evidences``."""
    return _load_title_sentences(path, "2wikimqa")


def load_musique(path: Path) -> list[QAItem]:
    """MuSiQue ``musique_full_v1.0_train.jsonl``; unanswerable items are dropped (as the official reader does)."""
    items = []
    for n, rec in enumerate(iter_jsonl(path), 1):
        where = f"{path}:{n} (id {rec.get('id', '?')!r})"
        if not rec.get("answerable", True):
            continue
        paras = _get(rec, "paragraphs", where)
        try:
            docs = tuple(_doc(p["title"], p["paragraph_text"]) for p in paras)
        except (TypeError, KeyError):
            raise DataError(f"{where}: paragraphs must be objects with title and paragraph_text") from None
        items.append(QAItem(str(rec.get("id", f"{path.name}#{n}")), _get(rec, "question", where),
                            _answers(_get(rec, "answer", where), where), docs, "musique"))
    return items


def load_jsonl(path: Path) -> list[QAItem]:
    """Generic JSONL (see module docstring)."""
    items = []
    for n, rec in enumerate(iter_jsonl(path), 1):
        where = f"{path}:{n} (id {rec.get('id', '?')!r})"
        question = rec.get("question", rec.get("input"))
        if question is None:
            raise DataError(f"{where}: missing field 'question' (or 'input')")
        answers = rec.get("answers", rec.get("answer"))
        docs = []
        if "documents" not in rec and "docs" in rec:  # builtin:multihop_qa spells it "docs"
            rec = {**rec, "documents": rec["docs"]}
        for d in _get(rec, "documents", where):
            if isinstance(d, str):
                docs.append(d)
            elif isinstance(d, dict) and "title" in d and "text" in d:
                docs.append(_doc(d["title"], d["text"]))
            else:
                raise DataError(f"{where}: a document must be a string or an object with title and text")
        items.append(QAItem(str(rec.get("id", f"{path.name}#{n}")), question, _answers(answers, where),
                            tuple(docs), str(rec.get("source", "jsonl"))))
    return items


LOADERS = {"hotpotqa": load_hotpotqa, "musique": load_musique, "2wikimqa": load_2wikimqa, "jsonl": load_jsonl}


def _first_record(path: Path) -> dict[str, Any] | None:
    with path.open(encoding="utf-8") as f:
        head = f.read(1)
        f.seek(0)
        if head == "[":  # JSON list: parse the whole file (the published HotpotQA/2Wiki files are single lists)
            try:
                data = json.load(f)
            except json.JSONDecodeError:
                return None
            return data[0] if data and isinstance(data, list) and isinstance(data[0], dict) else None
        for line in f:
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return rec if isinstance(rec, dict) else None
    return None


def detect_format(path: str | Path) -> str:
    """Tell the published format of a QA file from its first record's keys.

    Raises:
        DataError: the file is none of the known formats (the message names the file and lists them).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"QA file not found: {p}")
    rec = _first_record(p) or {}
    keys = set(rec)
    if {"paragraphs", "question", "answer"} <= keys:
        return "musique"
    if {"context", "question", "answer"} <= keys and isinstance(rec.get("context"), list):
        return "2wikimqa" if "evidences" in keys or "entity_ids" in keys else "hotpotqa"
    if ({"documents", "docs"} & keys) and ({"question", "input"} & keys):
        return "jsonl"
    raise DataError(
        f"{p}: unknown QA format (first record keys {sorted(keys)}); expected one of "
        f"{sorted(LOADERS)}: HotpotQA/2WikiMQA json lists with context/question/answer, MuSiQue jsonl with "
        "paragraphs, or loongrl JSONL with question/answers/documents"
    )


def _resolve_qa_path(path: str | Path) -> Path:
    """``builtin:<name>`` -> its ``train.jsonl``; a directory -> its ``train.jsonl``; else the path itself."""
    from rlcore.builtins import resolve

    p = Path(resolve(str(path)))
    if p.is_dir() and (p / "train.jsonl").is_file():
        p = p / "train.jsonl"
    if not p.is_file():
        raise FileNotFoundError(f"QA file not found: {path}")
    return p


def load_qa(path: str | Path, format: str = "auto") -> list[QAItem]:
    """Load a seed QA file into :class:`QAItem` records.

    ``path`` may be ``builtin:multihop_qa`` (its ``train.jsonl``) or a directory holding a ``train.jsonl``.

    Raises:
        FileNotFoundError: no such file.
        DataError: unknown format, or a bad record (file, line/item and id named).
    """
    p = _resolve_qa_path(path)
    fmt = detect_format(p) if format == "auto" else format
    if fmt not in LOADERS:
        raise DataError(f"{p}: unknown QA format {fmt!r}; choose from {['auto', *sorted(LOADERS)]}")
    items = LOADERS[fmt](p)
    if not items:
        raise DataError(f"{p}: no usable QA items")
    return items


def save_qa(path: str | Path, items: Iterable[QAItem]) -> int:
    """Write items in the generic JSONL format; returns the count."""
    return write_jsonl(path, (it.to_json() for it in items))


class DocPool:
    """The global deduplicated document pool (sorted, as the official readers build it) with an index map."""

    def __init__(self, items: Sequence[QAItem]):
        self.docs: list[str] = sorted({d for it in items for d in it.documents})
        self.index: dict[str, int] = {d: i for i, d in enumerate(self.docs)}

    def __len__(self) -> int:
        return len(self.docs)

    def ids(self, item: QAItem) -> list[int]:
        """Pool indices of an item's own documents (deduplicated, in order)."""
        return list(dict.fromkeys(self.index[d] for d in item.documents))


# --- tiny synthetic multi-hop fixture (tests, demo, bench): real 2-hop questions over made-up entities ---
_SYL = ["ka", "lo", "mi", "ra", "ten", "vo", "su", "bel", "dor", "an", "qui", "zar", "pe", "fin", "gor", "ul"]
_FACTS = ["was founded in the year {n}", "is known for its {w} festival", "borders the {w} river",
          "has a population of {n} people", "is famous for {w} pottery", "hosted the {w} games in {n}"]


def _name(rng: random.Random, parts: int = 3) -> str:
    return "".join(rng.choice(_SYL) for _ in range(parts)).capitalize()


def make_synthetic_qa(n_items: int = 64, seed: int = 0, distractor_docs: int = 2, filler_sentences: int = 4) -> list[QAItem]:
    """A deterministic 2-hop QA set: "In which country was <person> born?" needs the person doc then the city doc.

    Each item has 2 supporting documents and ``distractor_docs`` unrelated ones; every sentence ends in ".", so
    contexts have plenty of KeyChain stoppers. Used for tests, the demo and the benchmark (no downloads).
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    rng = random.Random(seed)

    def sentences(subject: str) -> str:
        out = []
        for _ in range(filler_sentences):
            fact = rng.choice(_FACTS).format(n=rng.randint(100, 2000), w=_name(rng, 2).lower())
            out.append(f"{subject} {fact}.")
        return " ".join(out)

    items, seen = [], set()
    while len(items) < n_items:
        person, city, country = _name(rng, 3), _name(rng, 2), _name(rng, 3) + "ia"
        if person in seen:
            continue
        seen.add(person)
        d_person = _doc(person, f"{person} was born in {city}. {sentences(person)}")
        d_city = _doc(city, f"{city} is a city in {country}. {sentences(city)}")
        extra = []
        for _ in range(distractor_docs):
            other = _name(rng, 3)
            extra.append(_doc(other, f"{other} was born in {_name(rng, 2)}. {sentences(other)}"))
        docs = [d_person, d_city, *extra]
        rng.shuffle(docs)
        items.append(QAItem(f"syn-{seed}-{len(items)}", f"In which country was {person} born?", (country,),
                            tuple(docs), "synthetic"))
    return items
