import math

import pytest
import torch
from rlcore.pg import compute_grpo_advantages
from rlcore.rewards import combine_rewards


def test_combine_weighted_nansum_like_trl():
    # two functions, three completions: 1*1 + 0.5*0.5 = 1.25; 0.5*2.0 = 1.0 (None skipped); all None -> nan
    out = combine_rewards([[1.0, None, None], [0.5, 2.0, None]], weights=[1.0, 0.5])
    assert out[:2] == [1.25, 1.0] and math.isnan(out[2])
    assert combine_rewards([[1.0, 2.0], [3.0, 4.0]]) == [4.0, 6.0]  # default weights 1.0
    assert combine_rewards([[float("nan"), 1.0]])[1] == 1.0 and math.isnan(combine_rewards([[float("nan")]])[0])
    # the all-None row takes no part in the group statistics and gets advantage 0
    adv = compute_grpo_advantages(torch.tensor(combine_rewards([[1.0, 3.0, None]])), 3)
    assert adv[2].item() == 0.0 and adv[0].item() < 0 < adv[1].item()


@pytest.mark.parametrize("values,weights,msg", [
    ([[1.0], [1.0, 2.0]], None, r"reward function\(s\) \[1\] returned \[2\] values, expected 1"),
    ([[1.0]], [1.0, 2.0], "2 reward weights for 1 reward functions"),
    ([[1.0]], [float("inf")], "weights must be finite"),
    ([[float("inf")]], None, "non-finite value inf at index 0"),
    ([], None, "at least one"),
])
def test_combine_errors(values, weights, msg):
    with pytest.raises(ValueError, match=msg):
        combine_rewards(values, weights)
