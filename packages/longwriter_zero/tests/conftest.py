import json

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread; on a shared 2-core box more threads contend (10-30x slower)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory):
    from rlcore.testing import save_tiny_causal_lm

    return save_tiny_causal_lm(tmp_path_factory.mktemp("policy"))


@pytest.fixture(scope="session")
def tiny_rm(tmp_path_factory):
    """A random-init tiny Qwen2 sequence-classification RM (1 label) saved with its tokenizer."""
    import torch
    from rlcore.testing import tiny_qwen2_config, tiny_tokenizer
    from transformers import Qwen2ForSequenceClassification

    tok = tiny_tokenizer()
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("rm")
    Qwen2ForSequenceClassification(tiny_qwen2_config(tok, num_labels=1)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture
def prompts_jsonl(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [("Write a story about the sea.", [5, 10]), ("写一篇关于大海的文章", [5, 10]), ("Write a poem", [0, 0]),
            ("Write 8 words", [7, 9])]
    path.write_text("".join(json.dumps({"question": q, "length_range": r}, ensure_ascii=False) + "\n" for q, r in rows),
                    encoding="utf-8")
    return str(path)
