import pickle

import pytest
from longwriter_zero.length_reward import compute_length_reward, count_words, get_length_reward


class TestCountWords:
    def test_english_words(self):
        assert count_words("The cat's hat, 42 times!") == 5  # The, cat, s, hat, times (42 is not [a-zA-Z])

    def test_cjk_chars_each_count(self):
        assert count_words("你好，世界") == 4

    def test_mixed(self):
        assert count_words("AI 模型 writes 文章") == 6  # AI, writes + 4 CJK chars


    @pytest.mark.parametrize("seed", range(5))
    def test_ascii_fast_path_matches_regex(self, seed):
        import random
        import re

        rng = random.Random(seed)
        alphabet = "abcXYZ019_ -,.'\n\t"
        for _ in range(50):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
            assert count_words(text) == len(re.findall(r"\b[a-zA-Z]+\b", text)), text

    def test_non_ascii_word_boundaries(self):
        # unicode word chars glue to ASCII letters under \b: "café" and "AI模型" contain no [a-zA-Z]+ word
        assert count_words("café AI模型") == 2  # only the 2 CJK chars


class TestComputeLengthReward:
    # range [800, 1000], l_max 12000
    @pytest.mark.parametrize("length, expected", [
        (800, 1.0),  # lower edge, inclusive
        (1000, 1.0),  # upper edge, inclusive
        (799, 799 / 800),  # just below: l / L_lo
        (0, 0.0),
        (400, 0.5),
        (1001, 10999 / 11000),  # just above: (12000 - 1001) / (12000 - 1000)
        (6500, 0.5),  # (12000 - 6500) / 11000
        (12000, 0.0),
        (15000, 0.0),  # clipped at 0
    ])
    def test_piecewise(self, length, expected):
        assert compute_length_reward(length, 800, 1000, 12000) == pytest.approx(expected)

    def test_upper_at_l_max_is_cliff(self):
        assert compute_length_reward(12001, 10000, 12000, 12000) == 0.0
        assert compute_length_reward(12000, 10000, 12000, 12000) == 1.0

    @pytest.mark.parametrize("lo, hi", [(0, 0), (-1, 5), (10, 5)])
    def test_invalid_range(self, lo, hi):
        with pytest.raises(ValueError, match="range"):
            compute_length_reward(5, lo, hi)


class TestLengthRewardFunc:
    def test_counts_answer_only_and_tolerates_missing_close(self):
        f = get_length_reward(l_max=100)
        think = "<think>" + "plan " * 50 + "</think>"
        out = f(prompts=["q"] * 3, completions=[think + "<answer>one two three four", think + "<answer>one",
                                                  "<answer>" + "w " * 55],
                length_range=[[4, 5], [4, 5], [4, 5]])
        assert out == [1.0, 0.25, pytest.approx((100 - 55) / 95)]

    def test_zero_range_is_none(self):
        f = get_length_reward()
        assert f(prompts=["q"], completions=["<answer>x"], length_range=[[0, 0]]) == [None]

    def test_missing_answer_scores_zero(self):
        f = get_length_reward()
        assert f(prompts=["q"], completions=["no tags here"], length_range=[[5, 9]]) == [0.0]
        g = get_length_reward(untagged="whole")
        assert g(prompts=["q"], completions=["one two three four five"], length_range=[[5, 9]]) == [1.0]

    def test_chat_completion(self):
        f = get_length_reward()
        assert f(prompts=["q"], completions=[[{"role": "assistant", "content": "<answer>一二三"}]],
                 length_range=[[3, 3]]) == [1.0]

    def test_missing_column_and_bad_range(self):
        f = get_length_reward()
        with pytest.raises(ValueError, match="length_range"):
            f(prompts=["q"], completions=["<answer>x"])
        with pytest.raises(ValueError, match=r"length_range\[0\]"):
            f(prompts=["q"], completions=["<answer>x"], length_range=[[9, 3]])
        with pytest.raises(ValueError, match=r"length_range\[0\]"):
            f(prompts=["q"], completions=["<answer>x"], length_range=["800-1000"])

    def test_picklable_with_name(self):
        f = pickle.loads(pickle.dumps(get_length_reward(l_max=5000)))
        assert f.__name__ == "length_reward" and f.l_max == 5000
