import pytest
from p_genrm.evaluation_chain import ScoreRequest, render_chain
from p_genrm.scoring import GenRMScorer, render_prompt

REQ = ScoreRequest("Tell me a joke", "A short joke.", "A very long joke ...", user_id="u1")


def test_batched_sampling_one_call_per_count(scripted):
    gen = scripted()
    res = GenRMScorer(gen, max_retries=0).sample_chains([REQ, REQ, REQ], 4)
    assert gen.calls == [(3, 4)]
    assert all(len(r) == 4 and all(s.parsed is not None for s in r) for r in res)


def test_mixed_counts_group_by_count(scripted):
    gen = scripted()
    res = GenRMScorer(gen).sample_chains([REQ, REQ, REQ], [2, 1, 2])
    assert sorted(gen.calls) == [(1, 1), (2, 2)]
    assert [len(r) for r in res] == [2, 1, 2]


def test_failed_parses_are_retried_then_reported(scripted):
    bad = "PART 1: Chain-of-Thought Analysis\nno scores"
    good = render_chain("a", [("x", 100, 6, 5)])
    gen = scripted([bad, good, bad, bad])  # round 0: 2 bad of 3; retry 1: 1 of 2 bad; retry 2: good
    sc = GenRMScorer(gen, max_retries=2)
    res = sc.sample_chains([REQ], 3)[0]
    assert all(s.parsed is not None for s in res)
    assert sc.stats.retried == 3 and sc.stats.parsed == 3
    assert gen.calls == [(1, 3), (2, 1), (1, 1)]
    gen2 = scripted([bad] * 10)
    sc2 = GenRMScorer(gen2, max_retries=1)
    res2 = sc2.sample_chains([REQ], 2)[0]
    assert [s.error for s in res2] == ["missing_markers", "missing_markers"]
    assert sc2.stats.failures["missing_markers"] == 2 and sc2.stats.parsed == 0
    sc3 = GenRMScorer(scripted([bad] * 10), max_retries=0, strict_arithmetic=True)
    assert sc3.sample_chains([REQ], 1)[0][0].error == "missing_part2"


def test_shuffle_is_undone(scripted):
    # The generator always rates displayed response 1 higher: original-order scores must follow the shuffle.
    gen = scripted(default=render_chain("a", [("x", 100, 9, 2)]))
    sc = GenRMScorer(gen, seed=3)
    res = sc.sample_chains([REQ] * 20, 1)
    for r in res:
        s = r[0]
        assert s.scores == ((9.0, 2.0) if s.order == (0, 1) else (2.0, 9.0))
    assert {r[0].order for r in res} == {(0, 1), (1, 0)}


def test_bad_arguments(scripted):
    with pytest.raises(ValueError, match="max_retries"):
        GenRMScorer(scripted(), max_retries=-1)
    with pytest.raises(ValueError, match="one per request"):
        GenRMScorer(scripted()).sample_chains([REQ, REQ], [1])


def test_render_prompt_uses_chat_template():
    from rlcore.testing import tiny_tokenizer

    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert render_prompt(msgs, tiny_tokenizer()).endswith("<|im_start|>assistant\n")
    assert render_prompt(msgs, None).endswith("ASSISTANT:\n")


def test_tiny_causal_lm_through_hf_generator():
    from rlcore.rollout import HFGenerator
    from rlcore.testing import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer()
    gen = HFGenerator(tiny_causal_lm(tok), tok)
    sc = GenRMScorer(gen, max_new_tokens=4, max_retries=1)
    res = sc.sample_chains([REQ, REQ], 2)
    # a random tiny model never writes a valid chain: every sample is reported, none guessed
    assert [len(r) for r in res] == [2, 2]
    assert all(s.parsed is None and s.scores is None for r in res for s in r)
    assert sum(sc.stats.failures.values()) == 4 and sc.stats.generate_calls == 2


def test_system_prompt_folded_for_templates_without_a_system_turn():
    from p_genrm.scoring import fit_messages, template_supports_system
    from rlcore.builtins import resolve
    from rlcore.testing import tiny_tokenizer
    from transformers import AutoTokenizer

    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    tr = AutoTokenizer.from_pretrained(resolve("builtin:tiny-reasoner"))  # its template raises on "system"
    assert not template_supports_system(tr) and template_supports_system(tiny_tokenizer())
    assert fit_messages(msgs, tr) == [{"role": "user", "content": "S\n\nU"}]
    assert render_prompt(msgs, tr) == "Question: S\n\nU\nAnswer: <think>"
    assert fit_messages(msgs, tiny_tokenizer()) == msgs


def test_fit_to_context_truncates_from_the_left_and_lowers_the_budget():
    from p_genrm.scoring import fit_to_context

    ids = [list(range(300)), [7] * 10]
    out, budget, cut = fit_to_context(ids, 3072, 256)
    # budget = max(256 - 300, min(3072, 256 // 4)) = 64; prompts keep their last 256 - 64 = 192 tokens
    assert (budget, cut) == (64, 1) and out[0] == list(range(108, 300)) and out[1] == [7] * 10
    assert fit_to_context(ids, 100, 512) == (ids, 100, 0)  # fits: unchanged
    assert fit_to_context(ids, 100, None) == (ids, 100, 0)  # unknown context
    assert fit_to_context([[1] * 100], 300, 256)[1:] == (156, 0)  # only the budget shrinks
