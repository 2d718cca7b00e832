"""Every built-in model loads offline and generates; every built-in dataset parses and is self-consistent."""

from __future__ import annotations

import filecmp
import shutil

import numpy as np
import pytest
from rlcore.builtins import ASSETS, list_builtins, load_model_and_tokenizer, resolve
from rlcore.io import read_jsonl

MODELS = sorted(p.name for p in (ASSETS / "models").iterdir() if p.is_dir())
DATASETS = ["arithmetic", "multihop_qa", "babilong", "personal_prefs", "preference_pairs", "speech_prosody"]


def rows(name: str, split: str, required=()) -> list[dict]:
    return read_jsonl(ASSETS / "data" / name / f"{split}.jsonl", required=required)


def test_builtins_listed_and_resolved():
    names = list_builtins()
    for name in ["tiny-reasoner", *DATASETS]:
        assert name in names
        assert resolve(f"builtin:{name}").endswith(name)
    with pytest.raises(ValueError, match="unknown built-in"):
        resolve("builtin:no-such-thing")


@pytest.mark.parametrize("name", MODELS)
def test_model_loads_offline_and_generates(name, monkeypatch, tool):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok = load_model_and_tokenizer(f"builtin:{name}", device="cpu")
    size = sum(p.stat().st_size for p in (ASSETS / "models" / name).rglob("*") if p.is_file())
    assert size < 20e6
    prompts = [tool("train_tiny_reasoner").build_prompt(q) for q in ("Compute 2+3.", "a=4. b=a*2. What is b?")]
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=40, do_sample=False, pad_token_id=tok.pad_token_id)
    texts = tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert all("</think>" in t and "\\boxed{" in t for t in texts), texts


def test_tiny_reasoner_chat_template_matches_raw_prompt(tool):
    ttr = tool("train_tiny_reasoner")
    _, tok = load_model_and_tokenizer("builtin:tiny-reasoner", device="cpu")
    chat = tok.apply_chat_template([{"role": "user", "content": "Compute 2+3."}], tokenize=False,
                                   add_generation_prompt=True)
    assert chat == ttr.build_prompt("Compute 2+3.")
    # digits are single tokens and <think> is one token, so arithmetic is learnable
    assert tok.tokenize("123") == ["1", "2", "3"]
    assert len(tok.tokenize("<think>")) == 1


def test_arithmetic_split(tool):
    ttr = tool("train_tiny_reasoner")
    test = rows("arithmetic", "test", ("prompt", "question", "answer"))
    train = rows("arithmetic", "train", ("prompt", "question", "answer", "completion"))
    assert len(test) == 500 and not {r["question"] for r in test} & {r["question"] for r in train}
    for r in test[:50] + train[:50]:
        assert r["prompt"] == ttr.build_prompt(r["question"])
        assert r["answer"].isdigit() and 0 <= int(r["answer"]) <= 99
    for r in train[:50]:  # the reference completion is correct
        from rlcore.rewards import extract_boxed

        assert extract_boxed(r["completion"], after="</think>") == r["answer"]


def test_arithmetic_answers_are_right():
    for r in rows("arithmetic", "test"):
        if r["kind"] == "arithmetic":  # "Compute ((3+4)*2)-5." -> evaluate the expression
            assert str(eval(r["question"].removeprefix("Compute ").rstrip("."))) == r["answer"]  # noqa: S307


def test_multihop_qa():
    for split in ("train", "test"):
        for r in rows("multihop_qa", split, ("id", "question", "answer", "supporting_docs", "distractor_docs")):
            assert r["answers"] == [r["answer"]]
            assert [r["docs"][i] for i in r["supporting_idx"]] == sorted(
                r["supporting_docs"], key=r["docs"].index)
            assert len(r["docs"]) == len(r["supporting_docs"]) + len(r["distractor_docs"])
            assert any(r["answer"] in d["text"] for d in r["supporting_docs"])


