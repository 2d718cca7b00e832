import math

import pytest
import torch
from rlcore import pg


def test_grpo_advantages_hand_computed():
    # group (1, 0, 0.5): mean 0.5, unbiased std = sqrt((0.25+0.25+0)/2) = 0.5 -> A = (+-0.5)/(0.5+1e-4)
    adv = pg.compute_grpo_advantages(torch.tensor([1.0, 0.0, 0.5]), 3)
    expected = torch.tensor([0.5 / 0.5001, -0.5 / 0.5001, 0.0])
    torch.testing.assert_close(adv, expected)


def test_grpo_equal_group_is_zero_not_nan():
    adv = pg.compute_grpo_advantages(torch.tensor([2.0, 2.0, 2.0, 1.0, 3.0, 2.0]), 3)
    assert torch.isfinite(adv).all()
    assert adv[:3].tolist() == [0.0, 0.0, 0.0]
    # second group: mean 2, std 1 -> (-1/1.0001, 1/1.0001, 0)
    torch.testing.assert_close(adv[3:], torch.tensor([-1 / 1.0001, 1 / 1.0001, 0.0]))


def test_grpo_none_reward_excluded_and_zero():
    # None -> NaN: group stats over (1, 3): mean 2, std sqrt(2) -> A = (-1, 1)/(1.41421+1e-4), NaN row -> 0
    adv = pg.compute_grpo_advantages(torch.tensor([1.0, float("nan"), 3.0]), 3)
    s = math.sqrt(2) + 1e-4
    torch.testing.assert_close(adv, torch.tensor([-1 / s, 0.0, 1 / s]))


def test_dr_grpo_and_batch_scaled():
    r = torch.tensor([1.0, 0.0, 3.0, 1.0])
    assert pg.compute_dr_grpo_advantages(r, 2).tolist() == [0.5, -0.5, 1.0, -1.0]
    # batch std of (1,0,3,1): mean 1.25, var = (0.0625+1.5625+3.0625+0.0625)/3 = 1.5833 -> std 1.2583
    std = math.sqrt(4.75 / 3)
    torch.testing.assert_close(
        pg.compute_batch_scaled_advantages(r, 2), torch.tensor([0.5, -0.5, 1.0, -1.0]) / (std + 1e-4)
    )


@pytest.mark.parametrize("bad,gs,msg", [(torch.tensor([]), 2, "empty"), (torch.ones(3), 2, "multiple"),
                                         (torch.ones(2, 2), 2, "1-D"), (torch.ones(2), 0, "group_size")])
def test_advantage_bad_input(bad, gs, msg):
    with pytest.raises(ValueError, match=msg):
        pg.compute_grpo_advantages(bad, gs)


def test_per_reward_normalized_is_scale_and_offset_invariant():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(8, 3, generator=g)
    base = pg.compute_per_reward_normalized_advantages(r, 4, eps=0.0)
    shifted = r * torch.tensor([10.0, 0.1, 3.0]) + torch.tensor([-5.0, 7.0, 0.0])
    torch.testing.assert_close(pg.compute_per_reward_normalized_advantages(shifted, 4, eps=0.0), base)
    # equals the mean of the per-column z-scores
    z = torch.stack([pg.compute_grpo_advantages(r[:, k].contiguous(), 4, eps=0.0) for k in range(3)], 1)
    torch.testing.assert_close(base, z.mean(1))


def test_clipped_surrogate_hand_computed():
    # ratios e^{0.5}=1.6487 (A=+1: clipped at 1.2 -> -1.2), e^{-0.5}=0.6065 (A=-1: min(-0.6065, -0.8) -> 0.8)
    lp = torch.tensor([[0.5, -0.5, 0.0]])
    loss, m = pg.compute_clipped_surrogate(lp, torch.zeros(1, 3), torch.tensor([[1.0, -1.0, 2.0]]), 0.2, 0.2)
    torch.testing.assert_close(loss, torch.tensor([[-1.2, 0.8, -2.0]]))
    assert m["clip_high"].tolist() == [[True, False, False]] and m["clip_low"].tolist() == [[False, True, False]]
    # clip-higher (0.28): first token now clipped at 1.28
    loss, _ = pg.compute_clipped_surrogate(lp, torch.zeros(1, 3), torch.tensor([1.0]), 0.2, 0.28)
    torch.testing.assert_close(loss[0, 0], torch.tensor(-1.28))


def test_k3_kl():
    # delta = 1: e - 2 ; delta = 0: 0 ; always >= 0
    kl = pg.compute_k3_kl(torch.tensor([0.0, 0.3, 2.0]), torch.tensor([1.0, 0.3, -1.0]))
    torch.testing.assert_close(kl, torch.tensor([math.e - 2, 0.0, math.exp(-3) + 3 - 1]))


def test_aggregate_loss_modes():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    # seq-mean-token-mean: (6/3 + 4/1)/2 = 3 ; token-mean: 10/4 = 2.5 ; dr_grpo: 10/(2*3) ; with max_len 5: 10/10
    assert pg.aggregate_loss(loss, mask, "seq-mean-token-mean").item() == 3.0
    assert pg.aggregate_loss(loss, mask, "token-mean").item() == 2.5
    assert pg.aggregate_loss(loss, mask, "seq-mean-token-sum-norm").item() == pytest.approx(10 / 6)
    assert pg.aggregate_loss(loss, mask, "seq-mean-token-sum-norm", max_len=5).item() == 1.0
    with pytest.raises(ValueError, match="choose from"):
        pg.aggregate_loss(loss, mask, "nope")


def test_registry_rejects_rebinding():
    with pytest.raises(ValueError, match="already registered"):
        pg.register_loss_agg("token-mean")(lambda loss, mask, max_len=None: loss.sum())
