r"""Chat-template helpers shared by the packages that prompt chat models (torch-free).

Some templates have no system turn (``builtin:tiny-reasoner``'s, Gemma's): they drop it or raise. Prompting such a
model with a system prompt folds the system text into the first user turn (``system + "\n\n" + user``), and
callers can report that they did. :func:`rlcore.rollout.encode_prompts` applies this to every ``messages=`` prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["template_supports_system", "fold_system", "fit_messages", "render_chat"]

_SYSTEM_SUPPORT: dict[int, bool] = {}


def template_supports_system(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template renders a system turn (probed once per tokenizer with a marker).

    A tokenizer without a chat template has no system turn either.
    """
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return False
    key = id(tokenizer)
    if key not in _SYSTEM_SUPPORT:
        probe = [{"role": "system", "content": "RLCORE-SYSTEM-PROBE"}, {"role": "user", "content": "u"}]
        try:
            text = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
            _SYSTEM_SUPPORT[key] = isinstance(text, str) and "RLCORE-SYSTEM-PROBE" in text
        except Exception:  # noqa: BLE001 - a template that raises on a system turn (jinja raise_exception) has none
            _SYSTEM_SUPPORT[key] = False
    return _SYSTEM_SUPPORT[key]


def fold_system(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    r"""Merge the system messages into the first user message (``system\n\nuser``); copies, never mutates.

    Example:
        >>> fold_system([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
        [{'role': 'user', 'content': 'S\n\nU'}]
        >>> fold_system([{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"}])
        [{'role': 'user', 'content': 'S'}, {'role': 'assistant', 'content': 'A'}]
    """
    msgs = [dict(m) for m in messages]
    system = [m["content"] for m in msgs if m.get("role") == "system"]
    rest = [m for m in msgs if m.get("role") != "system"]
    if not system:
        return rest
    if rest and rest[0].get("role") == "user":
        rest[0]["content"] = "\n\n".join([*system, rest[0]["content"]])
        return rest
    return [{"role": "user", "content": "\n\n".join(system)}, *rest]


def fit_messages(messages: Sequence[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """``messages`` as the tokenizer's chat template accepts them: the system turn folded in if the template lacks one."""
    msgs = [dict(m) for m in messages]
    if any(m.get("role") == "system" for m in msgs) and not template_supports_system(tokenizer):
        return fold_system(msgs)
    return msgs


def render_chat(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> tuple[str, bool]:
    """The generation prompt text and whether the system prompt had to be folded into the user turn.

    A tokenizer without a chat template gets the (folded) message contents joined by blank lines.
    """
    folded = any(m.get("role") == "system" for m in messages) and not template_supports_system(tokenizer)
    fitted = fold_system(messages) if folded else [dict(m) for m in messages]
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return "\n\n".join(m["content"] for m in fitted), folded
    return tokenizer.apply_chat_template(fitted, tokenize=False, add_generation_prompt=True), folded
