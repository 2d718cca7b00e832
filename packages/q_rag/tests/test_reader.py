"""Official BabiLong reader prompts and answer metrics; reader generation goes through rlcore."""

import pytest
from q_rag.data import Sample
from q_rag.reader import (
    BABILONG_PROMPTS,
    answer_questions,
    babilong_em,
    babilong_f1,
    build_reader_prompt,
    reader_messages,
    task_from_name,
)


def test_prompt_layout():
    chunks = ["Noise one.", "Mary went to the garden.", "Noise two.", "Mary moved to the office."]
    text = build_reader_prompt("Where is Mary?", chunks, [3, 1], "qa1")
    p = BABILONG_PROMPTS["qa1"]
    head = p["instruction"] + "\nExample:\n"
    assert text.startswith(head)
    assert "<example>" not in text and "</example>" not in text
    # document order, joined by spaces; the official template appends "?" after the question
    assert text.endswith("\nContext: Mary went to the garden. Mary moved to the office.\n\nQuestion: Where is Mary??")
    assert "\n" + p["post_prompt"] + "\nContext:" in text
    msgs = reader_messages("Where is Mary?", chunks, [1], "qa3")
    assert [m["role"] for m in msgs] == ["system", "user"] and "Before the $location_1$" in msgs[1]["content"]
    with pytest.raises(ValueError, match="unknown BabiLong task"):
        build_reader_prompt("q", chunks, [0], "qa9")


def test_task_from_name():
    assert task_from_name("data/qa3_three-supporting-facts_test_1M.jsonl") == "qa3"
    assert task_from_name("babilong_qa5_128k.jsonl") == "qa5"
    assert task_from_name("qa12_x.jsonl") == "qa1" and task_from_name("niah.jsonl") == "qa1"


def test_babilong_em_official_rule():
    # last word after stripping " ." at both ends, compared as comma-split sets, case-sensitive
    assert babilong_em("The most recent location of Mary is garden.", "garden") == 1.0
    assert babilong_em("Before the kitchen the apple was in the bathroom", "bathroom") == 1.0
    assert babilong_em("milk,apple", "apple,milk") == 1.0
    assert babilong_em("Garden", "garden") == 0.0
    assert babilong_em("garden, I think", "garden") == 0.0
    assert babilong_em("", "garden") == 0.0


def test_babilong_f1_label_sets():
    assert babilong_f1("garden", "garden") == 1.0
    # pred labels {garden, kitchen}, gold {garden}: P 1/2, R 1 -> F1 2/3
    assert babilong_f1("the garden or the kitchen", "garden") == pytest.approx(2 / 3)
    assert babilong_f1("no idea", "garden") == 0.0
    assert babilong_f1("bathroom", "garden") == 0.0
    # QA5: capitalised person labels never match the lower-cased texts (official); objects do
    assert babilong_f1("Fred", "Fred", "qa5") == 1.0  # both label sets empty -> agree
    assert babilong_f1("milk", "Fred", "qa5") == 0.0
    assert babilong_f1("apple", "apple", "qa5") == 1.0


def test_metrics_are_total():
    from rlcore.testing import fuzz_total

    fuzz_total(lambda s: babilong_em(s, "garden"), n_cases=1000, check=lambda r: r in (0.0, 1.0))
    fuzz_total(lambda s: babilong_f1(s, "apple,milk", "qa5"), n_cases=1000, check=lambda r: 0.0 <= r <= 1.0)
    fuzz_total(task_from_name, n_cases=1000, check=lambda r: r in BABILONG_PROMPTS)


def test_answers_through_rlcore_generator():
    from rlcore.testing import ScriptedGenerator, recording_generators, tiny_tokenizer

    tok = tiny_tokenizer()
    gen = ScriptedGenerator(["The most recent location of Mary is garden.", "kitchen"], tok)
    s = Sample("a", "Where is Mary?", "garden", ["x.", "Mary went to the garden."], [1])
    with recording_generators() as calls:
        answers = answer_questions(gen, [s, s], [[1], [0]], "qa1", max_new_tokens=64)
    assert answers == ["The most recent location of Mary is garden.", "kitchen"]
    assert calls and calls[0].kind == "generate" and calls[0].params.temperature == 0.0
    assert calls[0].params.max_new_tokens == 64
