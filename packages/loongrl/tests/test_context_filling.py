import random

import pytest
from loongrl.context_filling import TokenCounter, compute_gaussian_slots, fill_context, render_context
from loongrl.data import DocPool, QAItem, make_synthetic_qa
from rlcore.testing import tiny_tokenizer


def test_gaussian_slots_hand_computed():
    class FixedRng(random.Random):
        def __init__(self, xs):
            super().__init__(0)
            self.xs = list(xs)

        def gauss(self, mu, sigma):
            return self.xs.pop(0)

    # N=11: slot = int((x + 0.95) / 1.9 * 10): x=0 -> int(5.0)=5; x=2 clamps to 0.95 -> 10;
    # x=0.01 -> int(5.05)=5 taken, redrawn; x=-0.95 -> 0
    assert compute_gaussian_slots(3, 11, FixedRng([0.0, 2.0, 0.01, -0.95])) == [5, 10, 0]


def test_gaussian_slots_concentrate_in_the_middle():
    rng = random.Random(0)
    slots = [s for _ in range(200) for s in compute_gaussian_slots(2, 101, rng)]
    middle = sum(25 <= s <= 75 for s in slots) / len(slots)
    assert middle > 0.85  # P(|x| < 0.475) for sigma 0.3 is about 0.89
    assert all(0 <= s <= 100 for s in slots)


def test_render_context_numbering():
    assert render_context(["T\na", "U\nb"]) == "Passage 1:\nT\na\n\nPassage 2:\nU\nb"
    assert render_context(["x"], "Document {i}: {document}") == "Document 1: x"


@pytest.mark.parametrize("target", [1024, 4096])
def test_fill_fits_budget_and_keeps_core_docs(target):
    tok = tiny_tokenizer()
    items = make_synthetic_qa(120, seed=2)
    pool, counter = DocPool(items), TokenCounter(tok)
    filled = fill_context(items[0], pool, counter, target, seed=1)
    exact = len(tok(filled.text, add_special_tokens=False)["input_ids"])
    answer = len(tok(" " + items[0].answers[0], add_special_tokens=False)["input_ids"])
    assert filled.num_tokens == exact
    assert exact + answer + 128 < target
    # one more doc_step of fillers would not have fitted (largest multiple of 10 docs)
    assert len(filled.doc_ids) % 10 == 0 or len(filled.doc_ids) == len(items[0].documents)  # 1024: no room
    per_doc = exact / len(filled.doc_ids)
    assert exact + answer + 128 + 10 * per_doc > target * 0.95
    for d in items[0].documents:
        assert d in filled.text
    assert [filled.doc_ids[s] for s in filled.core_slots] == sorted(
        pool.ids(items[0]), key=lambda d: filled.doc_ids.index(d))
    assert len(set(filled.doc_ids)) == len(filled.doc_ids)


def test_incremental_counting_tokenises_each_doc_once():
    tok = tiny_tokenizer()
    items = make_synthetic_qa(120, seed=2)
    pool, counter = DocPool(items), TokenCounter(tok)
    filled = fill_context(items[0], pool, counter, 8192, seed=1)
    # work = every chosen doc once (plus the docs of the step that overflowed) + one exact check of the final text
    assert counter.tokenised_chars < 2.6 * len(filled.text)


def test_target_smaller_than_own_documents_names_the_item():
    tok = tiny_tokenizer()
    item = QAItem("big-1", "Q?", ("a",), ("T\n" + "word. " * 400,))
    with pytest.raises(ValueError, match=r"item 'big-1': its own 1 documents need \d+ tokens.*max_seq_length=512"):
        fill_context(item, DocPool([item]), TokenCounter(tok), 512, seed=0)
