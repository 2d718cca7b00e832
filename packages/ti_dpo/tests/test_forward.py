"""One forward per step: chunked TDPO2 KL, fused attribution, the anchor in the chosen/rejected batch, generation."""

import pytest
import torch
from ti_dpo.data import load_preference_pairs
from ti_dpo.forward import TIHeadRequest, add_ti_head, chunked_label_logps_and_kl
from ti_dpo.importance import compute_gradient_attribution
from ti_dpo.loss import compute_sequential_kl


@pytest.mark.parametrize("chunk", [1 << 24, 7 * 384])  # one block; 7-token chunks recomputed in the backward
def test_chunked_kl_and_logps_equal_the_plain_formula(chunk):
    torch.manual_seed(0)
    B, T, H, V = 3, 9, 16, 384
    head, ref_head = torch.nn.Linear(H, V, bias=False), torch.nn.Linear(H, V, bias=False)
    h = torch.randn(B, T, H, requires_grad=True)
    rh = torch.randn(B, T, H)
    labels = torch.randint(0, V, (B, T))
    labels[0, :3] = -100
    labels[2, 6:] = -100
    lp, kl, ref_lp = chunked_label_logps_and_kl(h, head, labels, rh, ref_head, max_chunk_elems=chunk)
    (lp.sum() + 0.3 * kl.sum()).backward()
    g_chunk = (h.grad.clone(), head.weight.grad.clone())
    h.grad, head.weight.grad = None, None
    # the plain formula: full (B, T, V) float32 log-softmaxes of policy and reference
    full, ref_full = head(h).float().log_softmax(-1), ref_head(rh).float().log_softmax(-1).detach()
    mask = (labels != -100).long()
    plain_lp = full.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    plain_kl = compute_sequential_kl(ref_full, full, mask)  # (B,) summed over positions
    (plain_lp.sum() + 0.3 * plain_kl.sum()).backward()
    torch.testing.assert_close(lp, plain_lp, atol=1e-5, rtol=0)
    torch.testing.assert_close(kl.sum(dim=1), plain_kl, atol=1e-5, rtol=0)
    torch.testing.assert_close(ref_lp, ref_full.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask,
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(g_chunk[0], h.grad, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g_chunk[1], head.weight.grad, atol=1e-5, rtol=1e-5)
    assert kl[0, :3].abs().sum() == 0 and (kl[mask.bool()] > 0).all()


def test_fused_attribution_equals_the_separate_pass(lm):
    model = lm(0)
    add_ti_head(model)
    ids = torch.tensor([[5, 17, 33, 9, 41, 7], [12, 3, 99, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    separate = compute_gradient_attribution(model, ids, mask)
    model.train()
    out = model(input_ids=ids, attention_mask=mask, ti_head=TIHeadRequest(labels=ids, attribution_rows=2))
    torch.testing.assert_close(out.importance, separate, atol=1e-5, rtol=1e-4)
    assert separate[1, 3:].abs().sum() == 0 and (separate[0] > 0).all()
    # the graph survives the attribution: the loss backward still reaches every parameter
    out.log_probs.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def _count_grad_forwards(model):
    calls = []
    original = model.forward

    def counting(*args, **kwargs):
        calls.append((torch.is_grad_enabled(), kwargs["input_ids"].shape[0] if "input_ids" in kwargs else None))
        return original(*args, **kwargs)

    model.forward = counting
    return calls


def test_anchor_is_scored_in_the_chosen_rejected_forward(tmp_path, make_trainer):
    from rlcore.testing import recording_generators

    tr = make_trainer(tmp_path)
    batch = tr.data_collator([tr.train_dataset[i] for i in range(4)])
    tr.model.train()
    calls = _count_grad_forwards(tr.model)
    with recording_generators() as gen_calls:
        loss = tr.compute_loss(tr.model, batch)
    loss.backward()
    grad_forwards = [rows for grad, rows in calls if grad]
    assert grad_forwards == [12]  # one forward with grad: 4 chosen + 4 rejected + 4 anchors
    assert [c.kind for c in gen_calls] == ["generate"] and len(gen_calls[0].prompt_ids) == 4
    assert gen_calls[0].params.max_new_tokens == 6 and gen_calls[0].params.top_k == 50
    assert tr.attribution_mode == "fused"
    log = {k: v[-1] for k, v in tr._metrics["train"].items()}
    assert log["loss/triplet"] >= 0 and 1 <= log["anchor/length"] <= 6


def test_anchor_reuse_steps_zero_samples_each_prompt_once(tmp_path, make_trainer):
    from rlcore.testing import recording_generators

    ds = load_preference_pairs("tiny").select(range(4))
    tr = make_trainer(tmp_path, ds, max_steps=3, anchor_reuse_steps=0, learning_rate=1e-3)
    with recording_generators() as calls:
        tr.train()  # 3 steps over the same 4 prompts
    assert len([c for c in calls if c.kind == "generate"]) == 1
    fresh = make_trainer(tmp_path / "b", ds, max_steps=3, learning_rate=1e-3)
    with recording_generators() as calls:
        fresh.train()
    assert len([c for c in calls if c.kind == "generate"]) == 3  # default: a fresh anchor at every step


def test_reentrant_checkpointing_fails_early_for_fused_and_auto_uses_the_separate_pass(tmp_path,
                                                                                       make_trainer):
    ckpt = dict(activation_checkpointing=True, activation_checkpointing_kwargs={"use_reentrant": True})
    with pytest.raises(ValueError, match="reentrant"):
        make_trainer(tmp_path / "a", attribution="fused", **ckpt)
    tr = make_trainer(tmp_path / "b", max_steps=1, **ckpt)
    assert tr.attribution_mode == "separate"
    tr.train()
    log = next(h for h in tr.state.log_history if "loss/dpo" in h)
    assert log["weights/max"] > 1.0 and log["loss/triplet"] >= 0.0


def test_vllm_backend_without_vllm_is_a_one_line_error(tmp_path):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here")
    from ti_dpo.cli import app
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["train", "--model", "builtin:tiny-reasoner", "--backend", "vllm", "--max-steps",
                                 "1", "--output-dir", str(tmp_path), "--device", "cpu"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "the vllm backend needs vLLM: pip install 'rlcore[vllm]'" in r.output
    assert "Loading weights" not in r.output  # checked before the model is loaded


def test_evaluation_scores_through_rlcore(tok, lm):
    from rlcore.testing import recording_generators
    from ti_dpo.evaluation import evaluate_preferences

    records = [dict(r) for r in load_preference_pairs("tiny", "test")]
    with recording_generators() as calls:
        m = evaluate_preferences(lm(0), tok, records, ref_model=lm(1), batch_size=4, show_progress=True)
    assert calls and {c.kind for c in calls} == {"score"} and sum(len(c.prompt_ids) for c in calls) == 4 * 8
    assert m["n"] == 8 and 0.0 <= m["reward_accuracy"] <= 1.0


def test_anchor_cache_is_saved_with_the_checkpoint_and_restored_on_resume(tmp_path, make_trainer):
    from rlcore.testing import recording_generators

    ds = load_preference_pairs("tiny").select(range(4))  # batch 4: the same 4 prompts at every step
    kw = dict(anchor_reuse_steps=0, learning_rate=1e-3, save_strategy="steps", save_steps=2)
    first = make_trainer(tmp_path, ds, max_steps=2, **kw)
    first.train()
    assert (tmp_path / "checkpoint-2" / "ti_dpo_state_rank0.json").is_file()
    again = make_trainer(tmp_path, ds, max_steps=3, **kw)
    with recording_generators() as calls:
        again.train(resume_from_checkpoint=str(tmp_path / "checkpoint-2"))
    assert [h["step"] for h in again.state.log_history if "loss/dpo" in h][-1] == 3
    assert not [c for c in calls if c.kind == "generate"]  # step 3 reused the 4 anchors kept in the checkpoint
    assert again._anchor_cache.keys() == first._anchor_cache.keys() and len(first._anchor_cache) == 4
