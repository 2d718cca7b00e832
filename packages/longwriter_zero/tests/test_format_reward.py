import pytest
from longwriter_zero.format_reward import check_format, compute_repetition_rate, get_format_reward

PARA = "the cat sat on the mat and looked at the dog"  # 11 tokens
OTHER = "a completely different paragraph about ships sailing over the cold northern sea"  # 12 tokens


class TestCheckFormat:
    @pytest.mark.parametrize("text", [
        "<think>plan</think><answer>text</answer>",
        "<think>plan</think>\n\n<answer>text",  # </answer> removed by the stop string
        "  <think>plan</think> <answer>text</answer>\n",
        "<think>plan</think><answer>text<|user|>: more",  # stop marker left in the text
    ])
    def test_valid_think(self, text):
        assert check_format(text)

    @pytest.mark.parametrize("text", [
        "<answer>text</answer>",  # no think
        "<think>a</think><think>b</think><answer>text",  # two think blocks
        "<think>a</think><answer>x</answer><answer>y</answer>",  # two answers
        "<answer>x</answer><think>a</think>",  # wrong order
        "preface <think>a</think><answer>x",  # text before think
        "<think>a</think> stray <answer>x",  # text between blocks
        "<think>a</think><answer>x</answer> trailing",  # text after the answer
        "<think>a</think><answer>   </answer>",  # empty answer
        "<think>a<answer>x</answer>",  # unclosed think
        "plain text",
    ])
    def test_invalid_think(self, text):
        assert not check_format(text)

    def test_nothink_mode(self):
        assert check_format("<answer>text", think=False)
        assert not check_format("<think>a</think><answer>text", think=False)


class TestRepetitionRate:
    def test_duplicate_paragraph(self):
        # paragraph 2 repeats paragraph 1: 11 of 22 tokens lie in a near-duplicate unit
        assert compute_repetition_rate(PARA + "\n\n" + PARA) == pytest.approx(0.5)

    def test_three_copies(self):
        assert compute_repetition_rate("\n".join([PARA] * 3)) == pytest.approx(2 / 3)

    def test_distinct_paragraphs(self):
        assert compute_repetition_rate(PARA + "\n\n" + OTHER) == 0.0

    def test_near_duplicate_threshold(self):
        # one word changed in the copy: 4-grams of the copy = 8, of which those not touching the change are seen
        edited = PARA.replace("looked", "stared")  # changes 4 of the 8 4-grams -> 4/8 = 0.5 seen
        assert compute_repetition_rate(PARA + "\n" + edited, threshold=0.5) == pytest.approx(0.5)
        assert compute_repetition_rate(PARA + "\n" + edited, threshold=0.6) == 0.0

    def test_looping_single_paragraph_is_caught_by_windows(self):
        text = " ".join([PARA] * 20)  # 220 tokens, one paragraph
        rate = compute_repetition_rate(text, unit_words=22)  # windows of 22 tokens: units 2..10 repeat unit 1
        assert rate == pytest.approx(9 / 10)

    def test_empty_and_short(self):
        assert compute_repetition_rate("") == 0.0
        assert compute_repetition_rate("one two") == 0.0

    def test_cjk_tokens(self):
        zh = "大海是蓝色的，风很大，船在航行"
        assert compute_repetition_rate(zh + "\n" + zh) == pytest.approx(0.5)

    def test_ascii_and_unicode_paths_agree(self):
        text = PARA + "\n\n" + OTHER + "\n" + PARA.upper() + ", again!"
        assert compute_repetition_rate(text) == compute_repetition_rate(text + " é") == pytest.approx(12 / 35)  # 3rd paragraph (PARA + 'again', 12 tokens) repeats; 35 tokens

    def test_fast_path_matches_plain_loop(self):
        import random

        def plain(answer, n=4, thr=0.5):
            import re

            units = [re.findall(r"[a-z0-9]+|[\u4e00-\u9fff]", p) for p in re.split(r"\n\s*", answer.lower())]
            units = [u for u in units if u]
            toks = [t for u in units for t in u]
            owner = [k for k, u in enumerate(units) for _ in u]
            first = {}
            seen_cnt, grams = [0] * len(units), [0] * len(units)
            for i in range(len(toks) - n + 1):
                if owner[i] != owner[i + n - 1]:
                    continue  # n-grams spanning paragraphs do not count
                g, k = tuple(toks[i:i + n]), owner[i + n - 1]
                first.setdefault(g, k)
                grams[k] += 1
                seen_cnt[k] += first[g] < k
            dup = sum(len(units[k]) for k in range(len(units)) if grams[k] and seen_cnt[k] >= thr * grams[k])
            return dup / max(1, len(toks))

        for seed in range(6):
            rng = random.Random(seed)
            vocab = ["sea", "ship", "wind", "cold", "night", "star"] + (["海", "Café", "风"] if seed % 2 else [])
            paras = [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 30))) for _ in range(8)]
            paras += rng.sample(paras, 3)
            text = "\n".join(paras)
            assert compute_repetition_rate(text, unit_words=10_000) == pytest.approx(plain(text))

    @pytest.mark.parametrize("kw", [{"ngram": 0}, {"threshold": 0}, {"threshold": 1.5}, {"unit_words": 0}])
    def test_bad_params(self, kw):
        with pytest.raises(ValueError):
            compute_repetition_rate("x", **kw)


