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
                      learning_rate=1e-3, gradient_checkpointing=False, use_cpu=True, system_prompt="")
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
    args = grpo_args(TrainConfig(model="m", use_cpu=True), str(tmp_path), 5)
    assert (args.num_generations, args.learning_rate, args.beta, args.epsilon, args.max_grad_norm) == (8, 1e-6, 0.001, 0.2, 1.0)
    assert args.lr_scheduler_type == "cosine" and args.scale_rewards == "group" and args.max_steps == 5
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 256


def test_bad_train_config():
    with pytest.raises(ValueError, match="multiple of num_generations=8"):
        TrainConfig(per_device_train_batch_size=3, gradient_accumulation_steps=1)
    with pytest.raises(ValueError, match="no training data"):
        train(TrainConfig(model="x"))
