import pytest
import torch
from longwriter_zero.advantage import compute_averaged_advantages, compute_gated_advantages


def test_hand_computed_2x3():
    # one group of 2, three rewards; each column's z-scores are (-1/sqrt2, +1/sqrt2) up to eps
    # length (0.2, 0.6): z = (-0.7071, 0.7071); writing (5, -3): z = (0.7071, -0.7071); format (1, 1): z = (0, 0)
    r = torch.tensor([[0.2, 5.0, 1.0], [0.6, -3.0, 1.0]])
    adv = compute_averaged_advantages(r, group_size=2, eps=0.0)
    assert adv.tolist() == pytest.approx([0.0, 0.0], abs=1e-6)  # (-0.7071 + 0.7071 + 0) / 3


def test_hand_computed_group_of_3():
    # length (0, 0.5, 1): mean 0.5, unbiased std 0.5 -> z (-1, 0, 1); format (1, 0, 0): mean 1/3, std 0.57735
    # -> z (1.1547, -0.57735, -0.57735); average over K=2
    r = torch.tensor([[0.0, 1.0], [0.5, 0.0], [1.0, 0.0]])
    adv = compute_averaged_advantages(r, group_size=3, eps=0.0)
    assert adv.tolist() == pytest.approx([(-1 + 1.1547005) / 2, (0 - 0.5773503) / 2, (1 - 0.5773503) / 2], abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_invariant_to_each_rewards_scale_and_offset(seed):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(12, 3, generator=g)  # 3 groups of 4
    scale = torch.rand(3, generator=g) * 100 + 0.01
    offset = torch.randn(3, generator=g) * 50
    base = compute_averaged_advantages(r, 4, eps=0.0)
    moved = compute_averaged_advantages(r * scale + offset, 4, eps=0.0)
    assert moved.tolist() == pytest.approx(base.tolist(), abs=1e-4)


def test_differs_from_sum_then_normalize():
    # raw-reward summing lets the large-scale reward dominate; averaging z-scores does not
    r = torch.tensor([[0.0, 100.0], [1.0, 0.0]])  # reward 1 prefers row 2, reward 2 (scale 100) prefers row 1
    assert compute_averaged_advantages(r, 2).abs().max() < 1e-3  # the two z-scores cancel
    summed = r.sum(1)
    assert (summed[0] > summed[1]).item()  # TRL's default would favour row 1


def test_none_rewards_and_unscorable_rows():
    nan = float("nan")
    # group of 4: length is None for every row ([0, 0] query) -> contributes 0; format z-scored alone, /K=2
    r = torch.tensor([[nan, 1.0], [nan, 0.0], [nan, 1.0], [nan, 0.0]])
    adv = compute_averaged_advantages(r, 4, eps=0.0)
    z = 0.5 / (1 / 3) ** 0.5  # (1 - 0.5) / unbiased std 0.57735
    assert adv.tolist() == pytest.approx([z / 2, -z / 2, z / 2, -z / 2], abs=1e-6)
    both = torch.tensor([[nan, nan], [1.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
    assert compute_averaged_advantages(both, 4)[0].item() == 0.0


def test_weights_and_errors():
    r = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    only_first = compute_averaged_advantages(r, 2, weights=torch.tensor([1.0, 0.0]))
    assert only_first[1] > 0 > only_first[0]
    with pytest.raises(ValueError, match="weights"):
        compute_averaged_advantages(r, 2, weights=torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError, match="multiple of group_size"):
        compute_averaged_advantages(torch.zeros(3, 2), 2)
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        compute_averaged_advantages(torch.zeros(4), 2)


class TestGated:
    def test_hand_computed(self):
        # one group of 4, one reward (0, 1, 2, 3): mean 1.5, unbiased std sqrt(5/3) = 1.2910
        # z = (-1.1619, -0.3873, 0.3873, 1.1619); the best-scored answer violates -> min(-1.1619, 0) - 1 = -2.1619
        r = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
        adv = compute_gated_advantages(r, 4, torch.tensor([True, True, True, False]), eps=0.0)
        assert adv.tolist() == pytest.approx([-1.161895, -0.387298, 0.387298, -2.161895], abs=1e-5)

    def test_floor_is_below_zero_even_when_every_compliant_is_positive(self):
        # group (10, 0 violating, 0 violating): compliant z = +1.1547 > 0 -> violators get 0 - margin
        r = torch.tensor([[10.0], [0.0], [0.0]])
        adv = compute_gated_advantages(r, 3, torch.tensor([True, False, False]), margin=0.25, eps=0.0)
        assert adv.tolist() == pytest.approx([1.154701, -0.25, -0.25], abs=1e-5)

    def test_all_compliant_or_all_violating_groups_are_unchanged(self):
        r = torch.tensor([[0.0], [1.0], [5.0], [2.0]])  # two groups of 2
        base = compute_averaged_advantages(r, 2)
        for mask in ([True, True, False, False], [False, False, True, True]):
            assert compute_gated_advantages(r, 2, torch.tensor(mask)).tolist() == pytest.approx(base.tolist())

    def test_wrong_mask_size(self):
        with pytest.raises(ValueError, match="compliant"):
            compute_gated_advantages(torch.zeros(4, 1), 2, torch.tensor([True, False, True, False, True, True]))
