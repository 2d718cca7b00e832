"""Long-context filling: pad an item's own documents with filler documents up to a token budget (spec step 2).

The official script re-tokenises the whole rendered context after each step of 10 documents. Here every document,
passage header and separator is tokenised once (cached per pool index) and the running total is a sum, so growing
a 128K context costs one pass over its documents plus one exact check of the final text (dropping ``doc_step``
fillers while that check fails, as the official per-sample loop does).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

from .data import DocPool, QAItem

__all__ = ["TokenCounter", "FilledContext", "compute_gaussian_slots", "render_context", "fill_context"]


class TokenCounter:
    """Counts tokens with an HF tokenizer, caching per-document and per-header counts."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self._docs: dict[int, int] = {}
        self._text: dict[str, int] = {}
        self.tokenised_chars = 0  # work done, for the benchmark

    def count(self, text: str) -> int:
        """Exact token count of ``text`` (no special tokens)."""
        self.tokenised_chars += len(text)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_cached(self, text: str) -> int:
        """Token count of a short repeated string (headers, separators)."""
        if text not in self._text:
            self._text[text] = self.count(text)
        return self._text[text]

    def doc_counts(self, pool: DocPool, ids: Sequence[int]) -> list[int]:
        """Token counts of pool documents, tokenising only the ones not seen before (one batched call)."""
        missing = [i for i in dict.fromkeys(ids) if i not in self._docs]
        if missing:
            texts = [pool.docs[i] for i in missing]
            self.tokenised_chars += sum(map(len, texts))
            enc = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            self._docs.update({i: len(e) for i, e in zip(missing, enc)})
        return [self._docs[i] for i in ids]


@dataclasses.dataclass
class FilledContext:
    """A filled context: the text, the pool ids in order, where the item's own docs sit, and its token count."""

    text: str
    doc_ids: list[int]
    core_slots: list[int]
    num_tokens: int


def compute_gaussian_slots(num_core: int, num_docs: int, rng: random.Random, sigma: float = 0.30) -> list[int]:
    r"""Slots for the core documents, concentrated around the middle of the context (KeyChain "core_gaussian").

    For each core doc: :math:`x \sim \mathcal{N}(0, \sigma)`, clamped to :math:`[-0.95, 0.95]`, slot
    :math:`= \lfloor (x + 0.95) / 1.9 \cdot (N - 1) \rfloor`. A taken slot is redrawn (at most ``50 * num_core``
    draws in all), after which the remaining core docs take random free slots.

    Example:
        >>> compute_gaussian_slots(1, 1, random.Random(0))
        [0]
    """
    if num_core > num_docs:
        raise ValueError(f"num_core={num_core} exceeds num_docs={num_docs}")
    slots: list[int] = []
    taken: set[int] = set()
    tries = 0
    while len(slots) < num_core and tries < 50 * num_core:
        tries += 1
        x = min(max(rng.gauss(0.0, sigma), -0.95), 0.95)
        s = int((x + 0.95) / 1.9 * (num_docs - 1))
        if s not in taken:
            taken.add(s)
            slots.append(s)
    if len(slots) < num_core:
        free = [s for s in range(num_docs) if s not in taken]
        slots += rng.sample(free, num_core - len(slots))
    return slots


def render_context(docs: Sequence[str], template: str = "Passage {i}:\n{document}") -> str:
    """Join documents as ``template`` (1-based ``i``) with blank lines between them."""
    return "\n\n".join(template.format(i=i + 1, document=d) for i, d in enumerate(docs))


def _arrange(core: list[int], fillers: list[int], rng: random.Random, sigma: float) -> tuple[list[int], list[int]]:
    n = len(core) + len(fillers)
    slots = compute_gaussian_slots(len(core), n, rng, sigma)
    order: list[int | None] = [None] * n
    for s, d in zip(slots, core):
        order[s] = d
    rest = list(fillers)
    rng.shuffle(rest)
    it = iter(rest)
    return [d if d is not None else next(it) for d in order], slots


def _estimate(counter: TokenCounter, doc_tokens: int, n_docs: int, template: str) -> int:
    headers = sum(counter.count_cached(template.format(i=i + 1, document="")) for i in range(n_docs))
    return doc_tokens + headers + max(n_docs - 1, 0) * counter.count_cached("\n\n")


def fill_context(item: QAItem, pool: DocPool, counter: TokenCounter, max_seq_length: int, seed: int,
                 reserve_tokens: int = 128, doc_step: int = 10, sigma: float = 0.30,
                 template: str = "Passage {i}:\n{document}") -> FilledContext:
    """Fill ``item``'s context with pool fillers to the largest multiple of ``doc_step`` docs that fits.

    Fits means ``tokens(context) + tokens(" " + answer) + reserve_tokens < max_seq_length`` (official growth rule).
    Fillers are drawn uniformly without replacement from the pool minus the item's own docs.

    Raises:
        ValueError: the item's own documents alone do not fit (the message names the item).
    """
    rng = random.Random(f"{seed}:{item.id}")
    core = pool.ids(item)
    budget = max_seq_length - reserve_tokens - counter.count(" " + item.answers[0])
    core_tokens = sum(counter.doc_counts(pool, core))
    if _estimate(counter, core_tokens, len(core), template) >= budget:
        raise ValueError(
            f"item {item.id!r}: its own {len(core)} documents need "
            f"{_estimate(counter, core_tokens, len(core), template)} tokens, more than the budget {budget} "
            f"(max_seq_length={max_seq_length}, reserve_tokens={reserve_tokens}); raise max_seq_length"
        )
    core_set = set(core)
    available = len(pool) - len(core)
    fillers: list[int] = []
    seen: set[int] = set()
    doc_tokens = core_tokens  # running sum: each document is tokenised once
    headers = sum(counter.count_cached(template.format(i=i + 1, document="")) for i in range(len(core)))
    sep = counter.count_cached("\n\n")
    target_n = -(-len(core) // doc_step) * doc_step  # first multiple of doc_step holding the core docs
    best = 0  # fillers in the last count that fitted
    while True:
        want = min(target_n - len(core), available)
        start = len(fillers)
        while len(fillers) < want:  # draw this step's new fillers
            d = rng.randrange(len(pool))
            if d not in core_set and d not in seen:
                seen.add(d)
                fillers.append(d)
        doc_tokens += sum(counter.doc_counts(pool, fillers[start:]))
        n = len(core) + len(fillers)
        headers += sum(counter.count_cached(template.format(i=i + 1, document="")) for i in range(n - len(fillers) + start, n))
        if doc_tokens + headers + (n - 1) * sep >= budget:
            break
        best = len(fillers)
        if want == available:
            break
        target_n += doc_step
    fillers = fillers[:best]
    while True:  # exact check of the rendered text; back off doc_step fillers while too long
        order, slots = _arrange(core, fillers, random.Random(f"{seed}:{item.id}:place"), sigma)
        text = render_context([pool.docs[d] for d in order], template)
        n_tokens = counter.count(text)
        if n_tokens < budget:
            return FilledContext(text, order, sorted(slots), n_tokens)
        if not fillers:
            raise ValueError(f"item {item.id!r}: its own documents need {n_tokens} tokens, more than the budget "
                             f"{budget} (max_seq_length={max_seq_length}); raise max_seq_length")
        fillers = fillers[: max(0, len(fillers) - doc_step)]
