"""The prompt texts of the LoongRL preprocessing (spec "Prompt"), as one user message plus an optional system one."""

from __future__ import annotations

from typing import Any

__all__ = ["keychain_prompt", "multihop_prompt", "to_messages", "FILTER_PROMPT"]

KEYCHAIN_INSTRUCTION = (
    "\n\nIn the context above, there is one correct question to answer. The correct question can only be found by "
    "following the correct consecutive chain of key:value pairs encoded with UUID strings (e.g., "
    "f81d4fae-7dec-11d0-a765-00a0c91e6bf6), starting from {head}."
)
ONE_LINE_SUFFIX = "\nFind the correct question first, then answer it."

# The difficulty-filter prompt of KeyChain filter_question/filter_infer.py (spec step 1); the answer is read
# after "the answer is".
FILTER_PROMPT = (
    "The following are given passages.\n{context}\n\nAnswer the question based on the given passages. Please think "
    "step by step and give the final answer at the end in the form 'The answer is <your answer here>'.\n\n"
    "Question: {input}"
)


def keychain_prompt(distractor_context: str, head: str, variant: str = "plain", quote_head: bool = False) -> str:
    """The KeyChain user prompt; ``variant="1line"`` appends the "Find the correct question first" line.

    Example:
        >>> keychain_prompt("ctx.", "ab12cd34").endswith("starting from ab12cd34.")
        True
    """
    if variant not in ("plain", "1line"):
        raise ValueError(f"variant must be 'plain' or '1line', got {variant!r}")
    shown = f'"{head}"' if quote_head else head
    text = "Please read the following text.\n" + distractor_context + KEYCHAIN_INSTRUCTION.format(head=shown)
    return text + (ONE_LINE_SUFFIX if variant == "1line" else "")


def multihop_prompt(context: str, question: str) -> str:
    r"""The plain multi-hop prompt (non-KeyChain items, LongBench-style evaluation).

    Example:
        >>> multihop_prompt("P", "Q?")
        'The following are given passages.\nP\n\nQuestion: Q?'
    """
    return f"The following are given passages.\n{context}\n\nQuestion: {question}"


def to_messages(user: str, system: str | None = None) -> list[dict[str, Any]]:
    """Chat messages for a user prompt (a system message first when ``system`` is non-empty)."""
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": user}]
