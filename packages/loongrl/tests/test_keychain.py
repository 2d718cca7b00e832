import random
import re

import pytest
from loongrl.data import make_synthetic_qa
from loongrl.keychain import (
    KeyChain,
    chain_pairs,
    compute_num_chains,
    follow_chain,
    format_pair,
    insert_pairs,
    make_chains,
    make_id,
    remove_pairs,
)
from loongrl.synthesis import output_name, synthesize
from rlcore.testing import tiny_tokenizer

L = 2048


@pytest.fixture(scope="module")
def records():
    items = make_synthetic_qa(60, seed=0)
    return items, list(synthesize(items, tiny_tokenizer(), L, num_samples=3, seed=7))


def test_num_chains_formula():
    assert compute_num_chains(16384) == 64 and compute_num_chains(131072) == 512 and compute_num_chains(2048) == 8


@pytest.mark.parametrize(("fmt", "pattern"), [("full36", r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"),
                                               ("hex32", r"[0-9a-f]{32}"), ("hex8", r"[0-9a-f]{8}")])
def test_id_formats(fmt, pattern):
    ids = [make_id(random.Random(s), fmt) for s in range(20)]
    assert all(re.fullmatch(pattern, i) for i in ids)
    with pytest.raises(ValueError, match="id_format"):
        make_id(random.Random(0), "nano")


def test_chain_pairs_text():
    # exactly the official {"key": "value"} text: 3 links and the last id -> question
    assert chain_pairs(["a", "b", "c", "d"], "Q?") == ['{"a": "b"}', '{"b": "c"}', '{"c": "d"}', '{"d": "Q?"}']
    assert format_pair("k", "v") == '{"k": "v"}'


def test_structure_of_generated_records(records):
    items, recs = records
    for rec in recs:
        nc = compute_num_chains(L)
        assert rec["num_chains"] == nc and len(rec["chains"]) == nc
        assert all(len(c) == 4 for c in rec["chains"])
        ids = [i for c in rec["chains"] for i in c]
        assert len(set(ids)) == len(ids) == 4 * nc  # every id distinct
        assert len(rec["keychain_pairs"]) == 4 * nc
        assert all(rec["distractor_context"].count(p + ".") == 1 for p in rec["keychain_pairs"])
        # the chain from the head reaches the true question in exactly 4 hops
        assert rec["chain_head_with_question"] == rec["chains"][0][0]
        path = follow_chain(rec["distractor_context"], rec["chain_head_with_question"])
        assert path == [*rec["chains"][0][1:], rec["input"]]
        # chain k >= 1 ends in distract_questions[k] (official indexing), never the item's own question
        for k in range(1, nc):
            assert follow_chain(rec["distractor_context"], rec["chains"][k][0])[-1] == rec["distract_questions"][k]
        assert rec["input"] not in rec["distract_questions"]
        assert len(rec["distract_questions"]) == min(16 * L // 1024, len(items) - 1)
        # insertion positions are distinct stoppers of the filled context
        assert len(set(rec["insert_positions"])) == len(rec["insert_positions"])
        assert all(rec["context"][p] in "\n.?" for p in rec["insert_positions"])
        # removing the inserted pairs restores the filled context exactly
        assert remove_pairs(rec["distractor_context"], rec["keychain_pairs"]) == rec["context"]
        for key in ("index", "input", "context", "answers", "length", "distract_questions", "distractor_context",
                    "chain_head_with_question"):
            assert key in rec


def test_reproducible_from_seed(records):
    items, recs = records
    again = list(synthesize(items, tiny_tokenizer(), L, num_samples=3, seed=7))
    assert again == recs
    other = next(synthesize(items, tiny_tokenizer(), L, num_samples=1, seed=8))
    assert other["distractor_context"] != recs[0]["distractor_context"]


def test_insert_separator_rules():
    # stopper "\n" gets no space, "." and "?" get one; insertion goes right after the stopper
    text, pos = insert_pairs("a\nb.c?", ['{"x": "1"}', '{"y": "2"}', '{"z": "3"}'], random.Random(0))
    assert sorted(pos) == [1, 3, 5]
    assert re.fullmatch(r'a\n\{"[xyz]": "\d"\}\.b\. \{"[xyz]": "\d"\}\.c\? \{"[xyz]": "\d"\}\.', text)
    assert remove_pairs(text, ['{"x": "1"}', '{"y": "2"}', '{"z": "3"}']) == "a\nb.c?"


def test_too_few_stoppers_is_an_error():
    with pytest.raises(ValueError, match=r"item 'q7': not enough stoppers .* found 1, need 4"):
        KeyChain.build("only one stopper.", "Q?", ["d0", "d1"], 1, 4, random.Random(0), where="item 'q7'")
    with pytest.raises(ValueError, match="at least 3 distractor questions"):
        KeyChain.build("a. b. c.", "Q?", ["d0"], 3, 1, random.Random(0))


def test_make_chains_distinct_even_when_short_ids_collide():
    chains = make_chains(300, 4, random.Random(0), "hex8")
    ids = [i for c in chains for i in c]
    assert len(set(ids)) == 1200


def test_output_name_pattern():
    assert output_name("hotpotqa", 100, 16384, "hex8") == (
        "hotpotqa_qwen_filtered_core_gaussian-num_sample_100-max_seq_16384-uuid_len_default_8-numchain_64-numhop-4"
        "-distractor.jsonl")
