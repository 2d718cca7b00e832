import pytest
from loongrl.reward import compute_f1, compute_sub_em, extract_final_answer, get_sub_em_reward
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
