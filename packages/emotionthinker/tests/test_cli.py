import dataclasses
import json

import pytest
from emotionthinker.cli import app
from emotionthinker.config import AnnotateConfig, EvalConfig, InferConfig, TrainConfig
from emotionthinker.synth import harmonic_voice, write_wav
from typer.testing import CliRunner

runner = CliRunner()


def _options(cmd: str) -> set[str]:
    import typer.main

    click_cmd = typer.main.get_command(app).commands[cmd]
    return {p.name for p in click_cmd.params} - {"config"}


@pytest.mark.parametrize("cmd,cls", [("train", TrainConfig), ("annotate", AnnotateConfig), ("infer", InferConfig),
                                     ("eval", EvalConfig)])
def test_flags_are_the_config_fields(cmd, cls):
    assert _options(cmd) == {f.name for f in dataclasses.fields(cls)}


def test_prosody_folder_to_jsonl_with_a_bad_file(tmp_path):
    d = tmp_path / "clips"
    d.mkdir()
    write_wav(d / "a.wav", harmonic_voice(140.0, 0.6))
    (d / "a.txt").write_text("hello there")
    (d / "broken.wav").write_bytes(b"nope")
    out = tmp_path / "p.jsonl"
    res = runner.invoke(app, ["prosody", "--input", str(d), "--output", str(out), "--workers", "1"])
    assert res.exit_code == 0, res.output
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(recs) == 2
    good = next(r for r in recs if r["audio_path"].endswith("a.wav"))
    assert abs(good["f0_median_hz"] - 140) < 2.8 and good["n_phones"] == 7  # HH AH0 L OW1 DH EH1 R
    assert "broken.wav" in next(r for r in recs if "error" in r)["error"]


def test_annotate_adds_levels_caption_and_prompt(tmp_path, monkeypatch):
    rows = []
    for i, f0 in enumerate([110.0, 160.0, 230.0]):
        write_wav(tmp_path / f"s{i}.wav", harmonic_voice(f0, 0.6, amplitude=0.1 * (i + 1)))
        rows.append({"audio_path": f"s{i}.wav", "transcription": "we made it", "dataset": "X", "gender": "female",
                     "emotion": "happy"})
    (tmp_path / "bad.wav").write_bytes(b"")
    rows.append({"audio_path": "bad.wav", "transcription": "x", "emotion": "sad"})
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["annotate", "--input", str(src), "--output", str(out), "--workers", "1",
                              "--min-group", "3"])
    assert res.exit_code == 0, res.output
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["pitch_level"] for r in recs[:3]] == ["low", "normal", "high"]
    assert [r["energy_level"] for r in recs[:3]] == ["low", "normal", "high"]
    assert recs[0]["caption"].startswith('A female speaker says "we made it" with low pitch')
    assert "error" in recs[3] and "bad.wav" in recs[3]["error"]
    first = out.read_text()
    # a rerun finds every record's features in out.jsonl.prosody.jsonl (streamed as extracted): nothing re-extracted
    import emotionthinker.annotate as ann

    monkeypatch.setattr(ann, "extract_many", lambda paths, *a, **k: iter([]) if not paths else 1 / 0)
    res = runner.invoke(app, ["annotate", "--input", str(src), "--output", str(out), "--min-group", "3"])
    assert res.exit_code == 0, res.output
    assert out.read_text() == first
    monkeypatch.undo()
    cuts = tmp_path / "out.jsonl.calibration.json"
    assert json.loads(cuts.read_text())["levels"]["pitch_level"]["groups"]["X/female"]["cuts"] is not None
    # reuse the cut points on one clip of another corpus: its levels come from the file, not from refitting
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(rows[2] | {"dataset": "X"}) + "\n")
    out2 = tmp_path / "out2.jsonl"
    res = runner.invoke(app, ["annotate", "--input", str(one), "--output", str(out2), "--workers", "1",
                              "--calibration", str(cuts), "--save-calibration", str(tmp_path / "used.json")])
    assert res.exit_code == 0, res.output
    assert json.loads(out2.read_text())["pitch_level"] == "high"
    assert json.loads((tmp_path / "used.json").read_text()) == json.loads(cuts.read_text())
    res = runner.invoke(app, ["annotate", "--input", str(one), "--output", str(out2), "--calibration",
                              str(tmp_path / "missing.json")])
    assert res.exit_code == 2 and "missing.json" in res.output


