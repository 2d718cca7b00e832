import pytest
from power_sampling.grading import (
    compute_pass_at_k,
    extract_choice,
    extract_code,
    extract_number,
    grade_choice,
    grade_math,
    grade_number,
    normalize_math,
    run_humaneval,
)


@pytest.mark.parametrize("completion,answer,correct", [
    ("We get \\boxed{\\frac{1}{2}}.", "0.5", True),
    ("\\boxed{\\dfrac{3}{4}}", "\\frac{3}{4}", True),
    ("first \\boxed{2} then \\boxed{3}", "3", True),  # the last box counts
    ("\\boxed{x^2+1}", "1+x^2", True),
    ("\\boxed{7}", "8", False),
])
def test_grade_math(completion, answer, correct):
    assert grade_math(completion, answer).correct is correct


def test_grade_math_without_box_is_wrong_and_not_an_error():
    g = grade_math("the answer is 3", "3")
    assert (g.correct, g.prediction, g.error) == (False, None, None)


def test_normalize_math():
    assert normalize_math("$\\left( 1,2 \\right)$") == "(1,2)"
    assert normalize_math("5.00") == "5"
    assert normalize_math("90^\\circ") == "90"


def test_choice_and_number():
    assert extract_choice("so \\boxed{B}") == "B"
    assert extract_choice("The answer is (D).") == "D"
    assert grade_choice("\\boxed{(a)}", "A").correct is False  # lower-case is not a letter choice
    assert grade_choice("\\boxed{C}", "c").correct
    assert extract_number("<answer> 1,234 </answer>") == "1234"
    assert grade_number("<think>2+2</think> \\boxed{4}", "4").correct
    assert grade_number("nothing", "4").prediction is None
    assert grade_number("answer is -3.0", "-3").correct


PROMPT = 'def add(a, b):\n    """Add two numbers."""\n'
TEST = "def check(f):\n    assert f(2, 3) == 5\n    assert f(-1, 1) == 0\n"


def test_humaneval_subprocess_pass_fail_timeout():
    assert run_humaneval(extract_code(PROMPT, "    return a + b\n"), TEST, "add").correct
    wrong = run_humaneval(extract_code(PROMPT, "    return a - b\n"), TEST, "add")
    assert not wrong.correct and "AssertionError" in wrong.detail and wrong.error is None
    slow = run_humaneval(extract_code(PROMPT, "    while True:\n        pass\n"), TEST, "add", timeout=1.0)
    assert not slow.correct and "timeout" in slow.detail
    crash = run_humaneval(extract_code(PROMPT, "    return a +\n"), TEST, "add")
    assert not crash.correct and "SyntaxError" in crash.detail


def test_extract_code_fenced_block():
    code = extract_code(PROMPT, "Here:\n```python\ndef add(a, b):\n    return a + b\n```\n")
    assert code.startswith("def add") and run_humaneval(code, TEST, "add").correct


def test_pass_at_k_hand_computed():
    assert compute_pass_at_k(4, 1, 2) == 0.5  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert compute_pass_at_k(4, 0, 3) == 0.0
    assert compute_pass_at_k(4, 2, 3) == 1.0  # n - c < k
    assert compute_pass_at_k(5, 2, 1) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="k <= n"):
        compute_pass_at_k(2, 1, 3)
