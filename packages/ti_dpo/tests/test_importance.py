import math

import pytest
import torch
from ti_dpo.importance import (
    compute_gaussian_prior,
    compute_gradient_attribution,
    compute_token_weights,
    last_valid_index,
)


def test_last_valid_index_both_padding_sides():
    m = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1], [1, 1, 1, 1]])
    assert last_valid_index(m).tolist() == [1, 3, 3]


def test_gaussian_prior_hand_computed():
    # n = 3: mu = 1, sigma = 3/4. exp(-0.5 (1/0.75)^2) = exp(-8/9) = 0.41111; p = [a, 1, a] / (1 + 2a)
    a = math.exp(-8 / 9)
    p = compute_gaussian_prior(torch.tensor([[1, 1, 1, 0]]), sigma_div=4.0)
    expected = torch.tensor([[a, 1.0, a, 0.0]]) / (1 + 2 * a)
    torch.testing.assert_close(p, expected)
    # span need not start at 0: positions are counted inside the span (prompt tokens masked out)
    p2 = compute_gaussian_prior(torch.tensor([[0, 0, 1, 1, 1]]), sigma_div=4.0)
    torch.testing.assert_close(p2[:, 2:], expected[:, :3])
    # n = 2: mu = 0.5, sigma = 0.5 -> symmetric [0.5, 0.5]; n = 1 -> [1]
    torch.testing.assert_close(compute_gaussian_prior(torch.tensor([[1, 1]])), torch.tensor([[0.5, 0.5]]))
    torch.testing.assert_close(compute_gaussian_prior(torch.tensor([[0, 1]])), torch.tensor([[0.0, 1.0]]))


def test_gaussian_prior_sigma_div_sharpens():
    m = torch.ones(1, 9, dtype=torch.long)
    wide, narrow = compute_gaussian_prior(m, 4.0), compute_gaussian_prior(m, 8.0)
    assert narrow[0, 4] > wide[0, 4] and narrow[0, 0] < wide[0, 0]
    torch.testing.assert_close(wide.sum(dim=1), torch.ones(1))


def test_token_weights_mixing_hand_computed():
    # I = [1, 3] on a span of 2 -> I_norm = [0.25, 0.75]; prior(n=2) = [0.5, 0.5]
    # lam = 0.5: W = 0.5*[0.25, 0.75] + 0.5*[0.5, 0.5] = [0.375, 0.625] (sum one); mean one: x2 = [0.75, 1.25]
    imp, span = torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[1, 1, 0]])
    w, _ = compute_token_weights(imp, span, lam=0.5, normalization="sum_one")
    torch.testing.assert_close(w, torch.tensor([[0.375, 0.625, 0.0]]))
    w, _ = compute_token_weights(imp, span, lam=0.5, normalization="mean_one")
    torch.testing.assert_close(w, torch.tensor([[0.75, 1.25, 0.0]]))


def test_token_weights_zero_importance_falls_back_to_prior_and_is_counted():
    span = torch.tensor([[1, 1, 1], [1, 1, 0]])
    imp = torch.tensor([[0.0, 0.0, 0.0], [2.0, 2.0, 0.0]])
    w, m = compute_token_weights(imp, span, lam=0.7, normalization="sum_one")
    torch.testing.assert_close(w[0], compute_gaussian_prior(span[:1])[0])
    torch.testing.assert_close(w[1], torch.tensor([0.5, 0.5, 0.0]))
    assert m["zero_importance_rows"] == 1.0


def test_uniform_weights_are_one_under_mean_one():
    span = torch.tensor([[0, 1, 1, 1], [1, 1, 0, 0]])
    w, _ = compute_token_weights(torch.rand(2, 4), span, weighting="uniform")
    torch.testing.assert_close(w, span.float())


@pytest.mark.parametrize("kw", [dict(lam=1.5), dict(normalization="softmax"), dict(weighting="random")])
def test_token_weights_bad_arguments(kw):
    with pytest.raises(ValueError, match=next(iter(kw)).replace("lam", "lam")):
        compute_token_weights(torch.ones(1, 2), torch.ones(1, 2), **kw)


def _tiny_double(seed=0):
    from rlcore.testing import tiny_causal_lm, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_causal_lm(tok, seed=seed, hidden_size=8, intermediate_size=16, num_attention_heads=2,
                           num_key_value_heads=1, attention_dropout=0.5)
    return model.double(), tok


