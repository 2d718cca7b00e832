import json

import pytest
from longwriter_zero.config import TrainRMConfig
from longwriter_zero.rm_training import load_pairs, train_reward_model


@pytest.fixture(scope="module")
def tiny_seqcls_base(tmp_path_factory):
    from rlcore.testing import save_tiny_causal_lm

    return save_tiny_causal_lm(tmp_path_factory.mktemp("rmbase"))


def _pairs(path, n=8):
    rows = [{"prompt": "Write about the sea.", "chosen": "The sea is wide and deep and blue.", "rejected": "sea sea sea"}
            for _ in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


# TRL's RewardTrainer builds its config through transformers' deprecated gradient_checkpointing alias (TRL 1.16).
@pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.* is deprecated:FutureWarning")
def test_train_rm_then_score(tiny_seqcls_base, tmp_path):
    from longwriter_zero.writing_reward import get_writing_reward

    cfg = TrainRMConfig(model=tiny_seqcls_base, input=_pairs(tmp_path / "pairs.jsonl"),
                        output_dir=str(tmp_path / "rm"), max_length=64, learning_rate=5e-3, max_steps=6,
                        per_device_train_batch_size=4, device="cpu")
    res = train_reward_model(cfg)
    assert res["pairs"] == 8 and res["pairs_used"] == 8 and res["final_loss"] < 0.6931  # below chance: log 2
    f = get_writing_reward(res["model"], max_length=64, max_question_tokens=16, device="cpu")
    good, bad = f(prompts=["p", "p"], completions=["<answer>The sea is wide and deep and blue.", "<answer>sea sea sea"],
                  question=["Write about the sea."] * 2)
    assert good > bad


def test_bad_pairs(tmp_path):
    from rlcore.io import DataError

    p = tmp_path / "bad.jsonl"
    p.write_text('{"chosen": "a", "rejected": "a"}\n')
    with pytest.raises(DataError, match="identical"):
        load_pairs(str(p))
    p.write_text('{"chosen": "a"}\n')
    with pytest.raises(DataError, match="rejected"):
        load_pairs(str(p))
    p.write_text('{"chosen": "a", "rejected": 5}\n')
    with pytest.raises(DataError, match="record 1"):
        load_pairs(str(p))


def test_training_and_scoring_see_the_same_tokens(tiny_seqcls_base, tmp_path):
    """The RM is scored on exactly the ids train-rm trains on: question head, answer, EOS (TRL appends EOS)."""
    import torch
    from longwriter_zero.rm_training import tokenize_pairs
    from longwriter_zero.writing_reward import get_writing_reward
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rm = AutoModelForSequenceClassification.from_pretrained(tiny_seqcls_base, num_labels=1)
    rm.save_pretrained(tmp_path / "rm")
    AutoTokenizer.from_pretrained(tiny_seqcls_base).save_pretrained(tmp_path / "rm")
    f = get_writing_reward(str(tmp_path / "rm"), max_length=40, max_question_tokens=8, device="cpu")
    model, tok = f.load()
    q, a = "Write about the sea.", "The sea is wide and deep and blue. " * 6
    rows = tokenize_pairs([{"prompt": q, "chosen": a, "rejected": "sea"}], tok, 40, 8)
    ids = rows["rows"][0]["chosen_ids"]
    assert ids == f._encode(q, a) and len(ids) == 40 and ids[-1] == tok.eos_token_id
    assert rows["truncated"] == 1  # the long pair is cut like scoring cuts it, not dropped
    with torch.no_grad():
        direct = model(input_ids=torch.tensor([ids])).logits[0, 0].item()
    assert f.score_texts([q], [a])[0] == pytest.approx(direct, abs=1e-5)


@pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.* is deprecated:FutureWarning")
def test_long_pairs_are_truncated_not_dropped(tiny_seqcls_base, tmp_path):
    p = tmp_path / "long.jsonl"
    p.write_text(json.dumps({"prompt": "Write.", "chosen": "word " * 200, "rejected": "bad"}) + "\n")
    res = train_reward_model(TrainRMConfig(model=tiny_seqcls_base, input=str(p), output_dir=str(tmp_path / "rm"),
                                           max_length=32, max_steps=1, per_device_train_batch_size=1, device="cpu"))
    assert res["pairs_used"] == 1 and res["pairs_truncated"] == 1
