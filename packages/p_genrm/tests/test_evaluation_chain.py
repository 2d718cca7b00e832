import json

import pytest
from p_genrm.chain_parser import ChainSample, extract_analysis, parse_chain, try_parse_chain
from p_genrm.evaluation_chain import (
    JSON_END,
    JSON_START,
    PART1_HEADER,
    PART2_HEADER,
    ChainParseError,
    HistoryPair,
    ScoreRequest,
    build_messages,
    compute_final_score,
    render_chain,
    render_released_chain,
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
    p = parse_chain(chain_with(good_obj()), strict_arithmetic=True)
    assert (p.final_1, p.final_2) == (5.65, 6.0)
    assert [c.name for c in p.criteria] == ["concise", "warm tone", "accuracy", "examples"]
    assert p.analysis == "The user likes short answers."
    assert p.rationale == "response 2 is shorter"


def test_parse_accepts_one_decimal_rounding():
    obj = good_obj()
    obj["better_response"]["response_1"] = 5.7  # 5.65 rounded to one decimal
    assert parse_chain(chain_with(obj), strict_arithmetic=True).final_1 == 5.7


def test_render_chain_round_trips():
    text = render_chain("persona here", CRITERIA, rationale="r")
    for strict in (False, True):
        p = parse_chain(text, strict_arithmetic=strict)
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
def test_strict_parse_rejects_broken_json(mutate, reason):
    obj = good_obj()
    mutate(obj)
    with pytest.raises(ChainParseError) as e:
        parse_chain(chain_with(obj), strict_arithmetic=True)
    assert e.value.reason == reason


def test_strict_parse_rejects_broken_structure():
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
            parse_chain(text, strict_arithmetic=True)
        assert e.value.reason == reason.replace("_twice", "")


def test_chain_sample_records_failure_reason_without_scores():
    s = ChainSample.from_text("PART 1 only", (0, 1), strict_arithmetic=True)
    assert s.parsed is None and s.scores is None and s.error == "missing_part1"
    s = ChainSample.from_text("PART 1 only", (0, 1))
    assert s.parsed is None and s.scores is None and s.error == "missing_markers"


# The paper's worked example: weights 35/30/20/15 on scores 4, 6, 7, 7 give
# 4*.35 + 6*.30 + 7*.20 + 7*.15 = 1.4 + 1.8 + 1.4 + 1.05 = 5.65, but the chain states 5.4; response 2 states 8.0.
PAPER = [("Conciseness", 35, 4, 8), ("Warm tone", 30, 6, 8), ("Accuracy", 20, 7, 8), ("Examples", 15, 7, 8)]
RELEASED = (
    "PART 1: Chain-of-Thought Analysis\nThe user prefers short, warm answers.\n"
    "PART 2: Final Scoring and JSON Output\n"
    '<JSON_START>{"rationale": "A. Evaluation Criteria & Weights: Conciseness 35%, Warm tone 30%, Accuracy 20%, '
    "Examples 15%. B. Scoring Breakdown: Response 1: 4, 6, 7, 7; Final Score = 4x0.35 + 6x0.30 + 7x0.20 + 7x0.15 "
    '= 5.4. Response 2: 8, 8, 8, 8; Final Score = 8.0", "better_response": {"response_1": 5.4, '
    '"response_2": 8.0}}<JSON_END>'
)


def test_released_format_with_paper_slip_parses_leniently_and_prefers_response_2():
    p = parse_chain(RELEASED)  # default: the released checkpoints' format, stated scores as written
    assert (p.final_1, p.final_2) == (5.4, 8.0) and p.final_2 > p.final_1
    assert p.analysis == "The user prefers short, warm answers." and "5.4" in p.rationale and p.criteria == ()
    s = ChainSample.from_text(RELEASED, (1, 0))  # displayed response 2 was original response 1
    assert s.scores == (8.0, 5.4)
    with pytest.raises(ChainParseError) as e:  # our structured format needs the criteria list
        parse_chain(RELEASED, strict_arithmetic=True)
    assert e.value.reason == "schema"


def test_paper_slip_in_structured_format_lenient_accepts_strict_rejects():
    text = render_chain("a", PAPER, finals=(5.4, 8.0))
    assert parse_chain(text).final_1 == 5.4
    with pytest.raises(ChainParseError, match="5.65") as e:
        parse_chain(text, strict_arithmetic=True)
    assert e.value.reason == "arithmetic"
    assert parse_chain(render_chain("a", PAPER), strict_arithmetic=True).final_1 == 5.65


def test_released_renderer_and_lenient_variants():
    text = render_released_chain("persona", PAPER, finals=(5.4, 8.0))
    assert "= 5.4." in text and parse_chain(text).final_2 == 8.0
    body = '{"rationale": "r", "better_response": {"response_1": "6.5", "response_2": 3}}'
    # no PART headers, numeric strings, the markers echoed earlier in the text: the last block is read
    p = parse_chain(f"Output between <JSON_START> and <JSON_END>. Thinking... <JSON_START>{body}<JSON_END>")
    assert (p.final_1, p.final_2) == (6.5, 3.0) and p.analysis.startswith("Output between")
    for bad, reason in [("no block", "missing_markers"), ("<JSON_START>{'a': 1}<JSON_END>", "bad_json"),
                        ('<JSON_START>{"better_response": {"response_1": 1}}<JSON_END>', "schema"),
                        ('<JSON_START>{"better_response": {"response_1": NaN, "response_2": 1}}<JSON_END>', "schema"),
                        ('<JSON_START>{"better_response": {"response_1": "x", "response_2": 1}}<JSON_END>', "schema"),
                        ('<JSON_START>[1, 2]<JSON_END>', "schema")]:
        with pytest.raises(ChainParseError) as e:
            parse_chain(bad)
        assert e.value.reason == reason, bad


@pytest.mark.parametrize("strict", [False, True])
def test_parser_is_total_on_hostile_json(strict):
    head = "PART 1: Chain-of-Thought Analysis\nx\nPART 2: Final Scoring and JSON Output\n<JSON_START>"
    cases = [
        head + "[" * 100_000 + "]" * 100_000 + "<JSON_END>",  # RecursionError inside json
        head + '{"better_response": {"response_1": ' + "9" * 5000 + ', "response_2": 1}}<JSON_END>',  # ValueError
        head + '{"better_response": {"response_1": ' + "9" * 400 + ', "response_2": 1}}<JSON_END>',  # OverflowError
        head + '{"better_response": {"response_1": 1e999, "response_2": 1}}<JSON_END>',  # inf
        head + '{"criteria": [{"name": {"deep": [[[]]]}, "weight": 100, "response_1": 5, "response_2": 4}], '
               '"better_response": {"response_1": "\ud800", "response_2": 1}}<JSON_END>',
        None, 12, b"bytes",
    ]
    for text in cases:
        assert try_parse_chain(text, strict_arithmetic=strict) is None
        assert ChainSample.from_text(text, (0, 1), strict_arithmetic=strict).scores is None
        assert extract_analysis(text) is None or isinstance(extract_analysis(text), str)


def test_unshuffle_restores_original_order():
    assert unshuffle_scores((3.0, 8.0), (0, 1)) == (3.0, 8.0)
    assert unshuffle_scores((3.0, 8.0), (1, 0)) == (8.0, 3.0)
    s = ChainSample.from_text(render_chain("a", [("x", 100, 9, 2)]), (1, 0))
    assert s.scores == (2.0, 9.0)  # displayed response 1 (score 9) was original response 2


def test_build_messages_history_criteria_and_order():
    req = ScoreRequest("What is X?", "Answer A", "Answer B",
                       history=(HistoryPair("hi", "short reply", "long reply"),), stated_criteria="values: honesty")
    system, user = build_messages(req, (1, 0))
    assert '"rationale"' in system["content"] and '"criteria"' not in system["content"]  # released format
    assert '"criteria"' in build_messages(req, (1, 0), strict_arithmetic=True)[0]["content"]
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
