import json
import os
import random
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from rlcore.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    resolve_resume,
    save_checkpoint,
    truncate_jsonl,
)
from rlcore.io import DataError, ResumableJsonlWriter, write_json, write_jsonl


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    return model, opt, sched


def _step(model, opt, sched):
    x = torch.rand(3, 4)  # consumes the torch RNG: a resumed run must draw the same batch
    loss = model(x).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()


def test_save_perturb_load_restores_exactly(tmp_path):
    model, opt, sched = _setup()
    for _ in range(3):
        _step(model, opt, sched)
    random.seed(5)
    np.random.seed(5)
    path = save_checkpoint(tmp_path, 3, model=model, optimizer=opt, scheduler=sched, extra={"data_pos": 12})
    assert path == tmp_path / "checkpoint-3" and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-3"]
    want_params = {k: v.clone() for k, v in model.state_dict().items()}
    want_opt = opt.state_dict()["state"][0]["exp_avg"].clone()
    want_lr = sched.get_last_lr()
    want_next = (torch.rand(5), random.random(), np.random.rand())

    # perturb everything: two more steps and reseeded RNGs
    for _ in range(2):
        _step(model, opt, sched)
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)

    model2, opt2, sched2 = _setup(seed=1)  # fresh objects, different init
    info = load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2)
    assert info == {"step": 3, "extra": {"data_pos": 12}}
    for k, v in model2.state_dict().items():
        assert torch.equal(v, want_params[k]), k
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], want_opt)
    assert opt2.state_dict()["state"][0]["step"] == 3
    assert sched2.get_last_lr() == want_lr and sched2.last_epoch == 3
    got_next = (torch.rand(5), random.random(), np.random.rand())
    assert torch.equal(got_next[0], want_next[0]) and got_next[1:] == want_next[1:]


def test_resumed_training_equals_uninterrupted(tmp_path):
    model, opt, sched = _setup()
    for s in range(1, 5):
        _step(model, opt, sched)
        if s == 2:
            save_checkpoint(tmp_path, s, model=model, optimizer=opt, scheduler=sched)
    full = {k: v.clone() for k, v in model.state_dict().items()}

    model2, opt2, sched2 = _setup(seed=3)
    start = load_checkpoint(latest_checkpoint(tmp_path), model=model2, optimizer=opt2, scheduler=sched2)["step"]
    for _ in range(start, 4):
        _step(model2, opt2, sched2)
    for k, v in model2.state_dict().items():
        assert torch.equal(v, full[k]), k


def test_resave_same_step_replaces_and_latest(tmp_path):
    model, opt, _ = _setup()
    save_checkpoint(tmp_path, 2, model=model)
    save_checkpoint(tmp_path, 10, model=model, extra={"a": 1})
    save_checkpoint(tmp_path, 10, model=model, extra={"a": 2})
    (tmp_path / "checkpoint-99").mkdir()  # incomplete (no state.json): ignored
    (tmp_path / ".checkpoint-50.abc.tmp").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-10"]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-10"
    assert load_checkpoint(tmp_path / "checkpoint-10", model=model)["extra"] == {"a": 2}
    with pytest.raises(ValueError, match="no optimizer.pt"):
        load_checkpoint(tmp_path / "checkpoint-10", model=model, optimizer=opt)
    with pytest.raises(FileNotFoundError, match="checkpoint-99"):
        load_checkpoint(tmp_path / "checkpoint-99", model=model)
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_checkpoint(tmp_path, 11, model=model, extra={"t": torch.zeros(1)})
    assert not (tmp_path / "checkpoint-11").exists()
    assert latest_checkpoint(tmp_path / "nope") is None


def test_resolve_resume(tmp_path, capsys):
    assert resolve_resume(None, tmp_path) is None
    assert resolve_resume("latest", tmp_path) is None
    assert "no checkpoint in" in capsys.readouterr().err
    model, _, _ = _setup()
    save_checkpoint(tmp_path, 4, model=model)
    assert resolve_resume("latest", tmp_path) == tmp_path / "checkpoint-4"
    assert resolve_resume(str(tmp_path / "checkpoint-4"), tmp_path) == tmp_path / "checkpoint-4"
    with pytest.raises(ValueError, match=r"no checkpoint at .*checkpoint-7"):
        resolve_resume(str(tmp_path / "checkpoint-7"), tmp_path)
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ValueError, match="not a checkpoint directory"):
        resolve_resume(str(tmp_path / "f.txt"), tmp_path)


