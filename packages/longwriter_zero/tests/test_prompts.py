import pytest
from longwriter_zero.prompts import (
    NOTHINK_TEMPLATE_EN,
    STOP_STRINGS,
    THINK_TEMPLATE_ZH,
    build_prompt,
    extract_answer,
    has_cjk,
)


class TestBuildPrompt:
    def test_english_think(self):
        p = build_prompt("Write an essay.")
        assert p.endswith("  <|user|>: Write an essay. <|assistant|>:")
        assert "<think>" in p and "<answer>" in p and "<|用户|>" not in p

    def test_any_cjk_char_switches_to_chinese(self):
        p = build_prompt("Write an essay about 长城")
        assert p == THINK_TEMPLATE_ZH.replace("{question}", "Write an essay about 长城")
        assert p.endswith("<|用户|>: Write an essay about 长城 <|助手|>:")

    def test_nothink(self):
        p = build_prompt("Write.", think=False)
        assert p == NOTHINK_TEMPLATE_EN.replace("{question}", "Write.")
        assert "<think>" not in p

    def test_custom_template(self):
        assert build_prompt("q", template="<|user|>: {question} <|assistant|>:") == "<|user|>: q <|assistant|>:"

    @pytest.mark.parametrize("bad", ["", "   "])
    def test_empty_question(self, bad):
        with pytest.raises(ValueError, match="question"):
            build_prompt(bad)

    def test_template_without_placeholder(self):
        with pytest.raises(ValueError, match=r"\{question\}"):
            build_prompt("q", template="no placeholder")


def test_has_cjk_and_stops():
    assert has_cjk("中") and not has_cjk("English only, ñ é")
    assert STOP_STRINGS == ("<|user|>", "<|endoftext|>", "</answer>")


class TestExtractAnswer:
    def test_closed(self):
        assert extract_answer("<think>t</think><answer> Hi there </answer>") == "Hi there"

    def test_missing_close_tag_from_stop(self):
        assert extract_answer("<think>t</think>\n<answer>Hi there") == "Hi there"

    def test_trailing_stop_marker_removed(self):
        assert extract_answer("<answer>Hi<|user|>: next question") == "Hi"

    def test_after_think_without_answer_tag(self):
        assert extract_answer("<think>t</think> Plain") == "Plain"

    def test_no_tags(self):
        assert extract_answer("no tags at all") is None
        assert extract_answer("no tags at all", untagged="whole") == "no tags at all"

    def test_bad_untagged(self):
        with pytest.raises(ValueError, match="untagged"):
            extract_answer("x", untagged="maybe")
