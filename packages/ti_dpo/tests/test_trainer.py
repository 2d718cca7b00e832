import copy

import pytest
import torch
from datasets import Dataset
from ti_dpo.data import load_preference_pairs
from ti_dpo.evaluation import evaluate_preferences

# TRL 1.16's DPOTrainer reads model.is_gradient_checkpointing, deprecated in transformers 5.x (removed in v6);
# drop this ignore once trl uses is_activation_checkpointing.
TRL_GC_WARNING = "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"


@pytest.mark.filterwarnings(TRL_GC_WARNING)
def test_peer_uniform_weights_equal_trl_dpo_sigmoid(tmp_path, tok, lm, common_args):
    from ti_dpo.trainer import TIDPOConfig, TIDPOTrainer
    from trl import DPOConfig, DPOTrainer

    ds = load_preference_pairs("tiny").select(range(4))
    dpo = DPOTrainer(model=lm(0), ref_model=lm(1), train_dataset=ds, processing_class=tok,
                     args=DPOConfig(output_dir=str(tmp_path / "a"), **common_args))
    ti = TIDPOTrainer(model=lm(0), ref_model=lm(1), processing_class=tok, train_dataset=ds,
                      args=TIDPOConfig(output_dir=str(tmp_path / "b"), token_weighting="uniform", alpha_kl=0.0,
                                       gamma=0.0, **common_args))
    batch = dpo.data_collator([dpo.train_dataset[i] for i in range(4)])
    losses, grads = [], []
    for tr in (dpo, ti):
        tr.model.zero_grad()
        loss = tr.compute_loss(tr.model, batch)
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in tr.model.named_parameters() if p.grad is not None})
    assert abs(losses[0].item() - 0.6931) > 1e-3  # policy != reference: a non-trivial loss
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=0)
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-5, rtol=1e-5)


def test_precomputed_reference_matches_live_reference(tmp_path, make_trainer):
    ds = load_preference_pairs("tiny").select(range(4))
    live = make_trainer(tmp_path / "a", ds, alpha_kl=0.0, gamma=0.0)
    pre = make_trainer(tmp_path / "b", ds, alpha_kl=0.0, gamma=0.0, precompute_ref_log_probs=True)
    assert pre.train_dataset[0]["ref_chosen_logps"].__len__() == 64  # per token, padded to max_length
    b_live = live.data_collator([live.train_dataset[i] for i in range(4)])
    b_pre = pre.data_collator([pre.train_dataset[i] for i in range(4)])
    torch.testing.assert_close(pre.compute_loss(pre.model, b_pre), live.compute_loss(live.model, b_live))


def test_config_validation(common_args):
    from ti_dpo.trainer import TIDPOConfig

    for kw, field in [(dict(ti_lambda=1.2), "ti_lambda"), (dict(weight_normalization="x"), "weight_normalization"),
                      (dict(gamma=-1.0), "gamma"), (dict(loss_type=["hinge"]), "loss_type"),
                      (dict(precompute_ref_log_probs=True), "alpha_kl")]:
        with pytest.raises(ValueError, match=field):
            TIDPOConfig(output_dir="unused", **{**common_args, **kw})
    with pytest.raises(ValueError, match="preset"):
        TIDPOConfig.from_preset("nope")
    rel = TIDPOConfig.from_preset("release", output_dir="unused", **{**common_args, "max_length": 256})
    assert (rel.beta, rel.ti_lambda, rel.prior_sigma_div, rel.gamma) == (0.2, 0.2, 8.0, 0.001)


def test_bad_pairs_are_dropped_and_counted(tmp_path, make_trainer):
    from pathlib import Path

    ds = load_preference_pairs(str(Path(__file__).parent / "fixtures" / "bad_pairs.jsonl"))
    long = {"prompt": "word " * 200, "chosen": " a.", "rejected": " b."}
    ds = Dataset.from_list(list(ds) + [long])
    tr = make_trainer(tmp_path, ds, gamma=0.0)
    assert tr.data_report["train"] == {"empty_chosen": 1, "empty_rejected": 1, "identical": 1,
                                       "prompt_too_long": 1, "kept": 2}
    with pytest.raises(ValueError, match="no usable preference pair"):
        make_trainer(tmp_path, Dataset.from_list([{"prompt": "q", "chosen": " x", "rejected": " x"}]), gamma=0.0)


