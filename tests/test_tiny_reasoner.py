"""tools/train_tiny_reasoner.py: the synthetic task is right, training is seeded, the committed model reproduces."""

from __future__ import annotations

import json
import random

import pytest
from rlcore.builtins import ASSETS


def test_problems_are_correct(tool):
    ttr = tool("train_tiny_reasoner")
    rng = random.Random(0)
    for _ in range(200):
        p = ttr.make_problem(rng)
        if p["kind"] == "arithmetic":
            assert str(eval(p["question"].removeprefix("Compute ").rstrip("."))) == p["answer"]  # noqa: S307
        else:  # execute the definitions in dependency order, as the reasoning does
            defs, target = p["question"].rsplit(" What is ", 1)
            env: dict[str, int] = {}
            stmts = [d.rstrip(".") for d in defs.split(". ")]
            while len(env) < len(stmts):
                for st in stmts:
                    name, expr = st.split("=")
                    if name not in env:
                        try:
                            env[name] = eval(expr, {}, dict(env))  # noqa: S307
                        except NameError:
                            pass
            assert str(env[target.rstrip("?")]) == p["answer"]
        assert 0 <= int(p["answer"]) <= ttr.MAX_VALUE
        assert p["reasoning"].endswith(f"={p['answer']}.") or p["reasoning"].endswith(f"{p['answer']}.")


def test_prompt_format_is_the_documented_one(tool):
    ttr = tool("train_tiny_reasoner")
    assert ttr.build_prompt("Compute 2+3.") == "Question: Compute 2+3.\nAnswer: <think>"
    card = (ASSETS / "models" / "tiny-reasoner" / "README.md").read_text()
    assert 'return f"Question: {question}\\nAnswer: <think>"' in card


def test_training_is_seeded(tool):
    ttr = tool("train_tiny_reasoner")
    args = ttr.parse_args(["--steps", "3", "--batch-size", "4", "--hidden-size", "32", "--layers", "1",
                           "--heads", "2", "--n-test", "20", "--warmup", "2", "--log-every", "100"])
    corpus = [ttr.build_prompt(p["question"]) + ttr.completion_text(p) for p in ttr.make_split(4, 200)]
    tok = ttr.train_tokenizer(corpus, 320)
    runs = [ttr.train(tok, args, log=lambda _: None) for _ in range(2)]
    assert runs[0][1] == runs[1][1]  # identical losses step by step
    assert runs[0][1][-1] < runs[0][1][0]  # and it learns


def test_committed_tokenizer_is_what_the_script_trains(tool):
    from transformers import AutoTokenizer

    ttr = tool("train_tiny_reasoner")
    args = ttr.parse_args([])
    corpus = [ttr.build_prompt(p["question"]) + ttr.completion_text(p) for p in ttr.make_split(args.seed + 4, 3000)]
    tok = ttr.train_tokenizer(corpus, args.vocab_size)
    committed = AutoTokenizer.from_pretrained(str(ASSETS / "models" / "tiny-reasoner"))
    assert committed.get_vocab() == tok.get_vocab()
    metrics = json.loads((ASSETS / "models" / "tiny-reasoner" / ttr.METRICS_FILE).read_text())
    assert metrics["args"]["steps"] == args.steps and metrics["args"]["hidden_size"] == args.hidden_size


@pytest.mark.slow
def test_committed_model_reproduces_its_card(tool):
    """Re-evaluate the committed model on the committed test split: within EVAL_TOLERANCE of the card."""
    ttr = tool("train_tiny_reasoner")
    recorded, got = ttr.reevaluate(decodings=("temperature_1", "greedy"))
    lines = ttr.compare(recorded, got, ttr.EVAL_TOLERANCE)
    assert not any(ln.startswith("FAIL") for ln in lines), lines
    # a real but imperfect model: a fair share solved at temperature 1, not all; greedy does better
    assert 0.15 <= got["temperature_1"]["accuracy"] <= 0.85
    assert got["greedy"]["accuracy"] > got["temperature_1"]["accuracy"]
