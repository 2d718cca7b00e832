"""BabiLong-style and RULER-NIAH-style long documents (spec: "Data").

A *story* (bAbI facts in order + question + answer + support-fact indices into the facts) is mixed into filler
sentences at random sorted positions until the document reaches a target token length; one sentence = one chunk.
Stories come from bAbI-format files (:func:`read_babi`) or the built-in generator (:func:`generate_story`), filler
from a text file (e.g. PG19 books) or the built-in generator (:func:`filler_sentences`).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path

from rlcore.io import DataError

from .data import Sample, approx_tokens, split_sentences, validate_sample

__all__ = ["Story", "TASKS", "generate_story", "read_babi", "filler_sentences", "read_filler",
           "build_babilong", "build_niah", "build_synthetic_dataset"]

PEOPLE = ["Mary", "John", "Sandra", "Daniel", "Fred", "Bill", "Julie", "Emma"]
PLACES = ["kitchen", "garden", "bedroom", "office", "hallway", "bathroom", "cellar", "park"]
OBJECTS = ["apple", "football", "milk", "book", "key", "box"]
MOVES = ["went to", "moved to", "travelled to", "journeyed to"]


@dataclasses.dataclass
class Story:
    """bAbI-style facts (in story order), a question, its answer and the indices of its support facts."""

    facts: list[str]
    question: str
    answer: str
    sf: list[int]


def _moves(rng: random.Random, people: list[str], n: int) -> list[tuple[str, str]]:
    return [(rng.choice(people), rng.choice(PLACES)) for _ in range(n)]


def generate_story(task: str, rng: random.Random, n_facts: int = 8) -> Story:
    """A synthetic bAbI-like story.

    Tasks: ``single`` (qa1: "Where is X?", 1 SF), ``two_hop`` (qa2: "Where is the O?" = holder's place, 2 SF),
    ``before`` (qa3-like "Where was X before the L?", 2 SF whose *order* matters).
    """
    if task not in TASKS:
        raise ValueError(f"unknown synthetic task {task!r}; valid: {sorted(TASKS)}")
    return TASKS[task](rng, max(n_facts, 4))


def _single(rng: random.Random, n: int) -> Story:
    facts, last = [], {}
    for who, where in _moves(rng, PEOPLE[:4], n):
        last[who] = len(facts)
        facts.append(f"{who} {rng.choice(MOVES)} the {where}.")
    who = rng.choice(sorted(last))
    return Story(facts, f"Where is {who}?", facts[last[who]].split()[-1].rstrip("."), [last[who]])


def _two_hop(rng: random.Random, n: int) -> Story:
    holder, obj = rng.choice(PEOPLE[:4]), rng.choice(OBJECTS)
    others = [p for p in PEOPLE[:4] if p != holder]
    facts, holder_moves, pick = [], [], rng.randrange(0, n // 2)
    for i in range(n):
        if i == pick:
            facts.append(f"{holder} picked up the {obj}.")
            continue
        first_after = i > pick and not any(m > pick for m in holder_moves)
        who = holder if first_after or rng.random() < 0.3 else rng.choice(others)
        if who == holder:
            holder_moves.append(len(facts))
        facts.append(f"{who} {rng.choice(MOVES)} the {rng.choice(PLACES)}.")
    last = holder_moves[-1]  # > pick: the holder always moves right after the pick-up
    return Story(facts, f"Where is the {obj}?", facts[last].split()[-1].rstrip("."), sorted([pick, last]))


def _before(rng: random.Random, n: int) -> Story:
    who = rng.choice(PEOPLE[:4])
    others = [p for p in PEOPLE[:4] if p != who]
    trail = rng.sample(PLACES, 3)  # distinct places, so "before the L" is unambiguous
    slots = sorted(rng.sample(range(n), 3))
    facts, idx = [], []
    for i in range(n):
        if i in slots:
            idx.append(len(facts))
            facts.append(f"{who} {rng.choice(MOVES)} the {trail[len(idx) - 1]}.")
        else:
            facts.append(f"{rng.choice(others)} {rng.choice(MOVES)} the {rng.choice(PLACES)}.")
    k = rng.choice([1, 2])
    return Story(facts, f"Where was {who} before the {trail[k]}?", trail[k - 1], sorted([idx[k - 1], idx[k]]))


TASKS = {"single": _single, "two_hop": _two_hop, "before": _before}


def read_babi(path: str | Path) -> list[Story]:
    r"""Parse a bAbI-format file (``ID text`` lines; question lines ``ID question\tanswer\tsupport ids``).

    Each question yields a story of every statement before it in its story (relative order kept).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"bAbI file not found: {p}")
    stories: list[Story] = []
    facts: list[str] = []
    line_to_fact: dict[int, int] = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        num, _, text = line.strip().partition(" ")
        if not num.isdigit():
            raise DataError(f"{p}:{n}: line does not start with a bAbI line id")
        if int(num) == 1:
            facts, line_to_fact = [], {}
        if "\t" in text:
            parts = text.split("\t")
            if len(parts) < 3:
                raise DataError(f"{p}:{n}: question line needs 'question<TAB>answer<TAB>support ids'")
            try:
                sf = [line_to_fact[int(x)] for x in parts[2].split()]
            except (KeyError, ValueError) as e:
                raise DataError(f"{p}:{n}: support id {e} is not an earlier statement") from e
            stories.append(Story(list(facts), parts[0].strip(), parts[1].strip(), sf))
        else:
            line_to_fact[int(num)] = len(facts)
            facts.append(text.strip())
    if not stories:
        raise DataError(f"{p}: no questions found")
    return stories