def test_triplet_needs_a_reference(tmp_path, make_trainer):
    with pytest.raises(ValueError, match="gamma"):
        make_trainer(tmp_path, ref_model=None, alpha_kl=0.0, precompute_ref_log_probs=True)


def test_training_raises_preference_accuracy_and_logs_terms(tmp_path, tok, lm, make_trainer):
    records = [dict(r) for r in load_preference_pairs("tiny")]
    ref = lm(0)
    model = lm(0)
    before = evaluate_preferences(model, tok, records, ref_model=ref)
    tr = make_trainer(tmp_path, load_preference_pairs("tiny"), model=model, ref_model=copy.deepcopy(ref),
                      max_steps=6, learning_rate=5e-3)
    tr.train()
    after = evaluate_preferences(model, tok, records, ref_model=ref)
    assert after["reward_accuracy"] > before["reward_accuracy"] and after["reward_accuracy"] >= 0.7
    assert after["likelihood_accuracy"] > before["likelihood_accuracy"]
    logs = [h for h in tr.state.log_history if "loss/dpo" in h]
    assert len(logs) == 6
    for key in ("loss/dpo", "loss/triplet", "kl/chosen", "weights/chosen_mean", "anchor/length"):
        assert all(torch.isfinite(torch.tensor(h[key])) for h in logs), key
    assert logs[0]["weights/chosen_mean"] == pytest.approx(1.0)  # mean-one normalisation over the response
    assert logs[0]["weights/max"] > 1.0  # ... and the weights are not uniform
    ev = tr.evaluate(eval_dataset=load_preference_pairs("tiny").select(range(4)))
    assert "eval_loss/dpo" in ev and "eval_rewards/accuracies" in ev


def test_peft_lora_implicit_reference(tmp_path, tok, lm, common_args):
    from peft import LoraConfig
    from ti_dpo.trainer import TIDPOConfig, TIDPOTrainer

    tr = TIDPOTrainer(model=lm(0), processing_class=tok, train_dataset=load_preference_pairs("tiny"),
                      peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
                      args=TIDPOConfig(output_dir=str(tmp_path), max_steps=2, learning_rate=1e-2,
                                       anchor_max_new_tokens=4, **common_args))
    assert tr.ref_model is None
    lora = {n: p.detach().clone() for n, p in tr.model.named_parameters() if "lora_B" in n}
    tr.train()
    changed = [n for n, p in tr.model.named_parameters() if "lora_B" in n and not torch.equal(p, lora[n])]
    assert changed
    assert all("loss/triplet" in h for h in tr.state.log_history if "loss" in h)
    first = next(h for h in tr.state.log_history if "loss/dpo" in h)
    assert first["kl/chosen"] == pytest.approx(0.0, abs=1e-5)  # LoRA B = 0: policy == adapter-disabled reference


@pytest.mark.parametrize("reentrant", [False, True])
def test_activation_checkpointing_keeps_attribution_working(tmp_path, reentrant, make_trainer):
    tr = make_trainer(tmp_path, max_steps=1, activation_checkpointing=True,
                      activation_checkpointing_kwargs={"use_reentrant": reentrant})
    tr.train()
    log = next(h for h in tr.state.log_history if "loss/dpo" in h)
    assert log["weights/max"] > 1.0 and log["weights/zero_importance_rows"] == 0.0


def _chat_pairs():
    return Dataset.from_list([
        {"prompt": [{"role": "user", "content": f"What is {a} + {b}?"}],
         "chosen": [{"role": "assistant", "content": f"The answer is {a + b}."}],
         "rejected": [{"role": "assistant", "content": f"The answer is {a + b + 1}."}]}
        for a, b in [(1, 2), (3, 4), (2, 5), (6, 1)]
    ])


def test_conversational_pairs_train_and_evaluate(tmp_path, tok, lm, make_trainer):
    ds = _chat_pairs()
    tr = make_trainer(tmp_path, ds, max_steps=1, anchor_max_new_tokens=4)
    tr.train()
    assert any("loss/triplet" in h for h in tr.state.log_history)
    from ti_dpo.evaluation import tokenize_pair

    p, c, r = tokenize_pair(tok, ds[0])
    assert tok.decode(p).endswith("<|im_start|>assistant\n") and "The answer is 3." in tok.decode(c)
    assert c != r
    m = evaluate_preferences(tr.model, tok, list(ds), ref_model=lm(1))
    assert m["n"] == 4 and 0.0 <= m["reward_accuracy"] <= 1.0


