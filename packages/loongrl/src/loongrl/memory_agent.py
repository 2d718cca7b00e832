"""Memory-agent inference past the context window (``loongrl eval --mode memory-agent``; MemAgent, arXiv 2507.02259).

The document is cut into segments that fit the window; after each segment the model *overwrites* a bounded memory
(its reply is the new memory, at most ``memory_tokens`` tokens: the generation budget bounds it); the answer comes
from the final memory. Every step prompt repeats the problem, so the KeyChain structure survives segmentation: the
chain head (and, once found, the question) is in every step, never only in the first segment.

Segments never cut a KeyChain pair ``{"k": "v"}`` or a sentence: the context is split into units after ``.``, ``?``
or newline (outside pairs) and units are packed greedily by token count; a unit longer than a segment is cut by
tokens. ``passes > 1`` re-reads the document with the memory carried over: KeyChain links are shuffled (the link
a->b may come after b->c), a pointer-chasing task that no bounded single-pass memory solves in general.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from .generation import render_chat

__all__ = ["MEMORY_PROMPT", "ANSWER_PROMPT", "keychain_problem", "split_units", "make_segments", "MemoryAgent",
           "memory_from_response"]

MEMORY_PROMPT = "Problem: {problem}\nMemory:\n{memory}\nText:\n{segment}\nUpdate the memory (reply with it only)."
ANSWER_PROMPT = "Problem: {problem}\nMemory:\n{memory}\nSolve the problem from the memory."
KEYCHAIN_PROBLEM_COMPACT = "Chain from {head}: find the question at its end, answer it."
_PAIR = re.compile(r'\{"[^"\n{}]*": "[^"\n{}]*"\}')
_BREAK = re.compile(r"[.?\n]\s*")


def keychain_problem(head: str, full: bool = True) -> str:
    """The KeyChain task for memory steps: the official instruction (``full``) or a compact one naming the head."""
    from .prompts import KEYCHAIN_INSTRUCTION

    if full:
        return KEYCHAIN_INSTRUCTION.format(head=head).strip().replace("In the context above", "In the document")
    return KEYCHAIN_PROBLEM_COMPACT.format(head=head)


def split_units(text: str) -> list[str]:
    """Cut ``text`` after each ``.``/``?``/newline (plus whitespace) that is not inside a KeyChain pair.

    The units concatenate back to ``text`` exactly. Linear time.

    Example:
        >>> split_units('A b. {"k1": "Who? x."}. C')
        ['A b. ', '{"k1": "Who? x."}. ', 'C']
    """
    spans = [(m.start(), m.end()) for m in _PAIR.finditer(text)]
    units, start, k = [], 0, 0
    for m in _BREAK.finditer(text):
        while k < len(spans) and spans[k][1] <= m.start():
            k += 1
        if k < len(spans) and spans[k][0] <= m.start() < spans[k][1]:
            continue  # a stopper inside a pair
        units.append(text[start: m.end()])
        start = m.end()
    if start < len(text):
        units.append(text[start:])
    return units


def make_segments(text: str, tokenizer: Any, budget: int) -> list[str]:
    """Pack units of ``text`` greedily into segments of at most ``budget`` tokens (counted per unit).

    a unit over the budget is cut into ``budget``-token pieces. Segments concatenate back to ``text`` (up to
    such cuts).
    """
    if budget < 1:
        raise ValueError(f"segment budget must be >= 1 token, got {budget}")
    units = split_units(text)
    if not units:
        return []
    counts = [len(x) for x in tokenizer(units, add_special_tokens=False)["input_ids"]]
    segs: list[str] = []
    cur, used = [], 0
    for u, c in zip(units, counts):
        if c > budget:
            if cur:
                segs.append("".join(cur))
                cur, used = [], 0
            ids = tokenizer(u, add_special_tokens=False)["input_ids"]
            segs += [tokenizer.decode(ids[i: i + budget]) for i in range(0, len(ids), budget)]
            continue
        if used + c > budget and cur:
            segs.append("".join(cur))
            cur, used = [], 0
        cur.append(u)
        used += c
    if cur:
        segs.append("".join(cur))
    return segs


def memory_from_response(text: str) -> str:
    """The new memory: the reply after its last ``</think>`` (reasoning models), stripped."""
    if not isinstance(text, str):
        return ""
    return text.rsplit("</think>", 1)[-1].strip()


@dataclasses.dataclass
class MemoryAgent:
    """Run the read-segment / overwrite-memory loop for a batch of documents, then answer from the memory.

    Args:
        sampler: a :class:`~loongrl.generation.ChatSampler` (or anything with ``sample(prompts, n,
            max_new_tokens=)`` and a ``tokenizer``).
        window: the model's context window in tokens.
        memory_tokens: the memory bound = the generation budget of each memory step.
        answer_tokens: the generation budget of the final answer step.
        passes: at most this many reads of the whole document (1 = MemAgent); a document whose memory a whole
            pass left unchanged is not read again.
        system: system prompt of the answer step (``None``: none).
        fit_memory: shrink ``memory_tokens`` (never below 8) when it would leave segments under an eighth of the
            window (``notes`` says so); the CLI turns it on so tiny windows work with the default 1024.
    """

    sampler: Any
    window: int
    memory_tokens: int = 1024
    answer_tokens: int = 1024
    passes: int = 1
    system: str | None = None
    initial_memory: str = "(empty)"
    fit_memory: bool = False
    notes: list[str] = dataclasses.field(default_factory=list)

    def overhead(self, problem: str) -> int:
        """Tokens of a memory-step prompt with an empty segment and an empty memory."""
        tok = self.sampler.tokenizer
        text, _ = render_chat(tok, [{"role": "user", "content": MEMORY_PROMPT.format(
            problem=problem, memory="", segment="")}])
        return len(tok(text, add_special_tokens=False)["input_ids"])

    def problem_for(self, doc: dict[str, Any]) -> str:
        """The doc's ``problem``, or its ``problem_short`` if the full one leaves < window/4 for segments.

        E.g. the 214-token KeyChain instruction in a 256-token window.
        """
        short = doc.get("problem_short")
        if short and self.window - 2 * self.memory_tokens - self.overhead(doc["problem"]) < self.window // 4:
            return short
        return doc["problem"]

    def segment_budget(self, problem: str) -> int:
        """Segment tokens that fit: window - memory in - memory out - prompt overhead - 8 slack.

        Raises:
            ValueError: fewer than 16 tokens are left (the message gives the numbers).
        """
        over = self.overhead(problem)
        budget = self.window - 2 * self.memory_tokens - over - 8
        if budget < 16:
            raise ValueError(f"memory agent: window {self.window} leaves {budget} tokens per segment (memory "
                             f"{self.memory_tokens} in + {self.memory_tokens} out, prompt {over}); lower "
                             "memory_tokens or use a model with a longer window")
        return budget

    def _step_messages(self, problem: str, memory: str, segment: str) -> list[dict[str, Any]]:
        return [{"role": "user", "content": MEMORY_PROMPT.format(problem=problem, memory=memory, segment=segment)}]

    def _answer_messages(self, problem: str, memory: str) -> list[dict[str, Any]]:
        msgs = [{"role": "system", "content": self.system}] if self.system else []
        return msgs + [{"role": "user", "content": ANSWER_PROMPT.format(problem=problem, memory=memory)}]

    def run(self, docs: Sequence[dict[str, Any]], trace: bool = False) -> list[dict[str, Any]]:
        """``docs``: ``{"context", "problem"[, "problem_short"]}`` dicts.

        Returns per doc ``{"response", "memory", "segments", "steps"}`` (+ ``"trace"``: the memory after each
        step, when ``trace``).
        """
        tok = self.sampler.tokenizer
        problems = [self.problem_for(d) for d in docs]
        if self.fit_memory and problems:
            over = max(self.overhead(p) for p in set(problems))
            fit = (self.window - over - 8 - max(16, self.window // 8)) // 2
            if 8 <= fit < self.memory_tokens:
                self.notes.append(f"memory_tokens {self.memory_tokens} lowered to {fit} so segments get at least "
                                  f"{max(16, self.window // 8)} of the {self.window}-token window")
                self.memory_tokens = fit
        segs = [make_segments(d["context"], tok, self.segment_budget(p)) for d, p in zip(docs, problems)]
        memory = [self.initial_memory] * len(docs)
        traces: list[list[str]] = [[] for _ in docs]
        steps = [0] * len(docs)
        reading = set(range(len(docs)))
        for _ in range(self.passes):
            at_start = list(memory)
            for k in range(max((len(segs[i]) for i in reading), default=0)):
                live = [i for i in sorted(reading) if k < len(segs[i])]
                prompts = [self._step_messages(problems[i], memory[i], segs[i][k]) for i in live]
                outs = self.sampler.sample(prompts, 1, max_new_tokens=self.memory_tokens)
                for i, (text,) in zip(live, outs):
                    memory[i] = memory_from_response(text) or memory[i]
                    steps[i] += 1
                    if trace:
                        traces[i].append(memory[i])
            reading = {i for i in reading if memory[i] != at_start[i]}  # a pass that changed nothing ends it
            if not reading:
                break
        answers = self.sampler.sample([self._answer_messages(p, m) for p, m in zip(problems, memory)], 1,
                                      max_new_tokens=self.answer_tokens)
        out = []
        for i, (resp,) in enumerate(answers):
            rec = {"response": resp, "memory": memory[i], "segments": len(segs[i]), "steps": steps[i]}
            if trace:
                rec["trace"] = traces[i]
            out.append(rec)
        return out