class TestFormatRewardFunc:
    def test_values(self):
        f = get_format_reward()
        good = "<think>plan</think><answer>" + PARA + "\n\n" + OTHER
        repeated = "<think>plan</think><answer>" + PARA + "\n\n" + PARA
        out = f(prompts=["q"] * 4, completions=[good, repeated, "no tags", "<answer>x"])
        assert out == [1.0, pytest.approx(0.5), 0.0, 0.0]

    def test_penalty_applies_without_valid_format(self):
        f = get_format_reward(penalty=2.0)
        assert f(prompts=["q"], completions=["<answer>" + PARA + "\n" + PARA]) == [pytest.approx(-1.0)]

    def test_name(self):
        assert get_format_reward().__name__ == "format_reward"


class TestParaphraseRepetition:
    BASE = ("The old harbour town wakes slowly as fishing boats return through the morning fog with silver catches "
            "while merchants open wooden shutters and children carry baskets of bread along narrow cobbled streets "
            "toward the square where the bell tower marks each hour for sailors and farmers alike")
    OTHER = ("Far inland a quiet mountain monastery keeps ancient manuscripts in cold stone libraries where monks "
             "copy faded prayers by candlelight and tend terraced gardens of herbs growing beside a frozen spring")

    @staticmethod
    def _reword(text, share, seed=0):
        import random

        words = text.split()
        rng = random.Random(seed)
        for i in rng.sample(range(len(words)), int(share * len(words))):
            words[i] = f"zq{i}x"  # a different word at 30% of positions: every 4-gram touching it changes
        return " ".join(words)

    def test_reworded_repeat_is_caught_where_ngrams_miss_it(self):
        from longwriter_zero.format_reward import compute_paraphrase_repetition_rate

        answer = self.BASE + "\n\n" + self._reword(self.BASE, 0.3)
        assert compute_repetition_rate(answer) == 0.0  # the lexical 4-gram check misses it
        # the second paragraph (same token count as the first) is a near-duplicate: half the tokens
        assert compute_paraphrase_repetition_rate(answer) == pytest.approx(0.5)

    def test_distinct_paragraphs_on_one_topic_are_not_repeats(self):
        from longwriter_zero.format_reward import compute_paraphrase_repetition_rate

        assert compute_paraphrase_repetition_rate(self.BASE + "\n\n" + self.OTHER) == 0.0
        assert compute_paraphrase_repetition_rate(self.BASE) == 0.0
        assert compute_paraphrase_repetition_rate("") == 0.0

    def test_reward_modes(self):
        text = "<think>plan</think><answer>" + self.BASE + "\n\n" + self._reword(self.BASE, 0.3)
        both = get_format_reward()(prompts=["q"], completions=[text])[0]
        ngram = get_format_reward(repetition="ngram")(prompts=["q"], completions=[text])[0]
        assert ngram == 1.0 and both == pytest.approx(0.5)  # 1[valid] - 1.0 * 0.5

    def test_bad_mode(self):
        with pytest.raises(ValueError, match="repetition"):
            get_format_reward(repetition="semantic")
