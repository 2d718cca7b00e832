"""The official checkpoint layout (config.yaml + model_best.pt), built here from a tiny encoder."""

import pytest
import torch
import yaml
from q_rag.official import is_official_run, load_official_checkpoint
from q_rag.rope import rope_frequencies


def _perturbed(enc, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.01 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
            for k, v in enc.state_dict().items()}


@pytest.fixture()
def official_run(tmp_path):
    from rlcore.testing import tiny_encoder

    enc, tok = tiny_encoder(seed=0, hidden_size=32)
    base = tmp_path / "contriever"
    enc.save_pretrained(str(base))
    tok.save_pretrained(str(base))
    state_w, action_w = _perturbed(enc, 1), _perturbed(enc, 2)
    d = enc.config.hidden_size
    critic = {f"state_embed.model.{k}": v for k, v in state_w.items() if not k.startswith("pooler.")}
    critic.update({f"action_embed.model.model.{k}": v for k, v in action_w.items()})
    critic.update({"state_embed.head.weight": torch.zeros(256, d), "state_embed.head.bias": torch.zeros(256),
                   "state_embed.cls_token": torch.tensor([1]), "state_embed.sep_token": torch.tensor([2]),
                   "action_embed.model.head.weight": torch.zeros(256, d),
                   "action_embed.model.head.bias": torch.zeros(256),
                   "action_embed.rotary_emb.freqs": rope_frequencies(d // 2).float()})
    run = tmp_path / "Dec03_QRAG_qa2"
    run.mkdir()
    torch.save({"critic": critic, "policy": {}, "random_policy": {}, "v_net_target": {},
                "action_embed_target": {}, "critic_optim": {}, "scheduler": {}, "alpha": 0.01},
               run / "model_best.pt")
    cfg = {"seed": 42, "max_action_length": 256, "max_action_length_in_memory": 64,
           "algo": {"model": {"model_name": "facebook/contriever"},
                    "action_model": {"bert": {"pretrained_model_name_or_path": "${algo.model.model_name}"}}},
           "envs": {"positions_processor": "relative",
                    "positions_processor_dict": {"relative": {"step_size": 20}},
                    "env": {"sort_by_index": True, "max_steps": 6}}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    return run, base, state_w, action_w


def test_loads_weights_and_settings(official_run):
    run, base, state_w, action_w = official_run
    assert is_official_run(run) and not is_official_run(base)
    qf = load_official_checkpoint(run, base_model=str(base))
    assert (qf.position, qf.step_size, qf.pooling) == ("relative", 20, "mean")
    assert (qf.max_action_tokens, qf.max_state_tokens, qf.sort_by_index) == (256, 64, True)
    for k, v in qf.state_encoder.state_dict().items():
        if not k.startswith("pooler."):
            assert torch.equal(v, state_w[k]), k
    for k, v in qf.action_encoder.state_dict().items():
        assert torch.equal(v, action_w[k]), k
    # the two encoders really are different networks (separate E_s / E_a)
    assert not torch.equal(qf.state_encoder.embeddings.word_embeddings.weight,
                           qf.action_encoder.embeddings.word_embeddings.weight)


def test_cli_uses_official_run_and_refuses_contradictions(official_run, tmp_path):
    import json

    from q_rag.cli import app
    from typer.testing import CliRunner

    run, base, *_ = official_run
    data = tmp_path / "d.jsonl"
    runner = CliRunner()
    assert runner.invoke(app, ["data", "--output", str(data), "--task", "single", "--n", "2", "--tokens", "60"]
                         ).exit_code == 0
    out = tmp_path / "r.jsonl"
    r = runner.invoke(app, ["retrieve", "--input", str(data), "--model", str(run), "--base-model", str(base),
                            "--output", str(out), "--max-steps", "2", "--cache-dir", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) == 2 and all(len(json.loads(x)["retrieved"]) == 2
                                                          for x in out.read_text().splitlines())
    r = runner.invoke(app, ["retrieve", "--input", str(data), "--model", str(run), "--base-model", str(base),
                            "--position", "none"])
    assert r.exit_code == 2 and "contradicts position='relative'" in " ".join(r.output.split())
    r = runner.invoke(app, ["retrieve", "--input", str(data), "--model", str(base), "--base-model", str(base)])
    assert r.exit_code == 2 and "official run directories only" in " ".join(r.output.split())


def test_bad_layouts(official_run):
    run, base, *_ = official_run
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["envs"]["positions_processor"] = "random"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="random.*not supported"):
        load_official_checkpoint(run, base_model=str(base))
    cfg["envs"]["positions_processor"] = "none"
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert load_official_checkpoint(run, base_model=str(base)).position == "none"
    ck = torch.load(run / "model_best.pt", weights_only=False)
    ck["critic"] = {k: v for k, v in ck["critic"].items() if not k.startswith("action_embed.model.model.")}
    torch.save(ck, run / "model_best.pt")
    with pytest.raises(ValueError, match="no action encoder weights"):
        load_official_checkpoint(run, base_model=str(base))
    with pytest.raises(FileNotFoundError, match="model_last.pt"):
        load_official_checkpoint(run, base_model=str(base), which="last")
