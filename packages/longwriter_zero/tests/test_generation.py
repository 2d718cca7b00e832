import json

import pytest


def _requests(path, n):
    path.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Write line {i} about the sea."}) + "\n"
                            for i in range(n)))
    return str(path)


def _cfg(policy, inp, out, **kw):
    from longwriter_zero.config import GenerateConfig

    base = dict(model=policy, input=inp, output=str(out), template="<|user|>: {question} <|assistant|>:",
                max_new_tokens=6, device="cpu", batch_size=2, seed=3)
    base.update(kw)
    return GenerateConfig(**base)


def test_generation_goes_through_rlcore(tiny_policy, tmp_path):
    from longwriter_zero.generation import generate_file
    from rlcore.testing import recording_generators

    with recording_generators() as calls:
        counts = generate_file(_cfg(tiny_policy, _requests(tmp_path / "q.jsonl", 3), tmp_path / "g.jsonl"))
    assert counts == {"written": 3, "skipped": 0}
    assert [c.kind for c in calls] == ["generate", "generate"]  # batches of 2 + 1
    assert calls[0].params.stop == ["<|user|>", "<|endoftext|>", "</answer>"]  # the paper's stop strings
    rows = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q0", "q1", "q2"] and all("completion" in r for r in rows)


def test_interrupted_run_resumes_with_only_the_missing_records(tiny_policy, tmp_path):
    """A rerun writes only what is missing, and the result equals an uninterrupted run (per-request seeds)."""
    from longwriter_zero.generation import generate_file

    inp = _requests(tmp_path / "q.jsonl", 5)
    full = tmp_path / "full.jsonl"
    generate_file(_cfg(tiny_policy, inp, full))
    part = tmp_path / "part.jsonl"
    lines = full.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:2]) + lines[2][:10])  # two records done, a third cut mid-write (a kill)
    counts = generate_file(_cfg(tiny_policy, inp, part))
    assert counts == {"written": 3, "skipped": 2}
    assert part.read_text() == full.read_text()


def test_duplicate_ids_are_an_error(tmp_path):
    from longwriter_zero.generation import generate_file
    from rlcore.io import DataError

    p = tmp_path / "q.jsonl"
    p.write_text('{"id": 1, "question": "a"}\n{"id": 1, "question": "b"}\n')
    with pytest.raises(DataError, match="duplicate id"):
        generate_file(_cfg("unused", str(p), tmp_path / "o.jsonl"))


def test_vllm_backend_without_vllm_is_one_line(tmp_path):
    from longwriter_zero.cli import app
    from typer.testing import CliRunner

    res = CliRunner().invoke(app, ["generate", "--model", "m", "--question", "q", "--backend", "vllm"])
    assert res.exit_code == 2 and "pip install 'rlcore[vllm]'" in res.output and "Traceback" not in res.output
