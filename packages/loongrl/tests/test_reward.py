import pytest
from loongrl.reward import (
    compute_exact_match,
    compute_f1,
    compute_math_match,
    compute_sub_em,
    extract_final_answer,
    get_loongrl_reward,
    get_sub_em_reward,
    reward_kind,
    score_response,
)
from rlcore.rewards import call_reward


class TestExtractFinalAnswer:
    def test_last_box_after_last_think(self):
        r = r"<think>maybe \boxed{Rome}</think> draft \boxed{Milan} final \boxed{Paris}"
        assert extract_final_answer(r) == "Paris"

    def test_box_only_inside_think_is_not_an_answer(self):
        assert extract_final_answer(r"<think>\boxed{Rome}</think> I am not sure.") is None

    def test_no_think_close_is_none(self):
        assert extract_final_answer(r"\boxed{Paris}") is None

    def test_last_of_several_think_closes(self):
        assert extract_final_answer(r"</think>\boxed{A} </think> \boxed{B}") == "B"

    def test_nested_braces_fbox_space_form_and_stars(self):
        assert extract_final_answer(r"</think>\boxed{\text{New {York}}}") == r"\text{New {York}}"
        assert extract_final_answer(r"</think>\fbox{Oslo}") == "Oslo"
        assert extract_final_answer("</think> $\\boxed 42$") == "42"
        assert extract_final_answer(r"</think>\boxed{**Bern**}") == "Bern"

    def test_unclosed_box(self):
        assert extract_final_answer(r"</think>\boxed{Paris") is None


class TestSubEM:
    def test_two_way_substring(self):
        assert compute_sub_em("Paris", ["Paris, France"]) == 1.0  # pred in gold
        assert compute_sub_em("It is the city of Paris", ["Paris"]) == 1.0  # gold in pred
        assert compute_sub_em("Lyon", ["Paris"]) == 0.0

    def test_normalisation_and_max_over_golds(self):
        assert compute_sub_em("THE Beatles!", ["Rolling Stones", "the beatles"]) == 1.0

    def test_empty_prediction_guard(self):
        # "The" normalises to "" which the official `pred in gold` scores 1; we score 0 unless asked
        assert compute_sub_em("The", ["Paris"]) == 0.0
        assert compute_sub_em("The", ["Paris"], credit_empty_prediction=True) == 1.0
        assert compute_sub_em(None, ["Paris"], credit_empty_prediction=True) == 0.0


def test_f1_hand_computed():
    # pred "barack obama jr" vs gold "barack obama": common 2, P=2/3, R=1, F1=2*(2/3)/(5/3)=0.8
    assert compute_f1("Barack Obama Jr", ["Barack Obama"]) == pytest.approx(0.8)
    assert compute_f1("x", ["y", "x"]) == 1.0 and compute_f1(None, ["x"]) == 0.0


def test_trl_reward_on_hand_made_responses():
    reward = get_sub_em_reward()
    assert reward.__name__ == "sub_em"
    completions = [
        r"<think>chain a1->b2->question: capital of France</think> The answer is \boxed{Paris}.",
        [{"role": "assistant", "content": r"<think>hmm</think>\boxed{Lyon}"}],
        r"no reasoning \boxed{Paris}",
        r"<think>x</think>\boxed{The}",
    ]
    out = call_reward(reward, ["p"] * 4, completions, answers=[["Paris"]] * 4)
    assert out == [1.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="'answers' column"):
        reward(prompts=["p"], completions=["x"])


def test_reward_pickles():
    import pickle

    r = pickle.loads(pickle.dumps(get_sub_em_reward(credit_empty_prediction=True)))
    assert r(prompts=["p"], completions=[r"</think>\boxed{the}"], answers=[["x"]]) == [1.0]


