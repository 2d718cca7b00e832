import json

import pytest
from loongrl.data import DocPool, QAItem, detect_format, load_qa, make_synthetic_qa, save_qa
from rlcore.io import DataError

HOTPOT = [{"_id": "h1", "question": "Q1?", "answer": "A1", "type": "bridge", "level": "hard",
           "supporting_facts": [["T1", 0]], "context": [["T1", ["S one.", " S two."]], ["T2", ["Other."]]]}]
WIKI = [{"_id": "w1", "question": "Q2?", "answer": "A2", "type": "compositional", "evidences": [],
         "supporting_facts": [], "context": [["W", ["x.", " y."]]]}]
MUSIQUE = [
    {"id": "m1", "question": "Q3?", "answer": "A3", "answer_aliases": [], "answerable": True,
     "paragraphs": [{"idx": 0, "title": "M", "paragraph_text": "p.", "is_supporting": True}]},
    {"id": "m2", "question": "Q4?", "answer": "A4", "answerable": False,
     "paragraphs": [{"idx": 0, "title": "N", "paragraph_text": "q.", "is_supporting": False}]},
]


def write(tmp_path, name, obj, jsonl=False):
    p = tmp_path / name
    p.write_text("\n".join(json.dumps(o) for o in obj) if jsonl else json.dumps(obj))
    return p


def test_hotpotqa_and_2wiki_layouts(tmp_path):
    h = write(tmp_path, "hotpot.json", HOTPOT)
    w = write(tmp_path, "train.json", WIKI)
    assert detect_format(h) == "hotpotqa" and detect_format(w) == "2wikimqa"
    (item,) = load_qa(h)
    assert item == QAItem("h1", "Q1?", ("A1",), ("T1\nS one. S two.", "T2\nOther."), "hotpotqa")
    assert load_qa(w)[0].documents == ("W\nx. y.",)


def test_musique_keeps_answerable_only(tmp_path):
    m = write(tmp_path, "musique.jsonl", MUSIQUE, jsonl=True)
    items = load_qa(m)
    assert detect_format(m) == "musique"
    assert [i.id for i in items] == ["m1"] and items[0].documents == ("M\np.",)


def test_generic_jsonl_roundtrip(tmp_path):
    items = make_synthetic_qa(5, seed=1)
    p = tmp_path / "items.jsonl"
    save_qa(p, items)
    assert load_qa(p) == items
    q = write(tmp_path, "g.jsonl", [{"input": "Q?", "answer": "x", "documents": [{"title": "T", "text": "b."}]}],
              jsonl=True)
    assert load_qa(q)[0].documents == ("T\nb.",) and load_qa(q)[0].answers == ("x",)


def test_unknown_format_is_a_clear_error(tmp_path):
    p = write(tmp_path, "weird.jsonl", [{"prompt": "x", "label": 1}], jsonl=True)
    with pytest.raises(DataError, match=r"weird\.jsonl: unknown QA format"):
        load_qa(p)
    with pytest.raises(DataError, match="unknown QA format 'squad'"):
        load_qa(p, format="squad")


def test_item_without_answer_names_the_item(tmp_path):
    bad = [dict(HOTPOT[0], _id="h9", answer="")]
    with pytest.raises(DataError, match=r"item 0 \(id 'h9'\).*no answer"):
        load_qa(write(tmp_path, "hotpot.json", bad))
    g = write(tmp_path, "g.jsonl", [{"id": "g7", "question": "Q?", "answers": [], "documents": ["d."]}], jsonl=True)
    with pytest.raises(DataError, match=r"g\.jsonl:1 \(id 'g7'\).*no answer"):
        load_qa(g)


def test_doc_pool_dedups_and_sorts():
    items = make_synthetic_qa(4, seed=0)
    twin = QAItem("dup", "Another?", ("x",), items[0].documents[:1])
    pool = DocPool([*items, twin])
    assert len(pool) == sum(len(i.documents) for i in items)
    assert pool.docs == sorted(pool.docs)
    assert pool.ids(twin) == pool.ids(items[0])[:1]


def test_synthetic_fixture_is_answerable_two_hop():
    for it in make_synthetic_qa(10, seed=3):
        person = it.question.removeprefix("In which country was ").removesuffix(" born?")
        born = next(d for d in it.documents if d.startswith(person + "\n")).split(" was born in ")[1].split(".")[0]
        city_doc = next(d for d in it.documents if d.startswith(born + "\n"))
        assert f"is a city in {it.answers[0]}." in city_doc
