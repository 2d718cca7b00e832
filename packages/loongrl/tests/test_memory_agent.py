"""Memory-agent inference past the window, on KeyChain items at 4x and 16x the window of builtin:tiny-reasoner
(256 tokens) and on NIAH at 8x, with scripted fake models (rlcore.testing.ScriptedGenerator)."""

import re

import pytest
from loongrl.data import DocPool, make_synthetic_qa
from loongrl.evaluation import evaluate_memory_agent, evaluate_rows, run_niah, save_heatmap
from loongrl.generation import ChatSampler
from loongrl.keychain import format_pair
from loongrl.memory_agent import MemoryAgent, keychain_problem, make_segments, split_units
from loongrl.prompts import keychain_prompt, to_messages
from loongrl.synthesis import synthesize
from rlcore.testing import ScriptedGenerator, recording_generators

WINDOW = 256  # builtin:tiny-reasoner's max_position_embeddings
_LINK = re.compile(r'\{"([^"]+)": "([^"]*)"\}')
_ID = re.compile(r"^[0-9a-f]{8}$")


@pytest.fixture(scope="module")
def tok():
    from rlcore.builtins import resolve
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve("builtin:tiny-reasoner"))


@pytest.fixture(scope="module")
def keychain_items(tok):
    items = make_synthetic_qa(60, seed=3, distractor_docs=1, filler_sentences=2)
    out = {}
    for mult in (4, 16):
        recs = list(synthesize(items, tok, mult * WINDOW, num_samples=2, reserve_tokens=16, doc_step=2))
        out[mult] = recs
    return out


def _rows(recs):
    return [{"context": r["distractor_context"], "problem": keychain_problem(r["chain_head_with_question"]),
             "problem_short": keychain_problem(r["chain_head_with_question"], full=False), "answers": r["answers"],
             "prompt": to_messages(keychain_prompt(r["distractor_context"], r["chain_head_with_question"]))}
            for r in recs]


def read(text: str, state: dict[str, str], head: str) -> dict[str, str]:
    """A generic reader (no ground truth): follow links from the frontier, then look up the facts the found
    question needs. ``state`` keys: at (chain frontier), who, city, ans."""
    state = dict(state)
    links = dict(_LINK.findall(text))
    if not state:
        state["at"] = head
    while "at" in state and state["at"] in links:
        v = links[state["at"]]
        if _ID.match(v):
            state["at"] = v
        else:
            m = re.match(r"In which country was (\w+) born\?", v)
            state["who"] = m.group(1) if m else "?"
            state.pop("at")
    if "who" in state and "city" not in state and "ans" not in state:
        m = re.search(rf"\b{state['who']} was born in (\w+)\.", text)
        if m:
            state["city"] = m.group(1)
    if "city" in state and "ans" not in state:
        m = re.search(rf"\b{state['city']} is a city in (\w+)\.", text)
        if m:
            state["ans"] = m.group(1)
    for done, drop in (("who", "at"), ("city", "who"), ("ans", "city")):  # keep the memory small
        if done in state:
            state.pop(drop, None)
    return state


def parse_memory(memory: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in memory.splitlines() if ": " in line)


def write_memory(state: dict[str, str]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in state.items())


def head_of(problem_text: str) -> str:
    found = re.findall(r'from "?([0-9a-f]{8})', problem_text)
    return found[-1] if found else "none"


def fake_model(prompt: str) -> str:
    """The scripted policy: memory steps rewrite the memory with :func:`read`; answer steps box ``ans``."""
    if "Update the memory" in prompt:
        problem = prompt.split("Problem: ", 1)[1].split("\nMemory:\n", 1)[0]
        memory = prompt.split("\nMemory:\n", 1)[1].split("\nText:\n", 1)[0]
        segment = prompt.split("\nText:\n", 1)[1].rsplit("\nUpdate the memory", 1)[0]
        return write_memory(read(segment, parse_memory(memory), head_of(problem)))
    if "Solve the problem from the memory" in prompt:
        memory = prompt.split("\nMemory:\n", 1)[1]
        ans = parse_memory(memory).get("ans", "unknown")
        return f"<think>from memory</think> \\boxed{{{ans}}}"
    # single pass over the whole (possibly truncated) KeyChain prompt: re-read until nothing changes
    state: dict[str, str] = {}
    for _ in range(8):
        state = read(prompt, state, head_of(prompt))
    return f"<think>read</think> \\boxed{{{state.get('ans', 'unknown')}}}"


def test_split_units_never_cut_a_pair_and_segments_fit(tok, keychain_items):
    rec = keychain_items[4][0]
    text = rec["distractor_context"]
    units = split_units(text)
    assert "".join(units) == text
    segs = make_segments(text, tok, 60)
    assert "".join(segs) == text
    assert all(len(tok(s, add_special_tokens=False)["input_ids"]) <= 60 + 4 for s in segs)
    for pair in rec["keychain_pairs"]:  # every pair sits whole inside one segment
        assert sum(pair in s for s in segs) == 1


