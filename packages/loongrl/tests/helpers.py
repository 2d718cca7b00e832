"""Scripted samplers and tiny-data builders shared by the loongrl tests."""

from __future__ import annotations

from collections.abc import Callable


class ScriptedSampler:
    """A sampler whose responses come from ``fn(prompt_messages, sample_index)``."""

    def __init__(self, fn: Callable[[list[dict], int], str]):
        self.fn = fn
        self.calls = 0

    def sample(self, prompts, n):
        self.calls += 1
        return [[self.fn(p, i) for i in range(n)] for p in prompts]


def user_text(prompt) -> str:
    return prompt[-1]["content"]
