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


HE_PROMPT = ('from typing import List\n\n\ndef add(a: int, b: int) -> int:\n    """ Add two numbers.\n'
             '    >>> add(1, 2)\n    3\n    """\n')


def test_humaneval_phi_prompt_rewrite():
    from power_sampling.evaluation import humaneval_phi_prompt, resolve_prompt_style

    assert humaneval_phi_prompt(HE_PROMPT, "add") == (
        "Write a Python function `add(a: int, b: int) -> int` to solve the following problem:\n"
        "Add two numbers.\n>>> add(1, 2)\n3")
    rec = {"prompt": HE_PROMPT, "entry_point": "add", "test": ""}
    assert build_prompt("humaneval", rec) == HE_PROMPT  # raw prompt for Qwen (paper)
    assert build_prompt("humaneval", rec, prompt_style="phi").startswith("Write a Python function `add(")
    assert resolve_prompt_style("auto", "microsoft/Phi-3.5-mini-instruct") == "phi"
    assert resolve_prompt_style("auto", "Qwen/Qwen2.5-7B") == "raw"
    with pytest.raises(ValueError, match="prompt_style"):
        resolve_prompt_style("llama", "x")


def test_official_defaults_top_k_50():
    """The official code samples with HF generate's default top_k=50, for the proposal and the 'std' baseline."""
    import torch
    from power_sampling import PowerSampler
    from power_sampling.config import SamplerConfig
    from rlcore.rollout import process_logits

    assert SamplerConfig().top_k == 50 and "top_k" not in get_method("base")
    logits = torch.arange(60, dtype=torch.float32)[None]  # 60 tokens, the 10 smallest fall outside the top 50
    q = torch.log_softmax(process_logits(logits, 0.25, 50), -1)
    assert torch.isinf(q[0, :10]).all() and torch.isfinite(q[0, 10:]).all()
    # hand value: log q(top token) = -log(sum_{j=0}^{49} e^{-4j}) = -log(1 / (1 - e^-4)) = log(1 - e^-4)
    assert abs(float(q[0, 59]) - float(torch.log1p(-torch.exp(torch.tensor(-4.0))))) < 1e-6
    from rlcore.testing import TableLM

    assert PowerSampler(TableLM()).top_k == 50 and PowerSampler(TableLM(), top_k=0).top_k == 0
