import math

import pytest
from rlcore.rewards import (
    call_reward,
    check_rewards,
    completion_text,
    extract_boxed,
    extract_tag,
    extract_think_answer,
    normalize_answer,
)


def test_extract_boxed_nested_and_last():
    assert extract_boxed(r"\boxed{1} and \boxed{\frac{a}{b}}") == r"\frac{a}{b}"
    assert extract_boxed(r"x \boxed{unclosed {") is None
    assert extract_boxed("no box") is None
    assert extract_boxed(r"\boxed{1}</think> final \boxed{2}", after="</think>") == "2"
    assert extract_boxed(r"<think>\boxed{1}</think> no box", after="</think>") is None
    assert extract_boxed(r"\fbox{7}") == "7"


def test_think_answer_tolerates_missing_close():
    assert extract_think_answer("<think>r</think><answer>a</answer>") == ("r", "a")
    assert extract_think_answer("<think>r</think><answer>a is") == ("r", "a is")
    assert extract_think_answer("<think>still thinking") == ("still thinking", None)
    assert extract_think_answer("plain") == (None, None)
    assert extract_tag("<answer>x</answer>", "answer", allow_unclosed=False) == "x"
    assert extract_tag("<answer>x", "answer", allow_unclosed=False) is None


def test_normalize_answer_squad():
    assert normalize_answer("The Cat, a  dog!") == "cat dog"
    assert normalize_answer("An apple") == "apple"


def test_completion_text_forms():
    assert completion_text("hi") == "hi"
    assert completion_text([{"role": "assistant", "content": "yo"}]) == "yo"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}]}]) == "a"
    with pytest.raises(TypeError):
        completion_text(3)


def test_check_rewards_errors():
    assert check_rewards("r", [1, None, 0.5], 3) == [1.0, None, 0.5]
    with pytest.raises(ValueError, match="'r' returned 2 values for 3"):
        check_rewards("r", [1, 2], 3)
    with pytest.raises(ValueError, match="non-finite"):
        check_rewards("r", [1, math.nan], 2)
    with pytest.raises(ValueError, match="non-finite"):
        check_rewards("r", [math.inf], 1)


def test_call_reward_uses_trl_signature():
    def length_reward(prompts, completions, target, **kwargs):
        return [-abs(len(c) - t) for c, t in zip(completions, target)]

    assert call_reward(length_reward, ["p", "p"], ["abc", "a"], target=[3, 3]) == [0.0, -2.0]
