"""The shared-prompt packed layout, trimmed and deduplicated anchors: same loss and gradients as the padded layout."""

import pytest
import torch
from datasets import Dataset
from ti_dpo.data import load_preference_pairs
from ti_dpo.packing import pack_shared_prompt


def test_pack_shared_prompt_hand_computed():
    # pair 0: prompt [5, 6], chosen [7], rejected [8, 9]; pair 1: prompt [4], chosen [3, 2], rejected [1]
    ids = torch.tensor([[5, 6, 7, 0], [4, 3, 2, 0], [5, 6, 8, 9], [4, 1, 0, 0]])
    am = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0]])
    cm = torch.tensor([[0, 0, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1], [0, 1, 0, 0]])
    lay = pack_shared_prompt(ids, am, cm, groups=2, pad_id=0)
    # packed rows [x | y_w | y_l]: [5 6 | 7 | 8 9] (5 slots) and [4 | 3 2 | 1] (4 slots, one pad), width 5
    assert lay.input_ids.tolist() == [[5, 6, 7, 8, 9], [4, 3, 2, 1, 0]]
    # each token keeps its column in its padded row: y_l's [8, 9] sat at columns 2, 3
    assert lay.position_ids.tolist() == [[0, 1, 2, 2, 3], [0, 1, 2, 1, 0]]
    # padded (row, column) -> flat packed slot (row g at g * 5); padding -> 0
    assert lay.src.tolist() == [[0, 1, 2, 0], [5, 6, 7, 0], [0, 1, 3, 4], [5, 8, 0, 0]]
    allowed = lay.allowed.int()
    # slot 3 (y_l's 8) sees the prompt (0, 1) and itself, not y_w's 7 (slot 2); slot 4 (9) also sees 8
    assert allowed[0, 3].tolist() == [1, 1, 0, 1, 0] and allowed[0, 4].tolist() == [1, 1, 0, 1, 1]
    assert allowed[0, 2].tolist() == [1, 1, 1, 0, 0] and allowed[0, 1].tolist() == [1, 1, 0, 0, 0]
    assert allowed[1, 4].tolist() == [0, 0, 0, 0, 1]  # the pad slot sees itself only (no all-masked row)
    assert allowed[1, 3].tolist() == [1, 0, 0, 1, 0]  # y_l's 1 sees the prompt 4, not y_w's 3 2
    # row_budget 9: both runs (5 + 4 slots) in one packed row, pair 1 from slot 5, and they do not see each other
    one = pack_shared_prompt(ids, am, cm, groups=2, row_budget=9)
    assert one.input_ids.tolist() == [[5, 6, 7, 8, 9, 4, 3, 2, 1]]
    assert one.position_ids.tolist() == [[0, 1, 2, 2, 3, 0, 1, 2, 1]]
    assert one.src.tolist() == [[0, 1, 2, 0], [5, 6, 7, 0], [0, 1, 3, 4], [5, 8, 0, 0]]
    assert one.allowed[0, 8].int().tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 1]  # y_l's 1: its prompt 4 and itself
    # rows of a pair with different prompts cannot share one: None (the trainer keeps the padded layout)
    other = ids.clone()
    other[2, 0] = 11
    assert pack_shared_prompt(other, am, cm, groups=2) is None


def _loss_and_grads(tr, batch):
    tr.model.zero_grad(set_to_none=True)
    loss = tr.compute_loss(tr.model, batch)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in tr.model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("kw", [
    dict(),  # paper default: fused attribution, TDPO2 KL, triplet
    dict(alpha_kl=0.0, attribution="separate", attn_implementation="eager"),  # label-only reference; eager mask
    dict(gamma=0.0, token_weighting="uniform"),  # DPO through the TI-DPO head
])
def test_shared_prompt_layout_and_trimmed_anchors_equal_the_previous_padded_layout(tmp_path, kw, monkeypatch, lm,
                                                                                   make_trainer):
    import ti_dpo.trainer as trainer_mod

    kw = dict(kw)
    impl = kw.pop("attn_implementation", "sdpa")
    model, ref = lm(0), lm(1)  # different weights: non-zero log-ratios, KL and triplet gradients
    for m in (model, ref):
        m.config._attn_implementation = impl
    tr = make_trainer(tmp_path, model=model, ref_model=ref, anchor_max_new_tokens=24, **kw)
    assert tr.batch_layout == "shared_prompt"
    batch = tr.data_collator([tr.train_dataset[i] for i in range(4)])
    tr.model.train()
    packed = []
    real_pack = trainer_mod.pack_shared_prompt
    monkeypatch.setattr(trainer_mod, "pack_shared_prompt", lambda *a, **k: packed.append(real_pack(*a, **k)) or packed[-1])
    new_loss, new_grads = _loss_and_grads(tr, batch)
    rows = 12 if "gamma" not in kw else 8
    assert len(packed) == 1 and packed[0].src.shape[0] == rows and packed[0].input_ids.shape[0] == 4  # 4 pairs packed
    assert tr.padded_fallbacks == 0
    new_len = tr._metrics["train"]["anchor/length"][-1] if "gamma" not in kw else 0
    # the previous implementation: one padded row each, anchors sampled to the cap (24 > the 8-token responses)
    # and scored in full
    tr.batch_layout = "padded"
    monkeypatch.setattr(trainer_mod, "trim_anchors", lambda anchors, longer: anchors)
    full = tr._anchors
    monkeypatch.setattr(tr, "_anchors", lambda model, prompts, needed=None: full(model, prompts))
    old_loss, old_grads = _loss_and_grads(tr, batch)
    if "gamma" not in kw:
        assert new_len <= 8 < tr._metrics["train"]["anchor/length"][-1]
    assert new_loss.abs() > 0
    torch.testing.assert_close(new_loss, old_loss, rtol=1e-5, atol=1e-6)
    assert new_grads.keys() == old_grads.keys()
    for name, g in old_grads.items():
        torch.testing.assert_close(new_grads[name], g, rtol=1e-4, atol=1e-6, msg=name)


