import json

import pytest
from p_genrm.data import group_by_user, load_requests, load_rows, load_stated_criteria, sample_history
from rlcore.io import DataError


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(user, split_, i, **kw):
    r = {"user_id": user, "split": split_, "context": [{"content": f"q{i}"}], "chosen": {"content": f"c{i}"},
         "rejected": {"content": f"r{i}"}, "conversation_id": f"{user}-{i}"}
    r.update(kw)
    return r


def test_load_rows_and_per_user_splits(tmp_path):
    rows = [row("a", "train", i) for i in range(4)] + [row("a", "test", 9), row("b", "val", 5),
                                                       row("b", "test", 6, context="plain string query")]
    users = group_by_user(load_rows(write(tmp_path / "d.jsonl", rows)), {"b": "values: honesty"})
    assert [len(users["a"].train), len(users["a"].test), len(users["b"].val)] == [4, 1, 1]
    assert users["b"].stated_criteria == "values: honesty" and users["a"].stated_criteria is None
    assert users["b"].test[0].query == "plain string query"


def test_multi_turn_context_keeps_first_turn_for_history(tmp_path):
    r = row("a", "train", 0, context=[{"content": "hello"}, {"content": "hi!"}, {"content": "more?"}])
    (pr,) = load_rows(write(tmp_path / "d.jsonl", [r]))
    assert pr.first_turn == "hello" and pr.query == "User: hello\nAssistant: hi!\nUser: more?"
    assert pr.as_history().user == "hello"


