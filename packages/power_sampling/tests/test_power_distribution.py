import math

import torch
from power_sampling.power_distribution import (
    compute_power_distribution,
    compute_total_variation,
    enumerate_sequences,
)
from rlcore.testing import TableLM


def test_power_distribution_example_1():
    # paper Example 1 (alpha=2): p(ab)=.4, p(ba)=.25, p(bb)=.25 -> p^2 = .16, .0625, .0625 (sum .285)
    pi = compute_power_distribution(torch.tensor([0.4, 0.25, 0.25]).log(), 2.0)
    assert torch.allclose(pi, torch.tensor([0.16, 0.0625, 0.0625]) / 0.285)
    # power prefers first token a (0.16 / 0.285 = 0.561) although low temperature prefers b:
    # low-temp weight(a) = 0.4^2 = 0.16 < weight(b) = 0.5^2 = 0.25
    assert pi[0] > 0.5


def test_power_distribution_alpha_inf_is_argmax():
    pi = compute_power_distribution(torch.tensor([-1.0, -0.5, -0.5]), math.inf)
    assert pi.tolist() == [0.0, 0.5, 0.5]


def test_total_variation_hand_computed():
    # |0.5-0.25| + |0.5-0.25| + |0-0.5| = 1.0 -> TV 0.5
    assert compute_total_variation({"a": 0.5, "b": 0.5}, {"a": 0.25, "b": 0.25, "c": 0.5}) == 0.5


def test_enumerate_sequences_normalised_and_exact():
    lm = TableLM(vocab_size=3, max_len=8, seed=0, eos_token_id=2)
    en = enumerate_sequences(lm, [0], 3, eos_token_id=2, temperature=0.5)
    assert all(s[-1] == 2 or len(s) == 3 for s in en) and all(2 not in s[:-1] for s in en)
    assert math.isclose(sum(math.exp(a) for a, _ in en.values()), 1.0, rel_tol=1e-5)
    assert math.isclose(sum(math.exp(b) for _, b in en.values()), 1.0, rel_tol=1e-5)
    seq = next(iter(en))
    assert math.isclose(en[seq][0], lm.exact_logprob([0], list(seq)), rel_tol=1e-5)
