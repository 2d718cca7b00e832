import json

import pytest
from longwriter_zero.arena import bootstrap_elo, compute_elo, judge_pairs, parse_verdict
from longwriter_zero.config import EvalConfig
from longwriter_zero.evaluate import evaluate, length_format_metrics, load_baselines


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


class TestMetrics:
    def test_hand_computed(self, tmp_path):
        rows = [
            {"question": "q1", "completion": "<think>t</think><answer>one two three four", "length_range": [4, 6]},
            {"question": "q2", "completion": "<think>t</think><answer>one two", "length_range": [4, 6]},
            {"question": "q3", "completion": "no tags", "length_range": [0, 0]},
            {"question": "q4", "completion": "<answer>a b c d e f g h", "length_range": [2, 4]},
        ]
        m = length_format_metrics(rows, EvalConfig(input="x"))
        assert m["n"] == 4 and m["n_with_range"] == 3 and m["n_without_range"] == 1
        assert m["in_range"] == pytest.approx(1 / 3)
        # errors: 0; |2-4|/5 = 0.4; |8-4|/3 = 1.3333 -> mean 0.5778
        assert m["length_error"] == pytest.approx((0 + 0.4 + 4 / 3) / 3)
        assert m["format_valid"] == pytest.approx(2 / 4)  # q4 has no think block
        assert m["no_answer"] == pytest.approx(1 / 4)

    def test_bad_completion_field(self):
        from rlcore.io import DataError

        with pytest.raises(DataError, match="record 1"):
            length_format_metrics([{"question": "q", "completion": 3}], EvalConfig(input="x"))


class TestVerdictAndElo:
    def test_parse(self):
        assert parse_verdict("reasoning... [[A]]") == "A"
        assert parse_verdict("[[B]] then [[ C ]]") == "C"
        assert parse_verdict("Response A") is None
        assert parse_verdict("") is None

    def test_elo_symmetry_and_order(self):
        elo = compute_elo([("p", "b1", 1.0), ("p", "b1", 1.0), ("p", "b2", 0.0), ("p", "b2", 0.5)])
        assert sum(elo.values()) / 3 == pytest.approx(1000)
        assert elo["b2"] > elo["p"] > elo["b1"]

    def test_bootstrap_interval_contains_point(self):
        matches = [("p", "b", 1.0)] * 6 + [("p", "b", 0.0)] * 2
        res = bootstrap_elo(matches, rounds=50, seed=1)
        assert res["p"]["lo"] <= res["p"]["elo"] <= res["p"]["hi"]


def test_judge_pairs_both_orders_and_unparsable():
    prompts = []

    def judge(prompt):  # prefers the response containing "good"; says nothing parsable for "weird"
        prompts.append(prompt)
        a = prompt.split("[Response A]")[1].split("[Response B]")[0]
        if "weird" in prompt:
            return "I cannot decide."
        return "[[A]]" if "good" in a else "[[B]]"

    items = [{"question": "q", "answer": "good text", "baseline_model": "m1", "baseline_answer": "bad text"},
             {"question": "q", "answer": "weird text", "baseline_model": "m2", "baseline_answer": "other"}]
    matches, stats = judge_pairs(judge, items)
    assert len(prompts) == 4  # every pair judged twice, order swapped
    assert stats == {"judgements": 4, "unparsable": 2, "wins": 2, "losses": 0, "ties": 0, "cached": 0}
    assert matches == [("policy", "m1", 1.0), ("policy", "m1", 1.0)]


