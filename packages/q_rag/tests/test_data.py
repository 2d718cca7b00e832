import json
import random

import pytest
from q_rag.babilong import build_synthetic_dataset, generate_story, read_babi
from q_rag.data import get_loader, load_hotpotqa, load_musique, load_ruler_niah, read_samples, write_samples
from rlcore.io import DataError


@pytest.mark.parametrize("task", ["single", "two_hop", "before", "niah"])
def test_synthetic_support_facts(task):
    for s in build_synthetic_dataset(task, 5, 400, seed=3):
        assert s.sf_idx and all(0 <= i < len(s.chunks) for i in s.sf_idx)
        if task != "niah":
            assert any(s.answer in s.chunks[i] for i in s.sf_idx)
        else:
            assert all(v in " ".join(s.chunks[i] for i in s.sf_idx) for v in s.answer.split(", "))


def test_before_story_answer():
    st = generate_story("before", random.Random(0), 8)
    who = st.question.split()[2]
    a, b = (st.facts[i] for i in st.sf)
    assert who in a and who in b and a.endswith(st.answer + ".")


def test_jsonl_roundtrip_and_bad_input(tmp_path):
    samples = build_synthetic_dataset("single", 3, 200)
    p = tmp_path / "d.jsonl"
    write_samples(p, samples)
    assert [s.sf_idx for s in read_samples(p)] == [s.sf_idx for s in samples]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Where is Mary?", "chunks": [], "sf_idx": []}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: .*no chunks"):
        read_samples(bad)
    bad.write_text(json.dumps({"question": "q?", "chunks": ["a.", "b."], "sf_idx": [2]}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1: sf_idx \[2\] out of range for 2 chunks"):
        read_samples(bad)
    with pytest.raises(ValueError, match="valid"):
        get_loader("squad")


def test_hotpot_musique_ruler_babi(tmp_path):
    hp = tmp_path / "hp.json"
    hp.write_text(json.dumps([{"_id": "a", "question": "Q?", "answer": "x",
                               "context": [["T1", ["s1.", " s2."]], ["T2", ["u."]], ["T3", ["v."]]],
                               "supporting_facts": [["T1", 0], ["T3", 0]]}]))
    (s,) = load_hotpotqa(hp)
    assert s.chunks[0] == "T1 s1. s2." and s.sf_idx == [0, 2]
    mq = tmp_path / "mq.jsonl"
    mq.write_text(json.dumps({"id": "m", "question": "Q?", "answer": "y",
                              "paragraphs": [{"idx": 0, "title": "A", "paragraph_text": "aa"},
                                             {"idx": 1, "title": "B", "paragraph_text": "bb"}],
                              "question_decomposition": [{"paragraph_support_idx": 1}]}) + "\n")
    (m,) = load_musique(mq)
    assert m.chunks == ["A. aa", "B. bb"] and m.sf_idx == [1]
    mq.write_text(json.dumps({"id": "m", "question": "Q?", "paragraphs": [{"title": "A"}],
                              "question_decomposition": []}) + "\n")
    with pytest.raises(DataError, match="record 0"):
        load_musique(mq)
    ru = tmp_path / "r.jsonl"
    ru.write_text(json.dumps({"input": "Noise here. The number is 123. More noise! What is the number?",
                              "outputs": ["123"], "index": 0}) + "\n")
    (r,) = load_ruler_niah(ru)
    assert r.question == "What is the number?" and r.sf_idx == [1]
    babi = tmp_path / "qa1.txt"
    babi.write_text("1 Mary went to the kitchen.\n2 John went to the garden.\n3 Where is Mary?\tkitchen\t1\n"
                    "1 Sandra moved to the park.\n2 Where is Sandra?\tpark\t1\n")
    stories = read_babi(babi)
    assert [st.sf for st in stories] == [[0], [0]] and stories[1].facts == ["Sandra moved to the park."]
    babi.write_text("1 Mary went.\n2 Where?\tx\t7\n")
    with pytest.raises(DataError, match="qa1.txt:2"):
        read_babi(babi)
