from types import SimpleNamespace

import pytest
from p_genrm.evaluation_chain import render_chain


class ScriptedGenerator:
    """A Generator whose chains come from a queue of texts (then a default), recording every call."""

    device = "cpu"
    tokenizer = None

    def __init__(self, texts=(), default=None):
        self.queue = list(texts)
        self.default = default if default is not None else render_chain("likes brevity", [("brevity", 100, 7, 4)])
        self.calls = []
        self.prompts = []

    def generate(self, prompts=None, params=None, generator=None, prompt_ids=None):
        self.calls.append((len(prompts), params.n))
        self.prompts.append(list(prompts))
        out = []
        for i, _ in enumerate(prompts):
            out.append([SimpleNamespace(prompt_index=i, text=self.queue.pop(0) if self.queue else self.default)
                        for _ in range(params.n)])
        return out


@pytest.fixture
def scripted():
    return ScriptedGenerator