def test_evaluate_with_baselines(tmp_path):
    gens = _write(tmp_path / "gens.jsonl", [
        {"question": "Write about the sea", "completion": "<think>t</think><answer>The sea is good.", "length_range": [3, 6]},
        {"question": "Write about a fox", "completion": "<think>t</think><answer>Fox.", "length_range": [3, 6]}])
    base = _write(tmp_path / "base.jsonl", [
        {"question": "Write about the sea", "baseline_response": {"gpt": "Sea.", "r1": "The sea."}},
        {"question": "Write about a fox", "baseline_response": [{"model": "gpt", "response": "A good fox."}]}])
    judge = lambda p: "[[A]]" if "good" in p.split("[Response A]")[1].split("[Response B]")[0] else "[[B]]"  # noqa: E731
    out = tmp_path / "report.json"
    cfg = EvalConfig(input=gens, baselines=base, judge="unused", output=str(out), bootstrap=20)
    rep = evaluate(cfg, judge=judge)
    assert rep["arena"]["judgements"] == 6 and rep["arena"]["unparsable"] == 0
    assert set(rep["arena"]["elo"]) == {"policy", "gpt", "r1"}
    assert json.loads(out.read_text())["metrics"]["in_range"] == 0.5


def test_load_baselines_errors(tmp_path):
    from rlcore.io import DataError

    p = _write(tmp_path / "b.jsonl", [{"question": "q", "baseline_response": [{"name": "x"}]}])
    with pytest.raises(DataError, match="record 1"):
        load_baselines(p)
    p = _write(tmp_path / "b2.jsonl", [{"question": "q", "baseline_response": {"m": 3}}])
    with pytest.raises(DataError, match="record 1"):
        load_baselines(p)


def test_endpoint_judge_needs_model_name():
    from longwriter_zero.arena import EndpointJudge

    with pytest.raises(ValueError, match="judge_model"):
        EndpointJudge("http://localhost:1/v1", "")


def test_hf_judge_unparsable_output_is_counted(tiny_policy):
    from longwriter_zero.arena import HFJudge

    judge = HFJudge(tiny_policy, max_new_tokens=4, device="cpu")
    items = [{"question": "q", "answer": "a", "baseline_model": "m", "baseline_answer": "b"}]
    matches, stats = judge_pairs(judge, items)
    assert stats["judgements"] == 2 and stats["unparsable"] + len(matches) == 2


def test_judgements_survive_a_failing_judge(tmp_path):
    """Each verdict is appended when made: after the judge dies mid-way, the rerun judges only what is missing."""
    items = [{"question": "q", "answer": f"good {i}", "baseline_model": f"m{i}", "baseline_answer": "bad"}
             for i in range(3)]
    cache = str(tmp_path / "verdicts.jsonl")
    seen = []

    def dying_judge(prompt):
        if len(seen) == 4:
            raise RuntimeError("endpoint down")
        seen.append(prompt)
        return "[[A]]" if "good" in prompt.split("[Response A]")[1].split("[Response B]")[0] else "[[B]]"

    with pytest.raises(RuntimeError, match="endpoint down"):
        judge_pairs(dying_judge, items, cache=cache, batch_size=1)
    assert len((tmp_path / "verdicts.jsonl").read_text().splitlines()) == 4
    rerun = []

    def judge(prompt):
        rerun.append(prompt)
        return "[[A]]" if "good" in prompt.split("[Response A]")[1].split("[Response B]")[0] else "[[B]]"

    matches, stats = judge_pairs(judge, items, cache=cache)
    assert len(rerun) == 2 and stats["cached"] == 4 and stats["wins"] == 6
    assert matches == [("policy", f"m{i}", 1.0) for i in range(3) for _ in range(2)]


def test_endpoint_judge_retries_with_backoff():
    """A 503 then a 200 from a loopback server: the openai client retries, the verdict arrives."""
    import http.server
    import threading

    from longwriter_zero.arena import EndpointJudge

    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(self.path)
            if len(hits) == 1:
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"error": {"message": "busy"}}')
                return
            body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "j", "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok [[B]]"}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        judge = EndpointJudge(f"http://127.0.0.1:{server.server_port}/v1", "j", max_retries=2, timeout=10)
        try:
            assert parse_verdict(judge("compare")) == "B"
        finally:
            judge.client.close()
        assert hits == ["/v1/chat/completions"] * 2
    finally:
        server.shutdown()
        server.server_close()
