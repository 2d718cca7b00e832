import importlib.util
import json
import textwrap
import time

import pytest
import yaml
from rlcore.training import (
    ACCELERATE_CONFIGS,
    DEEPSPEED_HINT,
    accelerate_config_path,
    accelerate_launch,
    accelerate_launch_command,
    is_main_process,
    main_print,
    preflight_launch,
    process_index,
    run_and_kill,
    world_size,
)


def test_shipped_configs_leave_process_count_to_launcher():
    kinds = {}
    for name in ACCELERATE_CONFIGS:
        with open(accelerate_config_path(name)) as f:
            cfg = yaml.safe_load(f)
        assert "num_processes" not in cfg, name
        kinds[name] = cfg["distributed_type"]
    assert kinds == {"ddp": "MULTI_GPU", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "fsdp": "FSDP"}


def test_rank_helpers_read_launcher_env(monkeypatch, capsys):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert (process_index(), world_size(), is_main_process()) == (0, 1, True)
    main_print("hello")
    assert capsys.readouterr().out == "hello\n"
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert (process_index(), world_size(), is_main_process()) == (1, 2, False)
    main_print("hidden")
    assert capsys.readouterr().out == ""


def test_preflight_deepspeed_hint(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    monkeypatch.delenv("ACCELERATE_CONFIG_FILE", raising=False)
    preflight_launch()  # a plain run needs nothing
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "deepspeed" else real(n, *a))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ValueError) as e:
        preflight_launch()
    assert str(e.value) == "DeepSpeed is not installed: pip install 'rlcore[deepspeed]'" == DEEPSPEED_HINT
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    monkeypatch.setenv("ACCELERATE_CONFIG_FILE", accelerate_config_path("zero3"))
    with pytest.raises(ValueError, match="rlcore\\[deepspeed\\]"):
        preflight_launch()
    monkeypatch.setenv("ACCELERATE_CONFIG_FILE", accelerate_config_path("ddp"))
    preflight_launch()


def test_launch_command_shape():
    cmd = accelerate_launch_command(["pkg", "train", "--x", "1"], num_processes=3, config_file="c.yaml")
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert cmd[3:7] == ["--config_file", "c.yaml", "--num_processes", "3"]
    assert "--multi_gpu" in cmd and cmd[-5:] == ["-m", "pkg", "train", "--x", "1"]
    with pytest.raises(ValueError, match="module"):
        accelerate_launch_command([])


_WORKER = textwrap.dedent("""
    import json, sys
    import torch
    import torch.distributed as dist
    from accelerate import Accelerator
    from rlcore.checkpoint import load_checkpoint, save_checkpoint
    from rlcore.training import end_distributed, is_main_process, main_print, process_index, world_size

    acc = Accelerator()
    out = sys.argv[1]
    torch.manual_seed(100 + process_index())  # each rank its own RNG stream
    model = torch.nn.Linear(2, 2)
    ck = save_checkpoint(out, 1, model=model)  # collective: every rank calls it
    want = torch.rand(3).tolist()
    torch.manual_seed(0)
    load_checkpoint(ck, model=model)
    got = torch.rand(3).tolist()
    open(f"{sys.argv[2]}/rank{process_index()}.json", "w").write(json.dumps({"rank": process_index(), "world": world_size(), "dist_world": dist.get_world_size(),
                      "backend": dist.get_backend(), "acc": [acc.process_index, acc.num_processes],
                      "type": str(acc.distributed_type), "rng_ok": want == got, "main": is_main_process()}))
    main_print("SUMMARY from the main process")
    end_distributed(exit_process=True)
""")


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes(tmp_path):
    (tmp_path / "ws_worker.py").write_text(_WORKER)
    for cfg in (None, accelerate_config_path("ddp")):  # plain flags, and the shipped DDP config
        out = tmp_path / ("plain" if cfg is None else "ddp")
        ranks = tmp_path / f"ranks-{out.name}"
        ranks.mkdir()
        r = accelerate_launch(["ws_worker", str(out), str(ranks)], num_processes=2, cwd=tmp_path, config_file=cfg, timeout=240)
        assert r.returncode == 0, r.stderr[-3000:]
        rows = [json.loads((ranks / f"rank{i}.json").read_text()) for i in range(2)]
        assert [d["rank"] for d in rows] == [0, 1]
        for d in rows:
            assert d["world"] == d["dist_world"] == 2 and d["backend"] == "gloo"
            assert d["acc"] == [d["rank"], 2] and d["type"] == "DistributedType.MULTI_CPU"
            assert d["rng_ok"], d  # each rank got its own RNG state back
        assert [d["main"] for d in rows] == [True, False]
        assert r.stdout.count("SUMMARY") == 1
        assert sorted(p.name for p in out.iterdir()) == ["checkpoint-1"]