_SUBJ = ["The old sailor", "A quiet clerk", "The village doctor", "Her younger brother", "The tired horse",
         "An elderly woman", "The captain", "A travelling merchant", "The schoolmaster", "The miller"]
_VERB = ["watched", "remembered", "described", "ignored", "admired", "painted", "feared", "discussed"]
_OBJ = ["the grey sea", "a distant storm", "the long winter", "an empty road", "the morning bells",
        "a forgotten letter", "the crowded market", "the evening light", "a broken lantern", "the northern hills"]
_TAIL = ["for many years", "without a word", "with some surprise", "before the rain came", "in silence",
         "as the fire burned low", "while the others slept", "at the end of the day"]


def filler_sentences(rng: random.Random) -> Iterator[str]:
    """An endless stream of built-in prose-like filler sentences (no bAbI names or places).

    Two clauses of about 9 words each, ~24 tokens: close to PG19's ~25 tokens per sentence, so 40k sentences ~ 1M
    tokens as in the paper's BabiLong mapping.
    """
    def clause() -> str:
        return f"{rng.choice(_SUBJ)} {rng.choice(_VERB)} {rng.choice(_OBJ)} {rng.choice(_TAIL)}"

    while True:
        second = clause()
        yield f"{clause()}, and {second[0].lower()}{second[1:]}."


def read_filler(path: str | Path, rng: random.Random, max_run: int = 100) -> Iterator[str]:
    """Filler sentences from a text file (e.g. a PG19 book): random start, runs of up to ``max_run`` sentences."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"filler text not found: {p}")
    sents = split_sentences(p.read_text(encoding="utf-8"))
    if len(sents) < 2:
        raise DataError(f"{p}: filler text has fewer than 2 sentences")
    while True:
        start = rng.randrange(len(sents))
        yield from sents[start : start + max_run]


def build_babilong(story: Story, target_tokens: int, filler: Iterator[str], rng: random.Random,
                   sample_id: str = "0") -> Sample:
    """Insert ``story.facts`` (order kept) at random sorted positions among filler sentences.

    Filler is added until facts + filler reach ``target_tokens`` (:func:`approx_tokens`); SF indices are mapped
    to chunk indices.
    """
    if target_tokens <= 0:
        raise ValueError(f"target_tokens must be > 0, got {target_tokens}")
    budget = target_tokens - sum(approx_tokens(f) for f in story.facts)
    noise: list[str] = []
    while budget > 0:
        s = next(filler)
        noise.append(s)
        budget -= approx_tokens(s)
    n = len(noise) + len(story.facts)
    fact_pos = sorted(rng.sample(range(n), len(story.facts)))
    chunks: list[str] = []
    it = iter(noise)
    fp = set(fact_pos)
    f_iter = iter(story.facts)
    for i in range(n):
        chunks.append(next(f_iter) if i in fp else next(it))
    sf = sorted(fact_pos[j] for j in story.sf)
    return validate_sample(Sample(sample_id, story.question, story.answer, chunks, sf), f"story {sample_id}")


def build_niah(target_tokens: int, rng: random.Random, filler: Iterator[str], n_values: int = 4,
               n_distractors: int = 2, sample_id: str = "0") -> Sample:
    """RULER multi-value needle-in-a-haystack: ``n_values`` needles for one key among filler and distractor keys."""
    keys = rng.sample(["amber-lake", "silent-oak", "red-harbor", "iron-field", "blue-ridge", "cold-spring"],
                      1 + n_distractors)
    needles = [(keys[0], rng.randrange(10**6, 10**7)) for _ in range(n_values)]
    needles += [(k, rng.randrange(10**6, 10**7)) for k in keys[1:]]
    rng.shuffle(needles)
    facts = [f"One of the special magic numbers for {k} is: {v}." for k, v in needles]
    sf = [i for i, (k, _) in enumerate(needles) if k == keys[0]]
    answer = ", ".join(str(v) for k, v in needles if k == keys[0])
    story = Story(facts, f"What are all the special magic numbers for {keys[0]} mentioned in the text?", answer, sf)
    return build_babilong(story, target_tokens, filler, rng, sample_id)


def build_synthetic_dataset(task: str, n: int, target_tokens: int, seed: int = 0, n_facts: int = 8,
                            filler_path: str | Path | None = None) -> list[Sample]:
    """``n`` BabiLong-style samples of a synthetic ``task`` (or ``niah``) at ``target_tokens`` each."""
    rng = random.Random(seed)
    filler = read_filler(filler_path, rng) if filler_path else filler_sentences(rng)
    out = []
    for i in range(n):
        if task == "niah":
            out.append(build_niah(target_tokens, rng, filler, sample_id=f"niah-{i}"))
        else:
            out.append(build_babilong(generate_story(task, rng, n_facts), target_tokens, filler, rng, f"{task}-{i}"))
    return out
