"""Difficulty filter, hard-item mining, curriculum and evaluation with scripted samplers (no model needed)."""

from collections.abc import Callable

import pytest
from loongrl.curriculum import build_curriculum, mine_hard_items
from loongrl.data import DocPool, make_synthetic_qa
from loongrl.difficulty_filter import compute_cem, extract_the_answer_is, filter_by_difficulty
from loongrl.evaluation import evaluate_rows, run_niah, save_heatmap
from loongrl.prompts import keychain_prompt, multihop_prompt, to_messages
from rlcore.testing import tiny_tokenizer


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


def test_prompt_texts():
    p = keychain_prompt("CTX", "abc", "1line", quote_head=True)
    assert p.startswith("Please read the following text.\nCTX\n\nIn the context above, there is one correct question")
    assert p.endswith('starting from "abc".\nFind the correct question first, then answer it.')
    assert multihop_prompt("C", "Q") == "The following are given passages.\nC\n\nQuestion: Q"
    assert to_messages("u", "s") == [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    with pytest.raises(ValueError, match="variant"):
        keychain_prompt("c", "h", "2line")


def test_difficulty_filter_keeps_strictly_between():
    items = make_synthetic_qa(3, seed=0)
    gold = {it.question: it.answers[0] for it in items}
    passes = {items[0].question: 0, items[1].question: 3, items[2].question: 4}

    def respond(prompt, i):
        q = user_text(prompt).rsplit("Question: ", 1)[1]
        return f"so the answer is {gold[q]}." if i < passes[q] else "The answer is unknown."

    kept, stats = filter_by_difficulty(items, ScriptedSampler(respond), k=4)
    assert [k.id for k in kept] == [items[1].id]
    assert stats["pass_histogram"] == {"0": 1, "1": 0, "2": 0, "3": 1, "4": 1} and stats["kept"] == 1
    assert extract_the_answer_is("x The Answer is: **Rome**") == "Rome"


def test_cem_runs_the_official_way():
    """Issue 17: pred contained in gold passes (official), and the FIRST "the answer is" is read."""
    assert compute_cem("Paris", ["Paris, France"]) == 1.0
    assert compute_cem("Paris, France", ["Paris"]) == 0.0  # gold in pred is the old rule, now an option
    assert compute_cem("Paris, France", ["Paris"], "gold_in_pred") == 1.0
    assert compute_cem("The", ["Paris"]) == 0.0 and compute_cem("", ["Paris"]) == 0.0  # "" in gold never passes
    r = "The answer is Rome. Hmm, no: the answer is Paris."
    assert extract_the_answer_is(r) == "Rome. Hmm, no: the answer is Paris."
    assert extract_the_answer_is(r, "last") == "Paris."
    assert compute_cem(extract_the_answer_is("the answer is Paris"), ["Paris, France"]) == 1.0
    # an item whose samples say "Paris" for gold "Paris, France" passes 2 of 4 and is kept (official), while the
    # old rule (last occurrence, gold in pred) counts 0 passes and drops it
    items = make_synthetic_qa(1, seed=0)
    gold = items[0].answers[0]
    texts = [f"the answer is {gold[:3]}", f"the answer is {gold[:3]}", "the answer is x", "the answer is y"]
    kept, _ = filter_by_difficulty(items, ScriptedSampler(lambda p, i: texts[i]), k=4)
    assert len(kept) == 1
    kept, _ = filter_by_difficulty(items, ScriptedSampler(lambda p, i: texts[i]), k=4, match="gold_in_pred",
                                   occurrence="last")
    assert kept == []


def test_hard_mining_drops_all_correct_items():
    rows = [{"prompt": to_messages(f"q{i}"), "answers": [f"a{i}"]} for i in range(3)]
    right = {"q0": 4, "q1": 2, "q2": 0}  # correct rollouts out of 4

    def respond(prompt, i):
        q = user_text(prompt)
        return f"<think>.</think>\\boxed{{a{q[1]}}}" if i < right[q] else "<think>.</think>\\boxed{zzz}"

    kept, stats = mine_hard_items(rows, ScriptedSampler(respond), n=4)
    assert [r["prompt"][0]["content"] for r in kept] == ["q1", "q2"]
    assert stats["dropped_fraction"] == pytest.approx(1 / 3) and stats["mean_accuracy"] == pytest.approx(0.5)


def test_curriculum_stages():
    stages = build_curriculum(42, 168, 135, has_extra=True)
    assert [(s.name, s.steps, s.hard_mining) for s in stages] == [
        ("warmup", 42, False), ("stage1", 168, False), ("stage2", 135, True)]
    assert "keychain" not in stages[0].sources and "keychain" in stages[1].sources and "extra" in stages[0].sources


def test_evaluate_rows_scores():
    rows = [{"prompt": to_messages("a"), "answers": ["New York"]}, {"prompt": to_messages("b"), "answers": ["Oslo"]}]
    res = evaluate_rows(rows, ScriptedSampler(lambda p, i: "<think>x</think>\\boxed{New York City}"))
    # sub-EM: [1, 0] -> 50; F1: [2*(2/3*1)/(2/3+1)=0.8, 0] -> 40
    assert res["sub_em"] == pytest.approx(50.0) and res["f1"] == pytest.approx(40.0)


def test_niah_lengths_are_exact_and_small_pools_fail():
    from loongrl.evaluation import niah_examples

    docs = DocPool(make_synthetic_qa(120, seed=0)).docs
    tok = tiny_tokenizer()
    lengths = [300, 777, 1024, 2048]
    exs = niah_examples(docs, tok, lengths, [0.0, 0.5, 1.0], trials=1, seed=4)
    assert [e["length"] for _, _, e in exs] == [L for L in lengths for _ in range(3)]
    for _, _, e in exs:  # exactly the requested tokens, needle inside, 7-digit answer
        assert len(tok(e["prompt"], add_special_tokens=False)["input_ids"]) == e["length"]
        assert f"is: {e['answers'][0]}." in e["prompt"] and len(e["answers"][0]) == 7
    with pytest.raises(ValueError, match=r"length 4096: the haystack pool \(5 documents"):
        niah_examples(docs[:5], tok, [4096], [0.5], trials=1)


def test_niah_constant_answer_scores_below_0_2():
    """Issue 17: a model that always answers \\boxed{1} scored 50% under two-way sub-EM; exact match gives 0."""
    docs = DocPool(make_synthetic_qa(60, seed=0)).docs
    res = run_niah(docs, tiny_tokenizer(), ScriptedSampler(lambda p, i: "<think>x</think>\\boxed{1}"), [400, 600],
                   [0.0, 0.5, 1.0], trials=3)
    assert res["mean"] / 100 < 0.2 and res["metric"] == "em"
    assert res["mean"] == 0.0


def test_niah_grid_and_heatmap(tmp_path):
    docs = DocPool(make_synthetic_qa(60, seed=0)).docs

    def oracle(prompt, i):  # reads the needle back: checks the needle is present in every cell
        text = user_text(prompt)
        key = text.rsplit("magic number for ", 1)[1].split(" ")[0]
        value = text.split(f"magic number for {key} is: ")[1].split(".")[0]
        return f"<think>found</think>\\boxed{{{value}}}"

    res = run_niah(docs, tiny_tokenizer(), ScriptedSampler(oracle), [512, 1024], [0.0, 0.5, 1.0], trials=1)
    assert res["grid"] == [[100.0] * 3] * 2 and res["mean"] == 100.0
    png = save_heatmap(res, tmp_path / "niah.png")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    blind = run_niah(docs, tiny_tokenizer(), ScriptedSampler(lambda p, i: "<think>?</think>\\boxed{zzz}"), [512], [0.5], 1)
    assert blind["grid"] == [[0.0]]