@pytest.mark.slow
def test_run_and_kill(tmp_path):
    (tmp_path / "sleeper.py").write_text(textwrap.dedent("""
        import pathlib, sys, time
        pathlib.Path(sys.argv[1]).write_text("x")
        time.sleep(600)
    """))
    marker = tmp_path / "marker"
    t0 = time.monotonic()
    r = run_and_kill(["sleeper", str(marker)], when=marker.exists, timeout=60, cwd=tmp_path)
    assert r.returncode == -9 and marker.exists() and time.monotonic() - t0 < 30
    (tmp_path / "quick.py").write_text("import sys; sys.exit(3)\n")
    r = run_and_kill(["quick"], when=lambda: False, timeout=60, cwd=tmp_path)
    assert r.returncode == 3


def test_trl_vllm_kwargs(monkeypatch, tmp_path):
    from rlcore.training import make_grpo_config, trl_vllm_kwargs

    assert trl_vllm_kwargs("hf") == {}
    with pytest.raises(ValueError, match=r"unknown backend 'sglang'; choose from \['hf', 'vllm'\]"):
        trl_vllm_kwargs("sglang")
    with pytest.raises(ValueError, match="unknown vllm_mode 'remote'"):
        trl_vllm_kwargs("vllm", vllm_mode="remote")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "vllm" else real(n, *a))
    with pytest.raises(ValueError) as e:
        trl_vllm_kwargs("vllm")
    assert str(e.value) == "the vllm backend needs vLLM: pip install 'rlcore[vllm]'"
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "vllm" else real(n, *a))
    kw = trl_vllm_kwargs("vllm", "server", tensor_parallel_size=2, gpu_memory_utilization=0.3)
    assert kw == {"use_vllm": True, "vllm_mode": "server", "vllm_tensor_parallel_size": 2,
                  "vllm_gpu_memory_utilization": 0.3}
    args = make_grpo_config(str(tmp_path), backend="hf", num_generations=2, per_device_train_batch_size=2)
    assert args.use_vllm is False


_VERB_WORKER = textwrap.dedent("""
    import atexit, dataclasses, json, os, pathlib, sys, time
    import typer
    import torch, torch.distributed as dist
    from rlcore.cli import config_command

    app = typer.Typer()
    out = pathlib.Path(sys.argv[-1])

    @dataclasses.dataclass
    class Cfg:
        work: float = 0.0

    @config_command(app, "train", Cfg)
    def train(cfg):
        dist.init_process_group("gloo")
        t = torch.ones(1); dist.all_reduce(t)
        if dist.get_rank() == 0:
            time.sleep(cfg.work)  # the writer finishes last, as in every trainer
            (out / "written").write_text(str(time.time()))

    @app.command("other")
    def other():
        pass

    def report():
        rank = os.environ["RANK"]
        (out / f"exit{rank}.json").write_text(json.dumps({"time": time.time(), "pg_up": dist.is_initialized()}))

    atexit.register(report)
    app(sys.argv[1:-1], standalone_mode=True)
""")


@pytest.mark.slow
def test_config_command_verbs_leave_together_and_tear_down(tmp_path):
    # without end_distributed, a rank that finished first exited while its peer held gloo connections and was
    # aborted at shutdown about one launch in seven ("terminate called without an active exception")
    (tmp_path / "verb_worker.py").write_text(_VERB_WORKER)
    r = accelerate_launch(["verb_worker", "train", "--work", "1.0", str(tmp_path)], num_processes=2, cwd=tmp_path,
                          timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    written = float((tmp_path / "written").read_text())
    for rank in (0, 1):
        d = json.loads((tmp_path / f"exit{rank}.json").read_text())
        assert d["pg_up"] is False  # destroyed by the verb, not left to interpreter shutdown
        assert d["time"] >= written  # rank 1 waited for the writer at the barrier
