import json

import pytest
from longwriter_zero.length_predictor import LengthRangePredictor, parse_range_json, rule_based_range


class TestRules:
    @pytest.mark.parametrize("query, expected", [
        ("Write a 2,000 word essay", (1800, 2200)),
        ("Write a 2,000-word essay", (1800, 2200)),
        ("about 500 words on cats", (450, 550)),
        ("in no more than 2,000 words", (1800, 2000)),
        ("at most 300 words", (270, 300)),
        ("at least 2000 words", (2000, 2200)),
        ("a 2k words report", (1800, 2200)),
        ("500-800 words", (500, 800)),
        ("between 1000 to 1500 words", (1000, 1500)),
        ("写一篇3000字的文章", (2700, 3300)),
        ("不少于1000字", (1000, 1100)),
        ("800字以内", (720, 800)),
        ("Write a 20,000 word novel", (0, 0)),  # beyond the 12,000 ceiling
    ])
    def test_explicit_counts(self, query, expected):
        assert rule_based_range(query) == expected

    @pytest.mark.parametrize("query", ["Write a poem", "In 2024 we had 3 cats", "Write an essay on 1984"])
    def test_no_count(self, query):
        assert rule_based_range(query) is None


class TestParseJson:
    @pytest.mark.parametrize("text, expected", [
        ('{"range": [800, 1000]}', (800, 1000)),
        ('thinking... {"range": [1, 2]} final: {"range": [400, 800]}', (400, 800)),
        ('{"range": [0, 0]}', (0, 0)),
        ('{"range": [900, 800]}', None),
        ('{"range": [800, 13000]}', None),
        ('{"range": ["800", "1000"]}', None),
        ('{"range": [800.5, 1000]}', None),
        ("[800, 1000]", None),
        ("", None),
    ])
    def test_parse(self, text, expected):
        assert parse_range_json(text) == expected


def test_predictor_rules_model_fallback_and_cache():
    p = LengthRangePredictor(fallback_range=(0, 0))
    replies = iter(['{"range": [800, 1000]}', "I think around a thousand words"])
    calls = []

    def fake_generate(queries):
        calls.append(list(queries))
        return [next(replies) for _ in queries]

    p.generator = object()  # any non-None generator triggers the assessor path
    p._generate = fake_generate
    out = p.predict(["Write 500 words", "Write an essay", "Write a letter", "Write an essay"])
    assert [(x.lower, x.upper, x.source) for x in out] == [
        (450, 550, "rule"), (800, 1000, "model"), (0, 0, "fallback"), (800, 1000, "model")]
    assert calls == [["Write an essay", "Write a letter"]]  # each distinct query assessed once
    again = p.predict(["Write an essay"])
    assert again[0].source == "cached" and again[0].range == [800, 1000]
    assert len(calls) == 1


def test_predictor_with_tiny_lm_falls_back(tiny_policy):
    from rlcore.builtins import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(tiny_policy, device="cpu")
    p = LengthRangePredictor(model, tok, fallback_range=(500, 1000), max_new_tokens=4)
    (pred,) = p.predict(["Write an essay"])
    assert pred.source == "fallback" and pred.range == [500, 1000] and isinstance(pred.raw, str)


def test_predictor_bad_args():
    with pytest.raises(ValueError, match="tokenizer"):
        LengthRangePredictor(model=object())
    with pytest.raises(ValueError, match="fallback_range"):
        LengthRangePredictor(fallback_range=(10, 5))


def test_predict_length_file_keeps_cached(tmp_path):
    from longwriter_zero.config import PredictLengthConfig
    from longwriter_zero.length_predictor import predict_length_file

    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n".join(json.dumps(r) for r in [
        {"question": "Write 1000 words"}, {"question": "Write a poem"},
        {"question": "Write a novel", "length_range": [6000, 9000]}]) + "\n")
    counts = predict_length_file(PredictLengthConfig(input=str(inp), output=str(out)))
    assert counts == {"cached": 1, "rule": 1, "fallback": 1}
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["length_range"] for r in rows] == [[900, 1100], [0, 0], [6000, 9000]]
    assert [r.get("length_source") for r in rows] == ["rule", "fallback", None]


def test_ambiguous_counts_go_to_the_assessor_through_rlcore():
    from rlcore.testing import ScriptedGenerator, recording_generators, tiny_tokenizer

    gen = ScriptedGenerator(lambda prompt: '{"range": [200, 300]}', tiny_tokenizer())
    p = LengthRangePredictor(generator=gen)
    with recording_generators() as calls:
        (pred,) = p.predict(["Summarize this 5,000-word article in 200 words"])
    assert (pred.lower, pred.upper, pred.source) == (200, 300, "model")  # not the rules' [4500, 5500]
    assert len(calls) == 1 and calls[0].params.temperature == 0.0  # greedy, via rlcore.rollout


def test_length_rules_off_sends_every_query_to_the_assessor():
    from rlcore.testing import ScriptedGenerator, tiny_tokenizer

    gen = ScriptedGenerator(lambda prompt: '{"range": [400, 600]}', tiny_tokenizer())
    on = LengthRangePredictor(generator=gen).predict(["Write 1000 words"])[0]
    off = LengthRangePredictor(generator=gen, use_rules=False).predict(["Write 1000 words"])[0]
    assert (on.range, on.source) == ([900, 1100], "rule") and (off.range, off.source) == ([400, 600], "model")


def test_length_rules_flag_is_validated():
    from longwriter_zero.config import PredictLengthConfig

    with pytest.raises(ValueError, match="length_rules"):
        PredictLengthConfig(input="a", output="b", length_rules="maybe")