@pytest.mark.slow
def test_crash_mid_save_leaves_no_checkpoint(tmp_path):
    """A process killed while torch.save is writing leaves no checkpoint-N (only a hidden temporary dir)."""
    script = textwrap.dedent(f"""
        import os, signal, torch
        import rlcore.checkpoint as C
        real, calls = torch.save, []
        def dying_save(obj, f):
            calls.append(1)
            if len(calls) == 4:  # checkpoint-1: model, rng; checkpoint-2: model, then die in the optimizer save
                f.write(b"partial")
                os.kill(os.getpid(), signal.SIGKILL)
            real(obj, f)
        torch.save = dying_save
        m = torch.nn.Linear(2, 2)
        C.save_checkpoint({str(tmp_path)!r}, 1, model=m)          # completes
        C.save_checkpoint({str(tmp_path)!r}, 2, model=m, optimizer=torch.optim.SGD(m.parameters(), lr=0.1))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert r.returncode == -9, r.stderr.decode()[-2000:]
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-1"]
    assert not (tmp_path / "checkpoint-2").exists()
    assert resolve_resume("latest", tmp_path) == tmp_path / "checkpoint-1"
    assert [p.name for p in tmp_path.glob(".checkpoint-2.*.tmp")]  # the half-written save, hidden
    save_checkpoint(tmp_path, 3, model=torch.nn.Linear(2, 2))  # the next save sweeps it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1", "checkpoint-3"]


def test_truncate_jsonl(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"step": 1, "loss": 1.0}\n{"note": "x"}\n{"step": 2}\n{"step": 3}\n{"step": 4, "lo')
    assert truncate_jsonl(p, 2) == 3
    assert [json.loads(x) for x in p.read_text().splitlines()] == [{"step": 1, "loss": 1.0}, {"note": "x"}, {"step": 2}]
    assert truncate_jsonl(tmp_path / "missing.jsonl", 2) == 0 and not (tmp_path / "missing.jsonl").exists()
    p.write_text('{"step": 1}\n{"step": \n{"step": 2}\n')
    with pytest.raises(DataError, match=r"log.jsonl:2: malformed JSON"):
        truncate_jsonl(p, 5)


def test_resumable_jsonl_writer(tmp_path):
    p = tmp_path / "out.jsonl"
    with ResumableJsonlWriter(p) as w:
        assert w.done == set()
        w.write({"id": "a", "v": 1})
        w.write({"id": "b", "v": 2})
    with p.open("a") as f:
        f.write('{"id": "c", "v"')  # a crash mid-line
    w = ResumableJsonlWriter(p)
    assert w.done == {"a", "b"} and "a" in w and "c" not in w
    assert p.read_text().endswith('"v": 2}\n')  # the partial line is gone
    with w:
        for rid in ["a", "b", "c"]:
            if rid not in w.done:
                w.write({"id": rid, "v": 3})
    assert [json.loads(x)["id"] for x in p.read_text().splitlines()] == ["a", "b", "c"]
    assert w.n_written == 1
    with pytest.raises(ValueError, match="lacks the resume key 'id'"), ResumableJsonlWriter(p) as w2:
        w2.write({"x": 1})
    p.write_text('{"id": 1}\n{"x": 2}\n')
    with pytest.raises(DataError, match=r"out.jsonl:2: record lacks the resume key 'id'"):
        ResumableJsonlWriter(p)
    q = tmp_path / "q.jsonl"
    with ResumableJsonlWriter(q, key="qid") as w3:
        w3.write({"qid": [1, 2]})
    assert [1, 2] in ResumableJsonlWriter(q, key="qid")


def test_written_files_get_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        write_jsonl(tmp_path / "b.jsonl", [{"x": 1}])
        with ResumableJsonlWriter(tmp_path / "c.jsonl") as w:
            w.write({"id": 1})
        model, _, _ = _setup()
        ck = save_checkpoint(tmp_path / "run", 1, model=model)
        for name in ("a.json", "b.jsonl", "c.jsonl"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
        assert stat.S_IMODE((ck / "model.pt").stat().st_mode) == 0o644
        assert stat.S_IMODE(ck.stat().st_mode) == 0o755
        os.umask(0o077)  # a stricter umask is respected
        write_json(tmp_path / "d.json", {"x": 1})
        assert stat.S_IMODE((tmp_path / "d.json").stat().st_mode) == 0o600
        os.chmod(tmp_path / "a.json", 0o640)  # an existing file keeps its mode
        write_json(tmp_path / "a.json", {"x": 2})
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o640
    finally:
        os.umask(old)