def test_attribution_matches_finite_differences():
    model, tok = _tiny_double()
    model.train()  # attribution must switch to eval mode itself (the config has attention dropout 0.5)
    ids = torch.tensor([[5, 17, 40, 33, 8], [12, 60, 7, 0, 0]])
    am = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    imp = compute_gradient_attribution(model, ids, am)
    assert model.training  # mode restored
    model.eval()
    emb = model.get_input_embeddings()(ids).detach()
    last = [4, 2]
    # Qwen2's RMSNorm and rotary run in float32 even in a float64 model, so h = 1e-3 (truncation ~h^2) beats 1e-6
    h = 1e-3
    for b in range(2):
        n, H = 5, emb.size(-1)
        # every (position, dim) perturbation, +h and -h, as one batch of 2*n*H rows
        eye = torch.eye(n * H, dtype=emb.dtype).view(n * H, n, H) * h  # (nH, n, H)
        e = emb[b:b + 1] + torch.cat([eye, -eye])  # (2nH, n, H)
        logits = model(inputs_embeds=e, attention_mask=am[b:b + 1].expand(e.size(0), -1)).logits
        target = logits[:, last[b]].max(dim=-1).values  # (2nH,)
        fd = ((target[: n * H] - target[n * H:]) / (2 * h)).view(n, H)  # d target / d e_{i,d}
        expected = fd.abs().sum(dim=-1) * am[b]  # (n,)
        torch.testing.assert_close(imp[b].double(), expected, rtol=2e-3, atol=1e-6)
    # causal: tokens after the last valid position get nothing; pads get exactly 0
    assert imp[1, 3:].abs().sum() == 0


def test_attribution_is_a_constant_and_leaves_parameter_grads_alone():
    model, _ = _tiny_double()
    ids = torch.tensor([[5, 17, 40], [12, 60, 7]])
    imp = compute_gradient_attribution(model, ids, torch.ones_like(ids))
    assert not imp.requires_grad and imp.grad_fn is None
    assert all(p.grad is None for p in model.parameters())


def test_attribution_batched_equals_per_row():
    model, _ = _tiny_double(seed=1)
    ids = torch.tensor([[5, 17, 40, 33], [12, 60, 7, 0]])
    am = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    both = compute_gradient_attribution(model, ids, am)
    for b in range(2):
        one = compute_gradient_attribution(model, ids[b:b + 1], am[b:b + 1])
        torch.testing.assert_close(both[b:b + 1], one)


def test_confidence_importance_selects_low_probability_tokens():
    from ti_dpo.importance import compute_confidence_importance

    # probabilities 0.9, 0.1, 0.5 (mean 0.5) on response labels, a masked 0.2: labels 1 and 2 are "low"
    logps = torch.log(torch.tensor([[0.9, 0.1, 0.5, 0.2]]))
    imp = compute_confidence_importance(logps, torch.tensor([[1, 1, 1, 0]]))
    assert imp.tolist() == [[0.0, 0.0, 1.0, 1.0, 0.0]]  # shifted to input positions: label t -> position t+1
    # uniform confidence: every response token selected (exactly uniform importance)
    flat = compute_confidence_importance(torch.full((1, 5), math.log(1 / 384)), torch.tensor([[0, 1, 1, 1, 1]]))
    assert flat.tolist() == [[0.0, 0.0, 1.0, 1.0, 1.0, 1.0]]
    w, _ = compute_token_weights(flat, torch.tensor([[0, 0, 1, 1, 1, 1]]), lam=1.0)
    assert w.tolist() == [[0.0, 0.0, 1.0, 1.0, 1.0, 1.0]]


def test_random_importance_is_seeded_and_masked():
    from ti_dpo.importance import compute_random_importance

    mask = torch.tensor([[1, 1, 1, 0]])
    a = compute_random_importance(mask, torch.Generator().manual_seed(3))
    b = compute_random_importance(mask, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a[0, 3] == 0 and (a[0, :3] > 0).all() and (a[0, :3] < 1).all()


def test_softmax_prior_hand_computed():
    # I = [1, 3] -> I_norm = [0.25, 0.75], n * I_norm = [0.5, 1.5], softmax = [1, e] / (1 + e)
    e = math.e
    w, _ = compute_token_weights(torch.tensor([[1.0, 3.0]]), torch.tensor([[1, 1]]), lam=0.5, prior="softmax",
                                 normalization="sum_one")
    expected = 0.5 * torch.tensor([[0.25, 0.75]]) + 0.5 * torch.tensor([[1.0, e]]) / (1 + e)
    torch.testing.assert_close(w, expected)
    with pytest.raises(ValueError, match="prior"):
        compute_token_weights(torch.ones(1, 2), torch.ones(1, 2), prior="laplace")