def test_anchor_sampling_stops_at_the_longer_response_and_dedups_prompts(tmp_path, make_trainer):
    from rlcore.testing import recording_generators

    pairs = load_preference_pairs("tiny").select(range(3)).to_list()
    rows = [pairs[0], pairs[1], pairs[0], pairs[2]]  # prompt 0 twice
    tr = make_trainer(tmp_path, ds=Dataset.from_list(rows), anchor_max_new_tokens=64)
    batch = tr.data_collator([tr.train_dataset[i] for i in range(4)])
    comp = batch["completion_mask"]
    longer = torch.maximum(comp[:4].sum(dim=1), comp[4:].sum(dim=1))  # (4,) tokens of the pair's longer response
    assert int(longer.max()) < 64
    tr.model.train()
    with recording_generators() as calls:
        tr.compute_loss(tr.model, batch)
    (call,) = [c for c in calls if c.kind == "generate"]
    assert len(call.prompt_ids) == 3  # 4 pairs, 3 distinct prompts
    assert call.params.max_new_tokens == int(longer.max())  # not 64: later anchor tokens are never scored
    # the duplicated prompt's two anchor rows are the same tokens
    anchors = tr._anchors(tr.model, [list(call.prompt_ids[i]) for i in (0, 1, 0, 2)], longer.tolist())
    assert anchors[0] == anchors[2]


def test_shared_prompt_is_refused_where_it_cannot_be_exact(tmp_path, lm, make_trainer):
    with pytest.raises(ValueError, match="importance_span='sequence'"):
        make_trainer(tmp_path, batch_layout="shared_prompt", importance_span="sequence", attribution="fused")
    tr = make_trainer(tmp_path, importance_span="sequence", attribution="fused")  # auto: falls back
    assert tr.batch_layout == "padded"
    assert make_trainer(tmp_path, importance_span="sequence", attribution="separate").batch_layout == "shared_prompt"
    model = lm(0)
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="flash_attention_2"):
        make_trainer(tmp_path, model=model, batch_layout="shared_prompt")
    assert make_trainer(tmp_path, batch_layout="padded").batch_layout == "padded"
    # a batch whose chosen and rejected rows have different prompt tokens is scored padded, and counted
    tr = make_trainer(tmp_path, gamma=0.0)
    batch = tr.data_collator([tr.train_dataset[i] for i in range(4)])
    batch["input_ids"][4, 0] = (batch["input_ids"][0, 0] + 1) % 300
    assert torch.isfinite(tr.compute_loss(tr.model, batch)) and tr.padded_fallbacks == 1


@pytest.mark.parametrize("chunk", [1 << 24, 5 * 384])  # one block; 5-token chunks straddling the kl_rows boundary
def test_kl_rows_skips_the_kl_of_the_anchor_rows_only(chunk):
    from ti_dpo.forward import chunked_label_logps_and_kl

    torch.manual_seed(0)
    B, T, H, V = 3, 7, 16, 384
    head, ref_head = torch.nn.Linear(H, V, bias=False), torch.nn.Linear(H, V, bias=False)
    h = torch.randn(B, T, H)
    rh = torch.randn(B, T, H)
    labels = torch.randint(0, V, (B, T))
    labels[1, 5:] = -100
    full = chunked_label_logps_and_kl(h, head, labels, rh, ref_head, max_chunk_elems=chunk)
    part = chunked_label_logps_and_kl(h, head, labels, rh, ref_head, max_chunk_elems=chunk, kl_rows=2)
    torch.testing.assert_close(part[0], full[0], atol=1e-6, rtol=0)  # log-probs: every row
    torch.testing.assert_close(part[2], full[2], atol=1e-6, rtol=0)  # reference log-probs: every row
    torch.testing.assert_close(part[1][:2], full[1][:2], atol=1e-6, rtol=0)  # KL: rows 0, 1 as before
    assert (full[1][2] > 0).all() and (part[1][2] == 0).all()  # row 2 (an anchor row): not computed
