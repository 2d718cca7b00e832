import json

import pytest
from power_sampling.evaluation import build_prompt, get_method, get_task, load_problems, run_eval, summarize
from power_sampling.power_sampler import PowerSample
from rlcore.io import DataError


def test_registries_list_names_on_error():
    with pytest.raises(ValueError, match="available: .*math500"):
        get_task("mmlu")
    with pytest.raises(ValueError, match="available: .*low_temp"):
        get_method("beam")
    assert get_method("low_temp") == {"mcmc_steps": 0}
    assert get_method("base")["proposal_temperature"] == 1.0


def test_math_prompt_matches_reference_string():
    p = build_prompt("math500", {"problem": "What is 1+1?", "answer": "2"})
    assert p == ("Can you solve the following math problem? What is 1+1? Please reason step by step, and put your "
                 "final answer within \\boxed{{}}.")


def test_load_problems_jsonl_json_and_errors(tmp_path):
    f = tmp_path / "m.jsonl"
    f.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?", "answer": "4"}\n')
    assert len(load_problems("math500", str(f), limit=1)) == 1
    j = tmp_path / "MATH500.json"
    j.write_text(json.dumps([{"prompt": "3+3?", "answer": "6"}]))
    assert load_problems("math500", str(j))[0]["answer"] == "6"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "x"}\n')
    with pytest.raises(DataError, match="record 0: missing field 'answer'"):
        load_problems("math500", str(bad))
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_problems("math500", str(tmp_path / "nope.jsonl"))


def test_gpqa_hf_layout_is_shuffled_and_seeded(tmp_path):
    rec = {"Question": "Pick", "Correct Answer": "right", "Incorrect Answer 1": "w1", "Incorrect Answer 2": "w2",
           "Incorrect Answer 3": "w3"}
    f = tmp_path / "g.jsonl"
    f.write_text(json.dumps(rec) + "\n")
    a = load_problems("gpqa", str(f), seed=0)[0]
    assert a["choices"]["ABCD".index(a["answer"])] == "right"
    assert load_problems("gpqa", str(f), seed=0)[0]["answer"] == a["answer"]
    prompt = build_prompt("gpqa", a)
    assert "A) " in prompt and "D) " in prompt and "\\boxed{$LETTER}" in prompt


class _FakeSampler:
    """Returns canned completions (tests the harness, not the sampler)."""

    def __init__(self, texts):
        self.texts = texts

    def sample(self, prompts, num_chains):
        return [PowerSample(i, c, [1], self.texts[(i + c) % len(self.texts)], -1.0, 0.5, 3, "eos")
                for i in range(len(prompts)) for c in range(num_chains)]


def test_run_eval_and_summary_pass_at_k():
    problems = [{"question": "2+2", "answer": "4"}, {"question": "3+3", "answer": "6"}]
    rows = run_eval(lambda o: _FakeSampler(["\\boxed{4}", "\\boxed{6}"]), "arith", problems, ["power", "base"],
                    num_samples=2, batch_size=1)
    assert len(rows) == 8
    s = summarize(rows)
    # problem 0 (batch index 0): chains 0,1 -> texts 4, 6 -> 1 of 2 correct; problem 1 likewise -> accuracy .5
    assert s["power"]["accuracy"] == 0.5 and s["power"]["pass@2"] == 1.0
    assert s["base"]["grade_errors"] == 0 and s["power"]["acceptance_rate"] == 0.5


def test_builtin_data_reference_and_recipes_load():
    from pathlib import Path

    from power_sampling.config import EvalConfig
    from rlcore.cli import load_config

    problems = load_problems("arith", "builtin:arithmetic/test.jsonl", limit=3)
    assert len(problems) == 3 and build_prompt("arith", problems[0]).startswith("Question:")
    recipes = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))
    assert len(recipes) >= 4
    for r in recipes:
        cfg = load_config(EvalConfig, r)
        get_task(cfg.task)
        assert all(get_method(m) is not None for m in cfg.methods)
