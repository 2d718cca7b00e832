import pickle

import pytest
from longwriter_zero.writing_reward import check_rm_tokenizer, get_writing_reward, truncate_ids


class TestTruncate:
    def test_policies(self):
        ids = list(range(10))
        assert truncate_ids(ids, 5) == [0, 1, 2, 8, 9]  # head_tail: first ceil(5/2), last floor(5/2)
        assert truncate_ids(ids, 3, "head") == [0, 1, 2]
        assert truncate_ids(ids, 3, "tail") == [7, 8, 9]
        assert truncate_ids(ids, 20) == ids
        assert truncate_ids(ids, 0) == []

    def test_bad_policy(self):
        with pytest.raises(ValueError, match="truncation"):
            truncate_ids([1], 1, "middle")


def test_scores_answers_batched_and_skips_missing(tiny_rm):
    f = get_writing_reward(tiny_rm, batch_size=2, max_length=64, max_question_tokens=16, device="cpu")
    comps = ["<think>t</think><answer>The sea is wide.", "no answer", "<answer>" + "The fox jumps. " * 80,
             "<answer>The sea is wide."]
    out = f(prompts=["p"] * 4, completions=comps, question=["Write about the sea."] * 4)
    assert out[1] is None
    assert all(isinstance(v, float) for v in (out[0], out[2], out[3]))
    assert out[0] == pytest.approx(out[3], abs=1e-5)  # same question + answer, different batch position/padding
    # batching does not change scores
    single = get_writing_reward(tiny_rm, batch_size=1, max_length=64, max_question_tokens=16, device="cpu")
    assert single(prompts=["p"] * 4, completions=comps, question=["Write about the sea."] * 4)[2] == pytest.approx(out[2], abs=1e-5)


def test_truncation_budget_respected(tiny_rm):
    f = get_writing_reward(tiny_rm, max_length=40, max_question_tokens=8, device="cpu")
    f.load()
    ids = f._encode("Write a very long question about the sea and the wind " * 5, "The fox jumps. " * 100)
    assert len(ids) == 40


def test_picklable_without_weights(tiny_rm):
    f = get_writing_reward(tiny_rm, device="cpu")
    f.load()
    g = pickle.loads(pickle.dumps(f))
    assert g._model is None and g.__name__ == "writing_reward"


def test_tokenizer_without_pad_is_a_clear_error(tiny_rm, tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_rm)
    tok.pad_token = None
    with pytest.raises(ValueError, match="no pad token"):
        check_rm_tokenizer(tok, "my-rm")
    check_rm_tokenizer(tok, "my-rm", pad_with_eos=True)
    assert tok.pad_token == tok.eos_token


def test_bad_args():
    with pytest.raises(ValueError, match="max_length"):
        get_writing_reward("x", max_length=10, max_question_tokens=10)
    with pytest.raises(ValueError, match="truncation"):
        get_writing_reward("x", truncation="random")