def test_eval_writes_metrics_and_confusion_png(tmp_path):
    preds = [{"emotion": "sad", "completion": "<think>low pitch, slow</think><answer>sad</answer>"},
             {"emotion": "angry", "completion": "<think>loud</think><answer>contempt or disgust</answer>"},
             {"emotion": "angry", "prediction": "anger"},
             {"emotion": "fear", "completion": "no answer"}]
    p = tmp_path / "pred.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in preds))
    res = runner.invoke(app, ["eval", "--input", str(p), "--output-dir", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["accuracy"] == 0.5 and m["recall"] == {"angry": 0.5, "fear": 0.0, "sad": 1.0}
    # UA = mean(0.5, 0, 1) = 0.5; soft agreement = (1 + sim(contempt or disgust, angry) 0.5 + 1 + 0) / 4
    assert m["ua"] == 0.5 and m["soft_agreement"] == 0.625
    assert '"ua": 0.5' in res.output and '"soft_agreement": 0.625' in res.output
    assert m["unparsed"] == 0.25 and (tmp_path / "ev" / "confusion_matrix.png").stat().st_size > 1000


def test_prosody_without_inputs_is_a_one_line_error():
    res = runner.invoke(app, ["prosody"])
    assert res.exit_code == 2 and "--input" in res.output


def test_bad_config_is_a_one_line_error(tmp_path):
    res = runner.invoke(app, ["train", "--input", str(tmp_path / "x.jsonl"), "--schedule", "cosine"])
    assert res.exit_code == 2 and "schedule" in res.output


@pytest.mark.slow
def test_train_infer_eval_cli_smoke(tmp_path):
    rows = []
    for i, (f0, emo) in enumerate([(120.0, "sad"), (250.0, "happy")]):
        write_wav(tmp_path / f"c{i}.wav", harmonic_voice(f0, 0.5))
        rows.append({"audio_path": f"c{i}.wav", "emotion": emo})
    data = tmp_path / "cot.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", "--input", str(data), "--output-dir", str(run), "--steps", "1",
                              "--group-size", "2", "--max-new-tokens", "6", "--schedule", "constant"])
    assert res.exit_code == 0, res.output
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    pred = tmp_path / "pred.jsonl"
    res = runner.invoke(app, ["infer", "--input", str(data), "--output", str(pred), "--max-new-tokens", "6"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["eval", "--input", str(pred), "--output-dir", str(tmp_path / "ev")])
    assert res.exit_code == 0 and '"n": 2' in res.output


def test_backend_help_is_rlcore_s_and_listed_by_generating_verbs():
    from rlcore.backends import BACKEND_HELP

    for cls in (TrainConfig, InferConfig):
        for name, text in BACKEND_HELP.items():
            assert cls.__dataclass_fields__[name].metadata["help"] == text
    for verb in ("infer", "train"):
        res = runner.invoke(app, [verb, "--help"], terminal_width=80)
        assert res.exit_code == 0 and "--backend" in res.output and "--tensor-parallel-size" in res.output


def test_recipes_load_into_the_train_config():
    from pathlib import Path

    from rlcore.cli import load_config

    recipes = sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml"))
    assert len(recipes) >= 3
    for r in recipes:
        cfg = load_config(TrainConfig, r)
        assert cfg.input and cfg.steps >= 1
        text = r.read_text()
        assert "sized for" in text.lower()  # every recipe states the hardware it was sized for
