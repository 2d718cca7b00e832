import math

import torch
from power_sampling.metropolis_hastings import (
    compute_acceptance,
    compute_acceptance_log_ratio,
    compute_expected_proposal_tokens,
    compute_suffix_sums,
    compute_token_multiplier,
)


def test_suffix_sums_hand_computed():
    v = torch.tensor([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])
    # row 0: positions 1..2 -> 2 + 4 = 6; row 1: positions 0..1 -> 8 + 16 = 24
    assert compute_suffix_sums(v, torch.tensor([1, 0]), torch.tensor([3, 2])).tolist() == [6.0, 24.0]
    # empty range -> 0
    assert compute_suffix_sums(v, torch.tensor([2, 3]), torch.tensor([2, 3])).tolist() == [0.0, 0.0]


def test_acceptance_log_ratio_hand_computed():
    # row 0: alpha=4: 4 * (-1.0 - -3.0) + (-2.0 - -0.5) = 8 - 1.5 = 6.5
    # row 1: 4 * (-5.0 - -1.0) + (-1.0 - -1.0) = -16
    lr = compute_acceptance_log_ratio(
        logp_new=torch.tensor([-1.0, -5.0]), logp_cur=torch.tensor([-3.0, -1.0]),
        logq_new=torch.tensor([-0.5, -1.0]), logq_cur=torch.tensor([-2.0, -1.0]), alpha=4.0)
    assert torch.allclose(lr, torch.tensor([6.5, -16.0]))


def test_acceptance_log_ratio_length_correction():
    # uniform index: forward picks m w.p. 1/|x|, reverse w.p. 1/|x'| -> + log|x| - log|x'| = log(4/2)
    base = dict(logp_new=torch.tensor([0.0]), logp_cur=torch.tensor([0.0]), logq_new=torch.tensor([0.0]),
                logq_cur=torch.tensor([0.0]), alpha=2.0)
    lr = compute_acceptance_log_ratio(**base, len_new=torch.tensor([2]), len_cur=torch.tensor([4]))
    assert math.isclose(float(lr), math.log(2.0), rel_tol=1e-6)


def test_acceptance_alpha_inf_is_greedy():
    lr = compute_acceptance_log_ratio(torch.tensor([-1.0, -3.0, -2.0]), torch.tensor([-2.0, -2.0, -2.0]),
                                      torch.tensor([-9.0, 0.0, 0.0]), torch.tensor([0.0, -9.0, 0.0]), math.inf)
    acc = compute_acceptance(lr, torch.Generator().manual_seed(0))
    assert acc.tolist() == [True, False, False]  # ties are rejected, proposal terms ignored


def test_acceptance_frequency_matches_ratio():
    g = torch.Generator().manual_seed(0)
    lr = torch.full((20000,), math.log(0.3))
    rate = compute_acceptance(lr, g).float().mean().item()
    assert abs(rate - 0.3) < 0.02
    assert compute_acceptance(torch.full((100,), 5.0), g).all()


def test_token_cost_formulas():
    # Eq. 12 approximation: 10 * 679 / (4 * 192) = 8.84
    assert round(compute_token_multiplier(10, 679, 192), 2) == 8.84
    # exact: 2 steps, T=4, B=2: L = 2, 4 -> 2 * (1.5 + 2.5) = 8
    assert compute_expected_proposal_tokens(2, 4, 2) == 8.0
    # remainder block: T=5, B=2: L = 2, 4, 5 -> 1 * (1.5 + 2.5 + 3) = 7
    assert compute_expected_proposal_tokens(1, 5, 2) == 7.0