def test_oracle_memory_plumbing(tok, keychain_items):
    """With the memory step replaced by an oracle (the answer, written once the segment holding the answer's
    city fact has been read), the loop carries it to the final prompt and scores 1; single-pass truncation of
    the same items scores 0 with the same answerer."""
    for mult, recs in keychain_items.items():
        rows = _rows(recs)

        def oracle(prompt, recs=recs):
            if "Update the memory" in prompt:
                memory = prompt.split("\nMemory:\n", 1)[1].split("\nText:\n", 1)[0]
                segment = prompt.split("\nText:\n", 1)[1]
                (r,) = [r for r in recs if r["chain_head_with_question"] == head_of(prompt)]
                return f"ans: {r['answers'][0]}" if f"is a city in {r['answers'][0]}." in segment else memory
            return fake_model(prompt)

        sampler = ChatSampler(ScriptedGenerator(oracle, tok), tok, window=WINDOW, max_new_tokens=64)
        agent = MemoryAgent(sampler, WINDOW, memory_tokens=32, answer_tokens=32, passes=1)
        res = evaluate_memory_agent(rows, agent)
        assert res["sub_em"] == 100.0, (mult, [i["memory"] for i in res["items"]])
        assert all(i["segments"] >= mult for i in res["items"])  # the document really was read in pieces
        single = evaluate_rows(rows, ChatSampler(ScriptedGenerator(fake_model, tok), tok, window=WINDOW,
                                                 max_new_tokens=64))
        assert single["sub_em"] == 0.0


@pytest.mark.parametrize("mult", [4, 16])
def test_memory_agent_answers_where_truncation_cannot(tok, keychain_items, mult):
    rows = _rows(keychain_items[mult])
    # the reader is competent: on the untruncated prompt it answers every item
    full = evaluate_rows(rows, ChatSampler(ScriptedGenerator(fake_model, tok), tok, window=None, max_new_tokens=32))
    assert full["sub_em"] == 100.0
    # one pass through the 256-token window (middle truncation) loses the chain
    single = evaluate_rows(rows, ChatSampler(ScriptedGenerator(fake_model, tok), tok, window=WINDOW,
                                             max_new_tokens=64))
    assert single["sub_em"] == 0.0
    # the memory agent reads everything in window-sized steps and answers
    sampler = ChatSampler(ScriptedGenerator(fake_model, tok), tok, window=WINDOW, max_new_tokens=64)
    agent = MemoryAgent(sampler, WINDOW, memory_tokens=32, answer_tokens=32, passes=8)
    with recording_generators() as calls:
        res = evaluate_memory_agent(rows, agent)
    assert res["sub_em"] == 100.0, [i["memory"] for i in res["items"]]
    assert all(i["segments"] >= mult for i in res["items"])
    heads = {r["chain_head_with_question"] for r in keychain_items[mult]}
    for call in calls:  # every prompt fits the window with its generation budget
        assert all(len(p) + call.params.max_new_tokens <= WINDOW for p in call.prompt_ids)
    for call in calls[:-1]:  # every memory step names the chain head (the KeyChain structure survives)
        for p in call.prompt_ids:
            assert any(h in tok.decode(p) for h in heads)


def test_single_pass_memory_misses_out_of_order_links(tok, keychain_items):
    """MemAgent's single pass (passes=1) cannot follow links that come before their predecessor; re-reading can."""
    rows = _rows(keychain_items[16])
    one = MemoryAgent(ChatSampler(ScriptedGenerator(fake_model, tok), tok, window=WINDOW), WINDOW,
                      memory_tokens=32, answer_tokens=32, passes=1)
    many = MemoryAgent(ChatSampler(ScriptedGenerator(fake_model, tok), tok, window=WINDOW), WINDOW,
                       memory_tokens=32, answer_tokens=32, passes=8)
    r1, r8 = evaluate_memory_agent(rows, one), evaluate_memory_agent(rows, many)
    assert r1["sub_em"] <= r8["sub_em"] == 100.0
    assert max(i["steps"] for i in r8["items"]) > max(i["segments"] for i in r8["items"])


def test_window_too_small_is_a_clear_error(tok):
    agent = MemoryAgent(ChatSampler(ScriptedGenerator(["x"], tok), tok), 128, memory_tokens=32)
    with pytest.raises(ValueError, match="window 128 leaves"):
        agent.run([{"context": "a. b.", "problem": "Question: q?"}])


def test_niah_at_8x_window_through_the_memory_agent(tok, tmp_path):
    docs = DocPool(make_synthetic_qa(200, seed=0)).docs

    def needle_reader(prompt):
        if "Update the memory" in prompt:
            key = re.search(r"magic number for (\w+) mentioned", prompt).group(1)
            memory = prompt.split("\nMemory:\n", 1)[1].split("\nText:\n", 1)[0]
            m = re.search(rf"magic number for {key} is: (\d+)", prompt.split("\nText:\n", 1)[1])
            return f"value: {m.group(1)}" if m else memory
        if "Solve the problem" in prompt:
            m = re.search(r"value: (\d+)", prompt)
            return f"<think>memory</think> \\boxed{{{m.group(1) if m else 'none'}}}"
        m = re.search(r"magic number for \w+ is: (\d+)", prompt)
        return f"<think>read</think> \\boxed{{{m.group(1) if m else 'none'}}}"

    sampler = ChatSampler(ScriptedGenerator(needle_reader, tok), tok, window=WINDOW, max_new_tokens=64)
    agent = MemoryAgent(sampler, WINDOW, memory_tokens=32, answer_tokens=32)
    res = run_niah(docs, tok, sampler, [8 * WINDOW], [0.0, 0.5, 1.0], trials=1, agent=agent)
    assert res["grid"] == [[100.0, 100.0, 100.0]] and res["token_lengths"] == [8 * WINDOW] * 3
    single = run_niah(docs, tok, sampler, [8 * WINDOW], [0.5], trials=1)
    assert single["grid"] == [[0.0]]  # the middle of an 8x haystack is cut away by truncation
    png = save_heatmap(res, tmp_path / "niah_memory.png")
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_format_pair_matches_reader():
    assert _LINK.findall(format_pair("ab12cd34", "ef56ab78")) == [("ab12cd34", "ef56ab78")]
