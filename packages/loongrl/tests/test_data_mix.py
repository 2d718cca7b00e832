"""`loongrl synth-mix` writes the multi-hop, needle and math files the recipes read, each row routed by data_source;
`loongrl filter` streams through rlcore's generator."""

import json
from pathlib import Path

import pytest
from loongrl.cli import app
from loongrl.data import make_synthetic_qa, save_qa
from loongrl.data_mix import load_math
from loongrl.reward import reward_kind, score_response
from loongrl.trainer import extra_rows, multihop_rows
from rlcore.io import DataError
from typer.testing import CliRunner

runner = CliRunner()


def _jsonl(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    from rlcore.testing import tiny_tokenizer

    d = tmp_path_factory.mktemp("tok")
    tiny_tokenizer().save_pretrained(str(d))
    return str(d)


def test_synth_mix_writes_the_recipe_files(tmp_path, tok_dir):
    from rlcore.testing import tiny_tokenizer

    seed = tmp_path / "seed.jsonl"
    save_qa(seed, make_synthetic_qa(40, seed=0))
    math = tmp_path / "math.json"
    math.write_text(json.dumps([{"problem": "What is 1/2 + 0?", "solution": r"It is \boxed{\frac{1}{2}}."},
                                {"question": "2+2?", "answer": 4}]))
    out = tmp_path / "data"
    r = runner.invoke(app, ["synth-mix", "--input", str(seed), "--math-input", str(math), "--tokenizer", tok_dir,
                            "--max-seq-length", "1024", "--output-dir", str(out), "--num-multihop", "3",
                            "--num-needle", "2", "--reserve-tokens", "16", "--doc-step", "2"])
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["math.jsonl", "multihop_1k.jsonl", "needle_1k.jsonl"]
    mh, nd, mt = (_jsonl(out / n) for n in ("multihop_1k.jsonl", "needle_1k.jsonl", "math.jsonl"))
    assert len(mh) == 3 and all(r["data_source"] == "qa" and r["length"] < 1024 - 16 for r in mh)
    tok = tiny_tokenizer()
    assert all(len(tok(r["prompt"], add_special_tokens=False)["input_ids"]) == 1024 - 16 for r in nd)
    assert [r["answers"] for r in mt] == [[r"\frac{1}{2}"], ["4"]] and {r["data_source"] for r in mt} == {"math"}
    # the trainer reads them and routes each row's reward
    rows = multihop_rows(mh, where="mh") + extra_rows(nd, where="nd") + extra_rows(mt, where="mt")
    assert [reward_kind(r["data_source"]) for r in rows] == ["qa"] * 3 + ["needle"] * 2 + ["math"] * 2
    assert score_response(r"<think>.</think>\boxed{0.5}", rows[-2]["answers"], "math") == 1.0


def test_builtin_math_and_bad_rows(tmp_path):
    rows = load_math("builtin:arithmetic", limit=5)
    assert len(rows) == 5 and all(r["answer"] and "Answer: <think>" not in r["problem"] for r in rows)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": "x?"}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl row 0: no answer"):
        load_math(str(bad))
    with pytest.raises(FileNotFoundError, match="math input not found"):
        load_math("./nope.jsonl")


def test_extra_rows_without_data_source_are_an_error():
    with pytest.raises(DataError, match="record 0: needs 'data_source'"):
        extra_rows([{"prompt": "p", "answers": ["1"]}], where="x.jsonl")


def test_filter_cli_streams_through_rlcore_and_resumes(tmp_path):
    from rlcore.testing import recording_generators

    seed = tmp_path / "seed.jsonl"
    save_qa(seed, make_synthetic_qa(3, seed=0))
    out = tmp_path / "kept.jsonl"
    args = ["filter", "--model", "builtin:tiny-reasoner", "--input", str(seed), "--output", str(out),
            "--num-samples", "2", "--max-new-tokens", "8", "--batch-size", "2"]
    with recording_generators() as calls:
        r = runner.invoke(app, [*args, "--limit", "2"])
    assert r.exit_code == 0, r.output
    assert calls and calls[0].kind == "generate" and calls[0].params.n == 2
    assert [x["id"] for x in _jsonl(str(out) + ".passes.jsonl")] == ["syn-0-0", "syn-0-1"]
    with recording_generators() as calls:
        r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert sum(len(c.prompt_ids) for c in calls) == 1  # only the missing item
    stats = json.loads(Path(str(out) + ".stats.json").read_text())
    assert stats["total"] == 3 and sum(stats["pass_histogram"].values()) == 3