def test_babilong():
    seen = set()
    for split in ("train", "test"):
        for r in rows("babilong", split, ("id", "task", "question", "answer", "facts", "supporting_facts",
                                          "chunks", "sf_idx")):
            seen.add(r["task"])
            assert [r["chunks"][i] for i in r["facts_idx"]] == r["facts"]
            assert [r["chunks"][i] for i in r["sf_idx"]] == [r["facts"][i] for i in r["supporting_facts"]]
            assert len(r["supporting_facts"]) == {"qa1": 1, "qa2": 2, "qa3": 3}[r["task"]]
            assert any(r["answer"] in r["facts"][i] for i in r["supporting_facts"])
    assert seen == {"qa1", "qa2", "qa3"}


def test_personal_prefs(tool):
    data = rows("personal_prefs", "pairs", ("user_id", "split", "context", "prompt", "chosen", "rejected"))
    users = {r["user_id"] for r in data}
    assert len(users) == 12
    for u in users:
        assert {r["split"] for r in data if r["user_id"] == u} == {"train", "val", "test"}
    # users of one archetype agree far more often than chance: the structure P-GenRM prototypes should find

    bdb = tool("build_builtin_data")
    agree = [bdb.ARCHETYPES[r["archetype"]].index(r["chosen_style"]) < bdb.ARCHETYPES[r["archetype"]].index(
        r["rejected_style"]) for r in data]
    assert 0.8 < sum(agree) / len(agree) < 1.0


def test_preference_pairs():
    test_q = {r["question"] for r in rows("arithmetic", "test")}
    for split in ("train", "test"):
        for r in rows("preference_pairs", split, ("prompt", "chosen", "rejected")):
            assert r["chosen"] != r["rejected"] and r["question"] not in test_q
            assert r["chosen"].endswith(f"\\boxed{{{r['answer']}}}")
            assert r["rejected"].endswith(f"\\boxed{{{r['wrong_answer']}}}")


def test_speech_prosody_labels_match_the_audio():
    import soundfile as sf

    folder = ASSETS / "data" / "speech_prosody"
    clips = rows("speech_prosody", "clips", ("audio_path", "emotion", "f0_median_hz", "energy_dbfs"))
    assert {c["emotion"] for c in clips} == {"angry", "happy", "sad", "neutral"}
    for c in clips:
        x, sr = sf.read(folder / c["audio_path"])
        assert sr == 16000 and abs(len(x) / sr - c["duration_s"]) < 1e-3
        speech = x[int(c["speech_start_s"] * sr): int(c["speech_end_s"] * sr)]
        energy = 20 * np.log10(np.sqrt(np.mean(speech**2)))
        assert abs(energy - c["energy_dbfs"]) < 0.5
        # F0 from the autocorrelation peak of a 64 ms frame centred on the syllable nearest the middle
        period = sr / c["syllable_rate_hz"]
        mid = int((round(len(speech) / 2 / period - 0.5) + 0.5) * period)
        frame = speech[mid - 512: mid + 512] * np.hanning(1024)
        ac = np.correlate(frame, frame, "full")[1023:]
        lo, hi = sr // 400, sr // 70  # lags for 400 Hz .. 70 Hz
        f0 = sr / (lo + np.argmax(ac[lo:hi]))
        expected = c["f0_start_hz"] * 2 ** (c["glide_semitones"] / 12 * mid / len(speech))  # glide: linear in st
        assert abs(f0 - expected) / expected < 0.06, (c["id"], f0, expected)
        assert (c["speech_end_s"] - c["speech_start_s"]) * c["syllable_rate_hz"] == pytest.approx(c["n_syllables"],
                                                                                                   rel=1e-2)


def test_total_data_size_is_small():
    size = sum(p.stat().st_size for p in (ASSETS / "data").rglob("*") if p.is_file())
    assert size < 5e6


def test_data_builder_is_reproducible(tmp_path, monkeypatch, tool):
    bdb = tool("build_builtin_data")
    shutil.copytree(ASSETS / "data" / "arithmetic", tmp_path / "arithmetic")
    monkeypatch.setattr(bdb, "DATA", tmp_path)
    for name in bdb.BUILDERS:
        bdb.build(name, seed=0)
        cmp = filecmp.dircmp(tmp_path / name, ASSETS / "data" / name)
        assert not cmp.left_only and not cmp.right_only
        for f in (tmp_path / name).glob("*.jsonl"):
            assert f.read_bytes() == (ASSETS / "data" / name / f.name).read_bytes(), f
    with pytest.raises(ValueError, match="unknown dataset"):
        bdb.build("nope", seed=0)
