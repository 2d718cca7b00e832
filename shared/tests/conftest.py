"""Fixtures shared by the rollout tests: the in-process byte-level tokenizer and the tiny random Qwen2 on it."""

import pytest
from rlcore.testing import tiny_causal_lm, tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_causal_lm(tok)
