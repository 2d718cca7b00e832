import pytest
from longwriter_zero.verifier import check_constraints, get_constraint_reward


@pytest.mark.parametrize("text, rng, think, expected", [
    ("<think>p</think><answer>one two three", [2, 4], True, True),
    ("<think>p</think><answer>one", [2, 4], True, False),              # too short
    ("<think>p</think><answer>a b c d e", [2, 4], True, False),          # too long
    ("one two three", [2, 4], True, False),                            # no think/answer blocks
    ("<answer>one two three</answer>", [2, 4], False, True),           # No-think format
    ("<think>p</think><answer>one", [0, 0], True, True),               # [0, 0]: no length constraint
    ("<think>p</think><answer>one", "garbage", True, True),            # unusable range counts as none
    ("<think>a</think><think>b</think><answer>x y", [1, 3], True, False),  # two think blocks
])
def test_check_constraints(text, rng, think, expected):
    assert check_constraints(text, rng, think) is expected


def test_reward_signature_and_name():
    f = get_constraint_reward()
    assert f.__name__ == "constraint_reward"
    out = f(prompts=["q"] * 2, completions=[[{"role": "assistant", "content": "<think>t</think><answer>a b"}], "x"],
            length_range=[[2, 2], [1, 1]])
    assert out == [1.0, 0.0]
