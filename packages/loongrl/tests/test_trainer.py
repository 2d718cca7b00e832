import json

import pytest
import torch
from loongrl.config import TrainConfig
from loongrl.data import make_synthetic_qa
from loongrl.synthesis import synthesize
from loongrl.trainer import grpo_args, keychain_rows, train
from rlcore.io import write_jsonl
from rlcore.testing import tiny_causal_lm, tiny_tokenizer

# transformers 5.24 deprecates `is_gradient_checkpointing`, which trl 1.16 still reads while unwrapping the model for
# generation; remove once trl reads `is_activation_checkpointing`.
TRL_DEPRECATION = "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"


def _warm_start(model, tok, rows, steps=80, window=48):
    """Supervised steps towards '</think>\\boxed{answer}' on the last ``window`` prompt tokens, so GRPO rollouts
    sometimes earn sub-EM reward (a random tiny model never writes </think>: every advantage would be 0 and nothing
    would be learned). Short windows keep this to a second on CPU."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    seqs, masks = [], []
    for r in rows:
        prompt = tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
        p = tok(prompt, add_special_tokens=False)["input_ids"][-window:]
        c = tok("</think>\\boxed{" + r["answers"][0] + "}", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        seqs.append(p + c)
        masks.append([0] * len(p) + [1] * len(c))
    n = max(map(len, seqs))
    ids = torch.tensor([s + [tok.pad_token_id] * (n - len(s)) for s in seqs])  # (R, n)
    labels = torch.tensor([[t if m else -100 for t, m in zip(s, mk)] + [-100] * (n - len(s))
                           for s, mk in zip(seqs, masks)])
    for _ in range(steps):
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("grpo")
    tok = tiny_tokenizer()
    items = make_synthetic_qa(40, seed=0, distractor_docs=0, filler_sentences=1)
    recs = list(synthesize(items, tok, 512, num_samples=2, reserve_tokens=16, doc_step=2))
    write_jsonl(d / "kc.jsonl", recs)
    model = _warm_start(tiny_causal_lm(tok), tok, keychain_rows(recs, system=None), steps=80)
    model.save_pretrained(str(d / "model"))
    tok.save_pretrained(str(d / "model"))
    return d, tok


@pytest.mark.filterwarnings(TRL_DEPRECATION)
def test_grpo_steps_on_tiny_keychain_data(tiny_run):
    d, tok = tiny_run
    from transformers import AutoModelForCausalLM

    init = AutoModelForCausalLM.from_pretrained(str(d / "model"))
    cfg = TrainConfig(model=str(d / "model"), output_dir=str(d / "run"), input=str(d / "kc.jsonl"),
                      warmup_steps=0, stage1_steps=2, stage2_steps=0, num_generations=4,
                      per_device_train_batch_size=4, gradient_accumulation_steps=1, max_completion_length=16,
                      learning_rate=1e-3, gradient_checkpointing=False, device="cpu", system_prompt="")
    log = train(cfg)
    (stage,) = log["stages"]
    hist = stage["log_history"]
    assert stage["name"] == "stage1" and len(hist) == 2
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in hist)
    assert "rewards/loongrl/mean" in hist[0]
    rewards = [h["rewards/loongrl/mean"] for h in hist]
    assert max(rewards) > 0  # the warm-started policy earns reward
    final = AutoModelForCausalLM.from_pretrained(log["final_model"])
    changed = [n for (n, p), q in zip(final.named_parameters(), init.parameters()) if not torch.equal(p, q)]
    assert changed, "GRPO steps left every parameter unchanged"
    saved = json.loads((d / "run" / "train_log.json").read_text())
    assert saved["stages"][0]["steps"] == 2


def test_grpo_args_carry_spec_defaults(tmp_path):
    args = grpo_args(TrainConfig(model="m", device="cpu"), str(tmp_path), 5)
    assert (args.num_generations, args.learning_rate, args.beta, args.epsilon, args.max_grad_norm) == (8, 1e-6, 0.001, 0.2, 1.0)
    assert args.lr_scheduler_type == "cosine" and args.scale_rewards == "group" and args.max_steps == 5
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 256


def test_bad_train_config():
    with pytest.raises(ValueError, match="multiple of num_generations=8"):
        TrainConfig(per_device_train_batch_size=3, gradient_accumulation_steps=1)
    with pytest.raises(ValueError, match="no training data"):
        train(TrainConfig(model="x"))


def _train_argv(d, out, *extra):
    return ["loongrl", "train", "--model", str(d / "model"), "--input", str(d / "kc.jsonl"), "--output-dir", str(out),
            "--warmup-steps", "0", "--stage1-steps", "4", "--stage2-steps", "0", "--num-generations", "2",
            "--per-device-train-batch-size", "2", "--gradient-accumulation-steps", "1", "--max-completion-length", "8",
            "--learning-rate", "1e-3", "--no-gradient-checkpointing", "--device", "cpu", "--system-prompt", "", *extra]


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.filterwarnings(TRL_DEPRECATION)
def test_kill_and_resume_equals_uninterrupted(tiny_run, tmp_path):
    """Issue 14: SIGKILL after a checkpoint, --resume latest, final weights and logged metrics equal an
    uninterrupted run with the same seed; no duplicated log rows."""
    import subprocess
    import sys

    from rlcore.testing import run_and_kill

    d, _ = tiny_run
    env = {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    ref = tmp_path / "ref"  # the uninterrupted run, in-process through the same CLI
    from loongrl.cli import app
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, _train_argv(d, ref)[1:])
    assert r.exit_code == 0, r.output[-2000:]
    run = tmp_path / "run"
    ck = run / "stage1" / "checkpoint-2" / "trainer_state.json"
    killed = run_and_kill(_train_argv(d, run, "--save-steps", "1"), when=ck.is_file, timeout=600, env=env)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (run / "train_log.json").exists()
    p = subprocess.run([sys.executable, "-m", *_train_argv(d, run, "--save-steps", "1", "--resume", "latest")],
                       capture_output=True, text=True, timeout=600, env={**__import__("os").environ, **env})
    assert p.returncode == 0, p.stderr[-2000:]
    a, b = _weights(ref / "final"), _weights(run / "final")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6, rtol=0) for k in a)
    la = json.loads((ref / "train_log.json").read_text())["stages"][0]["log_history"]
    lb = json.loads((run / "train_log.json").read_text())["stages"][0]["log_history"]
    assert [h["step"] for h in lb] == [1, 2, 3, 4]  # no duplicated rows after the resume
    for ha, hb in zip(la, lb):
        assert ha["loss"] == pytest.approx(hb["loss"], abs=1e-6) and ha["reward"] == pytest.approx(hb["reward"])


@pytest.mark.slow
@pytest.mark.filterwarnings(TRL_DEPRECATION)
def test_two_process_launch_shards_data_and_writes_once(tiny_run, tmp_path):
    """Issue 14: `accelerate launch --num_processes 2 -m loongrl train`: world size 2, different rows on the two
    ranks, one writer (one summary line, one log)."""
    from rlcore.testing import accelerate_launch

    d, _ = tiny_run
    out = tmp_path / "ddp"
    argv = _train_argv(d, out)
    argv[argv.index("--stage1-steps") + 1] = "2"
    p = accelerate_launch(argv, num_processes=2, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    summaries = [line for line in p.stdout.splitlines() if line.startswith('{"final_model"')]
    assert len(summaries) == 1 and json.loads(summaries[0])["world_size"] == 2
    log = json.loads((out / "train_log.json").read_text())
    assert log["world_size"] == 2 and len(log["rank_rows"]) == 2
    r0, r1 = log["rank_rows"]  # rows per generation batch on each rank
    assert len(r0) == len(r1) == 2
    for b0, b1 in zip(r0, r1):  # each batch: one prompt group per rank, different prompts
        assert len(b0) == len(b1) == 1 and b0 != b1
    steps = [h["step"] for h in log["stages"][0]["log_history"]]
    assert steps == [1, 2]
