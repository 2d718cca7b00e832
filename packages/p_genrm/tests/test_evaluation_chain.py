import json

import pytest
from p_genrm.evaluation_chain import (
    JSON_END,
    JSON_START,
    PART1_HEADER,
    PART2_HEADER,
    ChainParseError,
    ChainSample,
    HistoryPair,
    ScoreRequest,
    build_messages,
    compute_final_score,
    extract_analysis,
    parse_chain,
    render_chain,
    unshuffle_scores,
)

CRITERIA = [("concise", 35, 4, 8), ("warm tone", 30, 6, 5), ("accuracy", 20, 7, 7), ("examples", 15, 7, 2)]


def chain_with(obj, analysis="The user likes short answers."):
    return f"{PART1_HEADER}\n{analysis}\n{PART2_HEADER}\n{JSON_START}{json.dumps(obj)}{JSON_END}"


def good_obj():
    return {
        "criteria": [{"name": n, "weight": w, "response_1": a, "response_2": b} for n, w, a, b in CRITERIA],
        # 4*.35 + 6*.30 + 7*.20 + 7*.15 = 1.4 + 1.8 + 1.4 + 1.05 = 5.65
        # 8*.35 + 5*.30 + 7*.20 + 2*.15 = 2.8 + 1.5 + 1.4 + 0.3 = 6.0
        "better_response": {"response_1": 5.65, "response_2": 6.0},
        "rationale": "response 2 is shorter",
    }


def test_compute_final_score_hand_computed():
    assert compute_final_score([35, 30, 20, 15], [4, 6, 7, 7]) == pytest.approx(5.65)
    assert compute_final_score([50, 50], [10, 1]) == pytest.approx(5.5)


def test_parse_valid_chain():
    p = parse_chain(chain_with(good_obj()))
    assert (p.final_1, p.final_2) == (5.65, 6.0)
    assert [c.name for c in p.criteria] == ["concise", "warm tone", "accuracy", "examples"]
    assert p.analysis == "The user likes short answers."
    assert p.rationale == "response 2 is shorter"


def test_parse_accepts_one_decimal_rounding():
    obj = good_obj()
    obj["better_response"]["response_1"] = 5.7  # 5.65 rounded to one decimal
    assert parse_chain(chain_with(obj)).final_1 == 5.7


def test_render_chain_round_trips():
    text = render_chain("persona here", CRITERIA, rationale="r")
    p = parse_chain(text)
    assert (p.final_1, p.final_2) == (5.65, 6.0)
    assert extract_analysis(text) == "persona here"


@pytest.mark.parametrize(
    "mutate, reason",
    [
        (lambda o: o["criteria"][0].update(weight=25), "weights_sum"),  # sums to 90
        (lambda o: o["criteria"][0].update(weight=-5), "weights_sum"),
        (lambda o: o["criteria"][1].update(response_2=11), "score_range"),
        (lambda o: o["criteria"][1].update(response_2=0), "score_range"),
        (lambda o: o["better_response"].update(response_1=7.0), "arithmetic"),
        (lambda o: o.pop("better_response"), "schema"),
        (lambda o: o.update(criteria=[]), "schema"),
        (lambda o: o["criteria"][0].pop("response_1"), "schema"),
        (lambda o: o["criteria"][0].update(weight="35"), "schema"),
        (lambda o: o.update(preferred="response_1"), "preference_mismatch"),
        (lambda o: o.update(preferred="both"), "schema"),
    ],
)
def test_parse_rejects_broken_json(mutate, reason):
    obj = good_obj()
    mutate(obj)
    with pytest.raises(ChainParseError) as e:
        parse_chain(chain_with(obj))
    assert e.value.reason == reason


def test_parse_rejects_broken_structure():
    good = chain_with(good_obj())
    cases = {
        "missing_part1": good.replace(PART1_HEADER, "Analysis"),
        "missing_part2": good.replace(PART2_HEADER, "Scores"),
        "missing_markers": good.replace(JSON_END, ""),
        "bad_json": good.replace('"criteria"', "criteria"),
    }
    cases["missing_markers_twice"] = good + JSON_START + "{}" + JSON_END
    for reason, text in cases.items():
        with pytest.raises(ChainParseError) as e:
            parse_chain(text)
        assert e.value.reason == reason.replace("_twice", "")


def test_chain_sample_records_failure_reason_without_scores():
    s = ChainSample.from_text("PART 1 only", (0, 1))
    assert s.parsed is None and s.scores is None and s.error == "missing_part1"


def test_unshuffle_restores_original_order():
    assert unshuffle_scores((3.0, 8.0), (0, 1)) == (3.0, 8.0)
    assert unshuffle_scores((3.0, 8.0), (1, 0)) == (8.0, 3.0)
    s = ChainSample.from_text(render_chain("a", [("x", 100, 9, 2)]), (1, 0))
    assert s.scores == (2.0, 9.0)  # displayed response 1 (score 9) was original response 2


def test_build_messages_history_criteria_and_order():
    req = ScoreRequest("What is X?", "Answer A", "Answer B",
                       history=(HistoryPair("hi", "short reply", "long reply"),), stated_criteria="values: honesty")
    system, user = build_messages(req, (1, 0))
    assert "User: hi\nChosen: short reply\nRejected: long reply" in system["content"]
    assert "values: honesty" in system["content"]
    assert user["content"].index("Answer B") < user["content"].index("Answer A")
    no_hist = build_messages(ScoreRequest("q", "a", "b"))[0]["content"]
    assert "no preference history is available" in no_hist and "stated criteria]" not in no_hist


def test_build_messages_bad_input():
    with pytest.raises(ValueError, match="order"):
        build_messages(ScoreRequest("q", "a", "b"), (0, 0))
    with pytest.raises(ValueError, match="response_2 is empty"):
        build_messages(ScoreRequest("q", "a", " "))
