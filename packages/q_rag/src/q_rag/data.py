"""Unified retrieval samples ``{id, question, answer, chunks, sf_idx}`` and dataset loaders (spec: "Data").

Loaders are registered by name (``get_loader``); each returns validated :class:`Sample` lists. Chunking follows the
official code: HotpotQA/2Wiki paragraph = ``title + " " + sentences``; MuSiQue = ``title + ". " + paragraph_text``;
RULER NIAH = one regex-split sentence per chunk, last sentence = question.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from rlcore.io import DataError, iter_jsonl, write_jsonl

__all__ = [
    "Sample", "validate_sample", "read_samples", "write_samples", "LOADERS", "register_loader", "get_loader",
    "load_hotpotqa", "load_musique", "load_ruler_niah", "split_sentences", "approx_tokens",
]


@dataclasses.dataclass
class Sample:
    """One retrieval problem: a document of ``chunks``, a ``question``, its ``answer`` and support-fact indices."""

    id: str
    question: str
    answer: str
    chunks: list[str]
    sf_idx: list[int]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def validate_sample(s: Sample, where: str = "sample") -> Sample:
    """Check a sample; raises ``DataError`` naming ``where`` (file:line or record id) and the problem."""
    if not isinstance(s.question, str) or not s.question.strip():
        raise DataError(f"{where}: empty question")
    if not s.chunks:
        raise DataError(f"{where}: question {s.question[:60]!r} has no chunks")
    if not all(isinstance(c, str) for c in s.chunks):
        raise DataError(f"{where}: every chunk must be a string")
    bad = [i for i in s.sf_idx if not isinstance(i, int) or not 0 <= i < len(s.chunks)]
    if bad:
        raise DataError(f"{where}: sf_idx {bad} out of range for {len(s.chunks)} chunks")
    return s


def read_samples(path: str | Path) -> list[Sample]:
    """Read a unified JSONL file (one sample per line); errors name ``file:line``."""
    out = []
    required = ("question", "chunks", "sf_idx")
    for line_no, rec in enumerate(iter_jsonl(path, required=required), start=1):
        s = Sample(id=str(rec.get("id", line_no)), question=rec["question"], answer=str(rec.get("answer", "")),
                   chunks=list(rec["chunks"]), sf_idx=list(rec["sf_idx"]))
        out.append(validate_sample(s, f"{path}:{line_no}"))
    if not out:
        raise DataError(f"{path}: no samples")
    return out


def write_samples(path: str | Path, samples: Iterable[Sample]) -> None:
    """Write samples as unified JSONL."""
    write_jsonl(path, [s.to_dict() for s in samples])


LOADERS: dict[str, Callable[[str | Path], list[Sample]]] = {"jsonl": read_samples}


def register_loader(name: str):
    """Register ``fn(path) -> list[Sample]`` under ``name``."""

    def deco(fn):
        if name in LOADERS and LOADERS[name] is not fn:
            raise ValueError(f"loader {name!r} is already registered")
        LOADERS[name] = fn
        return fn

    return deco


def get_loader(name: str) -> Callable[[str | Path], list[Sample]]:
    """The loader registered as ``name``; raises ``ValueError`` listing the valid names."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset format {name!r}; valid: {sorted(LOADERS)}")
    return LOADERS[name]


def _read_json_or_jsonl(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"dataset file not found: {p}")
    text = p.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{p}: invalid JSON ({e})") from e
    return list(iter_jsonl(p))


@register_loader("hotpotqa")
def load_hotpotqa(path: str | Path) -> list[Sample]:
    """HotpotQA/2Wiki distractor JSON: chunk = ``title + " " + "".join(sentences)``; SF = supporting titles."""
    out = []
    for i, rec in enumerate(_read_json_or_jsonl(path)):
        where = f"{path}: record {i} ({rec.get('_id', '?')})"
        try:
            context, sfs = rec["context"], rec["supporting_facts"]
            titles = [t for t, _ in context]
            chunks = [t + " " + "".join(sents) for t, sents in context]
            sf_titles = {t for t, _ in sfs}
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{where}: malformed HotpotQA record ({e!r})") from e
        sf = [j for j, t in enumerate(titles) if t in sf_titles]
        out.append(validate_sample(Sample(str(rec.get("_id", i)), rec.get("question", ""), str(rec.get("answer", "")),
                                          chunks, sf), where))
    return out


@register_loader("musique")
def load_musique(path: str | Path) -> list[Sample]:
    """MuSiQue JSONL: chunk = ``title + ". " + paragraph_text``; SF = ``question_decomposition[*].paragraph_support_idx``."""
    out = []
    for i, rec in enumerate(_read_json_or_jsonl(path)):
        where = f"{path}: record {i} ({rec.get('id', '?')})"
        try:
            paras = rec["paragraphs"]
            chunks = [p["title"] + ". " + p["paragraph_text"] for p in paras]
            sf = sorted({int(d["paragraph_support_idx"]) for d in rec["question_decomposition"]
                         if d.get("paragraph_support_idx") is not None})
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"{where}: malformed MuSiQue record ({e!r})") from e
        out.append(validate_sample(Sample(str(rec.get("id", i)), rec.get("question", ""), str(rec.get("answer", "")),
                                          chunks, sf), where))
    return out


_SENT_RE = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """Regex sentence splitter (split after ``.``, ``!`` or ``?`` followed by whitespace); drops empty pieces."""
    return [s.strip() for s in _SENT_RE.split(text) if s.strip()]


@register_loader("ruler")
def load_ruler_niah(path: str | Path) -> list[Sample]:
    """RULER NIAH JSONL (``input``, ``outputs``).

    One regex-split sentence per chunk, last sentence = question, SF = sentences containing any expected output.
    """
    out = []
    for i, rec in enumerate(iter_jsonl(path, required=("input", "outputs"))):
        sents = split_sentences(rec["input"])
        if len(sents) < 2:
            raise DataError(f"{path}:{i + 1}: input has no sentences besides the question")
        question, chunks = sents[-1], sents[:-1]
        outputs = [str(o) for o in rec["outputs"]]
        sf = [j for j, c in enumerate(chunks) if any(o in c for o in outputs)]
        out.append(validate_sample(Sample(str(rec.get("index", i)), question, ", ".join(outputs), chunks, sf),
                                   f"{path}:{i + 1}"))
    return out


def approx_tokens(text: str) -> int:
    """A tokenizer-free token estimate: ``ceil(1.3 * words)`` (close to BPE counts on English prose)."""
    return -(-13 * len(text.split()) // 10)