@pytest.mark.parametrize(
    "bad, msg",
    [
        ({"split": "dev"}, "split must be one of"),
        ({"chosen": {"text": "x"}}, "'chosen' must be"),
        ({"rejected": "   "}, "'rejected' is empty"),
        ({"context": []}, "'context' must be"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, bad, msg):
    path = write(tmp_path / "d.jsonl", [row("a", "train", 0), row("a", "train", 1, **bad)])
    with pytest.raises(DataError, match=f"d.jsonl:2: .*{msg}"):
        load_rows(path)


def test_missing_field_and_missing_file(tmp_path):
    r = row("a", "train", 0)
    del r["user_id"]
    with pytest.raises(DataError, match="d.jsonl:1: record lacks required field"):
        load_rows(write(tmp_path / "d.jsonl", [r]))
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_rows(tmp_path / "nope.jsonl")


def test_stated_criteria(tmp_path):
    p = write(tmp_path / "s.jsonl", [{"user_id": "u", "stated_prefs": {"values": 90, "fluency": 40}},
                                     {"user_id": "v", "stated_prefs": "I like short answers"},
                                     {"user_id": "w", "stated_prefs": None}])
    assert load_stated_criteria(p) == {"u": "values: 90\nfluency: 40", "v": "I like short answers"}


def test_sample_history_seeded_and_leave_one_out(tmp_path):
    users = group_by_user(load_rows(write(tmp_path / "d.jsonl", [row("a", "train", i) for i in range(10)])))
    pool = users["a"].train
    h1 = sample_history(pool, 3, seed=42, exclude="a-0", key="x")
    assert h1 == sample_history(pool, 3, seed=42, exclude="a-0", key="x") and len(h1) == 3
    assert all(h.chosen != "c0" for h in sample_history(pool, 9, exclude="a-0"))
    assert sample_history([], 6) == ()  # a user with no history: empty, the prompt says so


def test_load_requests_validates_history(tmp_path):
    ok = {"query": "q", "response_1": "a", "response_2": "b", "history": [{"user": "u", "chosen": "c",
                                                                          "rejected": "r"}]}
    (req,) = load_requests(write(tmp_path / "r.jsonl", [ok]))
    assert req.history[0].chosen == "c"
    with pytest.raises(DataError, match="r.jsonl:1: 'history' must be"):
        load_requests(write(tmp_path / "r.jsonl", [{**ok, "history": [{"user": "u"}]}]))


def test_load_hf_rows_from_saved_dataset(tmp_path):
    import datasets
    from p_genrm.data import load_hf_rows

    datasets.Dataset.from_list([row("a", "train", 0), row("a", "test", 1)]).save_to_disk(str(tmp_path / "ds"))
    rows = load_hf_rows(str(tmp_path / "ds"))
    assert [r.split for r in rows] == ["train", "test"] and rows[0].chosen == "c0"
    bad = row("a", "oops", 2)
    datasets.Dataset.from_list([bad]).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(DataError, match=r"bad\[0\]: split must be one of"):
        load_hf_rows(str(tmp_path / "bad"))


def prb_record(i, **kw):
    """A record in Personalized RewardBench's released layout (QiyaoMa/Personalized-RewardBench, test split)."""
    r = {"id": f"art-{i}", "question": "Which jazz albums should I start with?",
         "profile": [{"category": "Music", "id": "p1", "text": "I cook pasta every Sunday."},
                     {"category": "Music", "id": "p2", "text": "Bebop jazz albums are my favourite thing."},
                     {"category": "Music", "id": "p3", "text": ""},
                     {"category": "Music", "id": "p4", "text": "Which albums of Miles Davis are essential?"}],
         "rubric_aspects": [{"aspect": "cites bebop", "evidence": "p2", "reason": "the user loves bebop"}],
         "narrative": "The user is a bebop fan.", "category": "Art_and_Entertainment",
         "chosen": "Start with Bird and Diz.", "rejected": "Start with smooth jazz."}
    r.update(kw)
    return r


def test_personalized_rewardbench_loader_on_a_sample_file(tmp_path):
    from p_genrm.data import detect_format, load_benchmark, make_request
    from p_genrm.evaluation_chain import build_messages

    path = write(tmp_path / "prb.jsonl", [prb_record(0), prb_record(1, profile=["plain string entry"])])
    assert detect_format(path) == "personalized-rewardbench"
    users = load_benchmark(path, profile_size=2, profile_chars=20)
    assert list(users) == ["art-0", "art-1"] and all(len(u.test) == 1 and not u.train for u in users.values())
    row = users["art-0"].test[0]
    # overlap with {which, jazz, albums, should, i, start, with}: p4 shares 2 (which, albums), p2 shares 2
    # (jazz, albums; "i" is not in it), p1 shares 1 ("i"): p2 and p4, in profile order, clipped to 20 characters
    assert row.profile == ("Bebop jazz albums ar", "Which albums of Mile")
    assert (row.query, row.chosen, row.rejected) == ("Which jazz albums should I start with?",
                                                     "Start with Bird and Diz.", "Start with smooth jazz.")
    system = build_messages(make_request(row, (), True))[0]["content"]
    assert "[The Start of User's profile]\n- Bebop jazz albums ar\n" in system
    assert "cites bebop" not in system and "bebop fan" not in system  # the rubric is the answer: never shown
    assert "no preference history" not in system
    assert users["art-1"].test[0].profile == ("plain string entry",)


@pytest.mark.parametrize("bad, msg", [({"profile": "text"}, "'profile' must be a list"),
                                      ({"profile": [{"text": 3}]}, "profile\\[0\\]"),
                                      ({"chosen": ""}, "'chosen' is empty")])
def test_personalized_rewardbench_bad_records_name_file_and_line(tmp_path, bad, msg):
    from p_genrm.data import load_personalized_rewardbench

    path = write(tmp_path / "prb.jsonl", [prb_record(0), prb_record(1, **bad)])
    with pytest.raises(DataError, match=f"prb.jsonl:2: .*{msg}"):
        load_personalized_rewardbench(path)
    rec = prb_record(0)
    del rec["question"]
    with pytest.raises(DataError, match="prb.jsonl:1: .*lacks field.*question"):
        load_personalized_rewardbench(write(tmp_path / "prb.jsonl", [rec]))
    with pytest.raises(DataError, match="duplicated id"):
        load_personalized_rewardbench(write(tmp_path / "prb.jsonl", [prb_record(0), prb_record(0)]))