@pytest.mark.filterwarnings(TRL_GC_WARNING)
def test_confidence_at_uniform_confidence_equals_trl_dpo_sigmoid(tmp_path, tok, lm, common_args):
    """--importance confidence with λ=1: a policy whose every token has probability 1/V selects every token
    (ConfPO's p <= mean rule), so the weights are exactly 1 and loss and gradients are DPO's."""
    from ti_dpo.trainer import TIDPOConfig, TIDPOTrainer
    from trl import DPOConfig, DPOTrainer

    def flat_policy():
        m = lm(0)
        with torch.no_grad():
            m.get_output_embeddings().weight.zero_()  # logits 0 everywhere: uniform confidence
        return m

    ds = load_preference_pairs("tiny").select(range(4))
    dpo = DPOTrainer(model=flat_policy(), ref_model=lm(1), train_dataset=ds, processing_class=tok,
                     args=DPOConfig(output_dir=str(tmp_path / "a"), **common_args))
    ti = TIDPOTrainer(model=flat_policy(), ref_model=lm(1), processing_class=tok, train_dataset=ds,
                      args=TIDPOConfig(output_dir=str(tmp_path / "b"), importance="confidence", ti_lambda=1.0,
                                       alpha_kl=0.0, gamma=0.0, **common_args))
    batch = dpo.data_collator([dpo.train_dataset[i] for i in range(4)])
    losses, grads = [], []
    for tr in (dpo, ti):
        tr.model.train()
        tr.model.zero_grad()
        loss = tr.compute_loss(tr.model, batch)
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in tr.model.named_parameters() if p.grad is not None})
    assert abs(losses[0].item() - 0.6931) > 1e-3
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=0)
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], atol=1e-5, rtol=1e-5)
    assert ti._metrics["train"]["weights/max"][-1] == pytest.approx(1.0, abs=1e-6)


def test_confidence_and_random_sources_train_and_differ_from_uniform(tmp_path, make_trainer):
    ds = load_preference_pairs("tiny").select(range(4))
    for source in ("confidence", "random"):
        tr = make_trainer(tmp_path / source, ds, importance=source, max_steps=1, gamma=0.0, learning_rate=1e-3)
        tr.train()
        log = next(h for h in tr.state.log_history if "loss/dpo" in h)
        assert log["weights/chosen_mean"] == pytest.approx(1.0) and log["weights/max"] > 1.05, source


def test_importance_view_shows_the_weights_the_trainer_uses(tmp_path, common_args):
    """`ti-dpo importance` tokenises like training (EOS appended) and weights like the trainer."""
    from rlcore.builtins import load_model_and_tokenizer
    from ti_dpo.visualize import token_importance

    model, tok = load_model_and_tokenizer("builtin:tiny-reasoner", device="cpu", dtype="float32")
    rec = {"prompt": "Question: Compute 2+3.\nAnswer: <think>", "chosen": "2+3=5.</think> \\boxed{5}",
           "rejected": "2+3=6.</think> \\boxed{6}"}
    for kw in (dict(), dict(importance="confidence"), dict(importance_span="sequence", prior_sigma_div=8.0,
                                                           ti_lambda=0.2, prior="softmax")):
        from ti_dpo.trainer import TIDPOConfig, TIDPOTrainer

        tr = TIDPOTrainer(model=model, ref_model=copy.deepcopy(model), processing_class=tok,
                          train_dataset=Dataset.from_list([rec]),
                          args=TIDPOConfig(output_dir=str(tmp_path),
                                           **{**common_args, "per_device_train_batch_size": 1, "gamma": 0.0, **kw}))
        batch = tr.data_collator([tr.train_dataset[0]])
        trainer_w = tr.token_weights(tr.model, batch)[0]  # the chosen row
        view = token_importance(model, tok, rec["prompt"], rec["chosen"], **{
            "ti_lambda": tr.args.ti_lambda, "prior_sigma_div": tr.args.prior_sigma_div,
            "importance_span": tr.args.importance_span, "importance": tr.args.importance, "prior": tr.args.prior})
        n = len(view["weights"])
        assert view["tokens"][-1] == tok.eos_token  # the EOS training appends is in the view
        assert batch["attention_mask"][0].sum() == n
        torch.testing.assert_close(torch.tensor(view["weights"]), trainer_w[:n].float(), atol=1e-5, rtol=1e-4)
