"""verl conventions beside TRL's defaults: one hand-computed case each."""

import math

import pytest
import torch
from rlcore import pg


def test_size_one_group_trl_zero_verl_mean0_std1():
    r = torch.tensor([0.5, 2.0, -1.0])
    assert pg.compute_grpo_advantages(r, 1).tolist() == [0.0, 0.0, 0.0]  # TRL: no signal
    # verl: mean 0, std 1 -> A = r / (1 + 1e-6)
    torch.testing.assert_close(pg.compute_grpo_advantages(r, 1, pg.VERL_STD_EPS, size_one="verl"),
                               torch.tensor([0.5, 2.0, -1.0]) / (1 + 1e-6))
    assert pg.compute_dr_grpo_advantages(r, 1, size_one="verl").tolist() == [0.5, 2.0, -1.0]
    assert pg.compute_dr_grpo_advantages(r, 1).tolist() == [0.0, 0.0, 0.0]
    # groups of 2 are unaffected by the option: (1, 3): mean 2, std sqrt(2)
    a = pg.compute_grpo_advantages(torch.tensor([1.0, 3.0]), 2, pg.VERL_STD_EPS, size_one="verl")
    torch.testing.assert_close(a, torch.tensor([-1.0, 1.0]) / (math.sqrt(2) + 1e-6))
    with pytest.raises(ValueError, match="unknown size_one convention 'openrlhf'"):
        pg.compute_grpo_advantages(r, 1, size_one="openrlhf")


def test_dual_clip_caps_negative_advantage_loss():
    # ratio = e^2 = 7.389 on A = -1: PPO loss = max(7.389, 1.2) = 7.389; dual clip c=3 -> min(7.389, 3) = 3
    # ratio = e^0.1 = 1.105 on A = -1: PPO loss 1.105 < 3: unchanged; A = +2 at ratio e^2: clipped to 1.2*2 -> -2.4
    lp = torch.tensor([[2.0, 0.1, 2.0]])
    old = torch.zeros(1, 3)
    adv = torch.tensor([[-1.0, -1.0, 2.0]])
    plain, _ = pg.compute_clipped_surrogate(lp, old, adv)
    torch.testing.assert_close(plain, torch.tensor([[math.e**2, math.exp(0.1), -2.4]]))
    dual, m = pg.compute_clipped_surrogate(lp, old, adv, clip_ratio_c=pg.VERL_CLIP_RATIO_C)
    torch.testing.assert_close(dual, torch.tensor([[3.0, math.exp(0.1), -2.4]]))
    assert m["clip_dual"].tolist() == [[True, False, False]]
    with pytest.raises(ValueError, match="clip_ratio_c must be > 1"):
        pg.compute_clipped_surrogate(lp, old, adv, clip_ratio_c=1.0)


def test_log_ratio_clamp():
    # log-ratio 30 clamped to 20: loss on A=-1 is e^20 (unclamped: e^30)
    loss, _ = pg.compute_clipped_surrogate(torch.tensor([[30.0]]), torch.zeros(1, 1), torch.tensor([-1.0]),
                                           max_log_ratio=pg.VERL_MAX_LOG_RATIO)
    torch.testing.assert_close(loss, torch.tensor([[math.exp(20.0)]]))


def test_k3_clamped_like_verl_low_var_kl():
    # delta = ref - logp = 5: k3 = e^5 - 5 - 1 = 142.41 (TRL) -> 10 (verl); delta = 1: e - 2 = 0.7183 both
    lp = torch.tensor([0.0, 0.0])
    ref = torch.tensor([5.0, 1.0])
    torch.testing.assert_close(pg.compute_k3_kl(lp, ref), torch.tensor([math.exp(5) - 6, math.e - 2]))
    torch.testing.assert_close(pg.compute_k3_kl(lp, ref, clamp=pg.VERL_K3_CLAMP), torch.tensor([10.0, math.e - 2]))
    # delta = 30 is first clamped to 20: e^20 - 21 > 10 -> 10 still; delta = -30 -> -20: e^-20 + 19 = 19 -> 10
    assert pg.compute_k3_kl(torch.tensor([0.0, 30.0]), torch.tensor([30.0, 0.0]), clamp=10.0).tolist() == [10.0, 10.0]


def test_seq_mean_token_sum():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    # sums per sequence: 3 and 4 -> mean 3.5 (token-mean would be 7/3, seq-mean-token-mean (1.5 + 4)/2 = 2.75)
    assert pg.aggregate_loss(loss, mask, "seq-mean-token-sum").item() == 3.5
    assert pg.aggregate_loss(loss, mask, "seq-mean-token-mean").item() == 2.75
    assert "seq-mean-token-sum" in pg.LOSS_AGG_REGISTRY


def test_global_token_count_makes_micro_batches_exact():
    # one batch of 3 sequences with 2 + 1 + 3 = 6 active tokens; the token mean is 21/6 = 3.5
    loss = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, 0.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1]])
    full = pg.aggregate_loss(loss, mask, "token-mean")
    assert full.item() == 3.5
    # micro-batches [0:1] (2 tokens) and [1:3] (4 tokens): local token-means 1.5 and 18/4 average to 3.0 (biased)
    local = [pg.aggregate_loss(loss[a:b], mask[a:b], "token-mean") for a, b in ((0, 1), (1, 3))]
    assert (sum(local) / 2).item() == pytest.approx((1.5 + 18 / 4) / 2)  # 3.0, biased
    glob = [pg.aggregate_loss(loss[a:b], mask[a:b], "token-mean", num_tokens=6) for a, b in ((0, 1), (1, 3))]
    assert sum(glob).item() == pytest.approx(3.5)  # exact
    # two DDP ranks (gradients averaged): each rank's loss scaled by dp_size, the mean of the two is exact
    ranks = [pg.aggregate_loss(loss[a:b], mask[a:b], "token-mean", num_tokens=6, dp_size=2) for a, b in ((0, 1), (1, 3))]
    assert (sum(ranks) / 2).item() == pytest.approx(3.5)
    with pytest.raises(ValueError, match="token-mean mode only"):
        pg.aggregate_loss(loss, mask, "seq-mean-token-mean", num_tokens=6)
    with pytest.raises(ValueError, match="num_tokens must be > 0"):
        pg.aggregate_loss(loss, mask, num_tokens=0)