class TestRoutedRewards:
    """Issue 17: sub-EM only for QA rows; math rows get math-verify, needle rows exact match."""

    @pytest.mark.parametrize(("pred", "gold"), [("2024", "2"), ("1", "12"), ("2", r"\frac{1}{2}")])
    def test_hackable_pairs_score_0_on_math_and_needle_rows(self, pred, gold):
        response = rf"<think>t</think>\boxed{{{pred}}}"
        assert compute_sub_em(pred, [gold]) == 1.0  # the official two-way rule, still used for QA rows
        assert score_response(response, [gold], "qa") == 1.0
        assert score_response(response, [gold], "math") == 0.0
        assert score_response(response, [gold], "needle") == 0.0

    def test_math_verifier_accepts_equivalent_forms(self):
        assert compute_math_match("0.5", [r"\frac{1}{2}"]) == 1.0
        assert compute_math_match(r"\frac{\sqrt{2}}{2}", [r"\sqrt{2}/2"]) == 1.0
        assert compute_math_match("2024", ["2024"]) == 1.0 and compute_math_match("2025", ["2024"]) == 0.0
        assert compute_math_match(None, ["1"]) == 0.0 and compute_math_match("  ", ["1"]) == 0.0

    def test_exact_match(self):
        assert compute_exact_match("7654321", ["7654321"]) == 1.0
        assert compute_exact_match("765432", ["7654321"]) == 0.0 and compute_exact_match("", [""]) == 0.0

    def test_reward_kind_routing(self):
        assert [reward_kind(s) for s in ("qa", "needle", "math", None, "", "custom_longcontext_needle_qa_hotpot",
                                         "custom_longcontextqa_musique", "math_dapo", "DigitalLearningGmbH/MATH",
                                         "needle_retrieval", "niah")] == [
            "qa", "needle", "math", "qa", "qa", "qa", "qa", "math", "math", "needle", "needle"]

    def test_trl_reward_routes_by_data_source_column(self):
        reward = get_loongrl_reward()
        completions = [r"<think>t</think>\boxed{2024}"] * 3
        out = call_reward(reward, ["p"] * 3, completions, answers=[["2"]] * 3, data_source=["qa", "math", "needle"])
        assert out == [1.0, 0.0, 0.0]
        assert pickle_roundtrip(reward).__name__ == "loongrl"


def pickle_roundtrip(obj):
    import pickle

    return pickle.loads(pickle.dumps(obj))


def _is_score(x):
    return isinstance(x, float) and x in (0.0, 1.0)


def test_parsers_and_rewards_are_total():
    """Issue 15: every parser/reward of the package on the same >= 1000 adversarial cases plus ~1 MB inputs (one
    harness pass: each function sees every case), no exception, < 1 s per case for all of them together."""
    from loongrl.difficulty_filter import compute_cem, extract_the_answer_is
    from loongrl.keychain import follow_chain
    from loongrl.memory_agent import memory_from_response, split_units
    from rlcore.testing import fuzz_total

    reward = get_loongrl_reward()
    checks = {
        "extract_final_answer": (extract_final_answer, lambda r: r is None or isinstance(r, str)),
        "sub_em": (lambda s: score_response(s, ["Paris", s[:50]], "qa"), _is_score),
        "math": (lambda s: score_response(s, [r"\frac{1}{2}", s[-40:]], "math"), _is_score),
        "needle": (lambda s: score_response(s, ["1234567"], "needle"), _is_score),
        "trl_reward": (lambda s: reward(["p"] * 3, [s] * 3, answers=[["1"]] * 3, data_source=["qa", "math", "needle"]),
                       lambda r: len(r) == 3 and all(map(_is_score, r))),
        "answer_is": (extract_the_answer_is, lambda r: r is None or isinstance(r, str)),
        "cem": (lambda s: compute_cem(extract_the_answer_is(s), ["Paris, France", s[:20]]), _is_score),
        "follow_chain": (lambda s: follow_chain(s, "a"), lambda r: isinstance(r, list)),
        "split_units": (split_units, lambda r: isinstance(r, list)),
        "memory_from_response": (memory_from_response, lambda r: isinstance(r, str)),
        "f1": (lambda s: compute_f1(extract_final_answer(s), ["a b", s[:30]]), lambda r: 0.0 <= r <= 1.0),
    }

    def all_of_them(s):
        return {name: fn(s) for name, (fn, _) in checks.items()}

    def ok(results):
        return all(checks[name][1](r) for name, r in results.items())

    fuzz_total(all_of_them, n_cases=1000, max_seconds=1.0, check=ok)
