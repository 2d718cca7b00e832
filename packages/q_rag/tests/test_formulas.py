import itertools

import numpy as np
import pytest
import torch
from q_rag.lambda_return import compute_lambda_returns
from q_rag.positions import compute_relative_positions, get_position_processor, position_runs
from q_rag.reward import compute_terminal_reward
from q_rag.rope import compute_rope
from q_rag.soft_q import compute_q_loss, compute_soft_value, compute_twin_q, sample_top_k_action


class TestReward:
    def test_three_facts_in_three_steps(self):
        # 0.5 + 0.5 * 3 / (3 + 1e-5)
        assert compute_terminal_reward([5, 2, 9], [2, 5, 9]) == pytest.approx(0.5 + 0.5 * 3 / 3.00001)

    def test_found_by_step_six(self):
        # QA3 found by step 6 -> 0.5 + 0.5 * 3/6 = 0.75
        assert compute_terminal_reward([0, 1, 2, 3, 4, 5], [1, 3, 5]) == pytest.approx(0.75, abs=1e-5)

    def test_incomplete_and_one_time(self):
        assert compute_terminal_reward([1, 2], [1, 3]) == 0.0
        assert compute_terminal_reward([1, 3, 4], [1, 3], already_rewarded=True) == 0.0

    def test_no_penalty(self):
        assert compute_terminal_reward([7, 1, 3], [1, 3], penalize_extra_steps=False) == 1.0

    def test_index_not_text(self):
        # identical sentence elsewhere does not count: only chunk indices matter
        assert compute_terminal_reward([4], [2]) == 0.0


class TestRelativePositions:
    def test_official_segment_rule(self):
        # issue 16: a retrieved index opens the next segment. N=10, {2,6}: [0,2) -> linspace(0,18,2) = 0,18;
        # [2,6) -> 20 + linspace(0,18,4) = 20,26,32,38; [6,10) -> 40 + (0,6,12,18)
        assert compute_relative_positions(10, [6, 2]).tolist() == [0, 18, 20, 26, 32, 38, 40, 46, 52, 58]

    def test_empty_segments_still_advance(self):
        # cut at 0: segment 0 is empty, so everything starts at 20; adjacent cuts {2,3}: [2,3) alone -> 40+0
        assert compute_relative_positions(4, [0]).tolist() == [20, 26, 32, 38]
        assert compute_relative_positions(5, [2, 3]).tolist() == [0, 18, 20, 40, 58]
        # step size 10 -> max_value 9
        assert compute_relative_positions(4, [2], step_size=10).tolist() == [0, 9, 10, 19]

    def test_truncation_and_empty(self):
        # linspace(0,18,4) = 0,6,12,18 ; linspace(0,18,5)=0,4.5,9,13.5,18 -> int -> 0,4,9,13,18
        assert compute_relative_positions(5, []).tolist() == [0, 4, 9, 13, 18]
        assert compute_relative_positions(4, []).tolist() == [0, 6, 12, 18]

    def test_few_distinct_values_and_runs(self):
        n, ret = 10_000, [17, 4000, 9000]
        pos = compute_relative_positions(n, ret)
        avail = np.ones(n, bool)
        avail[ret] = False
        runs = position_runs(pos, avail)
        assert len(runs) <= 19 * (len(ret) + 1)
        rebuilt = np.full(n, -1)
        for s, e, p in runs:
            assert (pos[s:e] == p).all()
            rebuilt[s:e] = p
        assert (rebuilt[avail] == pos[avail]).all() and (rebuilt[~avail] == -1).all()

    def test_registry(self):
        assert get_position_processor("none")(5, []) is None
        assert get_position_processor("absolute")(3, [1]).tolist() == [0, 1, 2]
        with pytest.raises(ValueError, match="valid"):
            get_position_processor("sinusoidal")

    def test_out_of_range(self):
        with pytest.raises(ValueError, match="out of range"):
            compute_relative_positions(3, [3])


class TestRope:
    def test_hand_computed_first_pair(self):
        # d=8 -> halves of 4 -> freqs (1, 10000^-0.5=0.01); pair 0 of each half rotates by p rad
        x = torch.tensor([[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
        y = compute_rope(x, torch.tensor([1]))
        c, s = np.cos(1.0), np.sin(1.0)
        assert y[0, :2].tolist() == pytest.approx([c, s], abs=1e-6)  # (1,0) -> (cos, sin)
        assert y[0, 4:6].tolist() == pytest.approx([-s, c], abs=1e-6)  # (0,1) -> (-sin, cos)

    def test_orthogonal_and_inverse(self):
        g = torch.Generator().manual_seed(0)
        x, s = torch.randn(5, 16, generator=g), torch.randn(16, generator=g)
        p = torch.tensor([0, 3, 17, 40, 999])
        y = compute_rope(x, p)
        assert torch.allclose(y.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
        assert torch.allclose(compute_rope(y, -p), x, atol=1e-5)
        # <s, R(p) x> == <R(-p) s, x>: the identity the exact index relies on
        lhs = y @ s
        rhs = (compute_rope(s.expand(5, 16), -p) * x).sum(-1)
        assert torch.allclose(lhs, rhs, atol=1e-5)

    def test_bad_dim(self):
        with pytest.raises(ValueError, match="divisible by 4"):
            compute_rope(torch.zeros(1, 6), torch.tensor([0]))


class TestSoftQ:
    def test_twin_q_hand(self):
        s = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
        a = torch.tensor([[[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]]])  # (1, 2, 4)
        q1, q2 = compute_twin_q(s, a)
        assert q1.tolist() == [[3.0, 2.0]] and q2.tolist() == [[3.0, 4.0]]

    def test_soft_value_hand(self):
        # alpha=0.5, top_k=2 over available {0,1,2}: q1 top2 = 1.0, 0.5 -> 0.5*log(e^2 + e^1)
        q1 = torch.tensor([[1.0, 0.5, 0.0, 9.0]])
        q2 = torch.tensor([[0.0, 0.0, 0.0, 9.0]])
        m = torch.tensor([[True, True, True, False]])
        v = compute_soft_value(q1, q2, m, alpha=0.5, top_k=2)
        want = 0.5 * np.log(np.e**2 + np.e**1) + 0.5 * np.log(2.0)
        assert float(v[0]) == pytest.approx(want, rel=1e-6)

    @pytest.mark.parametrize("seed", [0, 1, 2])
    def test_soft_value_brute_force(self, seed):
        g = np.random.default_rng(seed)
        q1, q2 = g.normal(size=(3, 9)), g.normal(size=(3, 9))
        m = g.random((3, 9)) > 0.3
        m[:, 0] = True
        alpha, k = 0.3, 5
        want = []
        for b in range(3):
            tot = 0.0
            for q in (q1[b], q2[b]):
                top = sorted(q[m[b]], reverse=True)[:k]
                tot += alpha * np.log(sum(np.exp(t / alpha) for t in top))
            want.append(tot)
        got = compute_soft_value(torch.tensor(q1), torch.tensor(q2), torch.tensor(m), alpha, k)
        assert got.tolist() == pytest.approx(want, rel=1e-9)

    def test_soft_value_bad_alpha(self):
        with pytest.raises(ValueError, match="alpha"):
            compute_soft_value(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 2, dtype=torch.bool), 0.0)

    def test_sampling_top_k_only_available(self):
        q = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0, 10.0]]).expand(2000, -1)
        m = torch.ones_like(q, dtype=torch.bool)
        m[:, 6] = False
        a = sample_top_k_action(q, m, alpha=1.0, top_k=2, generator=torch.Generator().manual_seed(0))
        assert set(a.tolist()) == {0, 1}
        frac = (a == 0).float().mean().item()  # softmax([0,-1]) -> e/(e+1) = 0.731
        assert frac == pytest.approx(np.e / (np.e + 1), abs=0.04)

    def test_q_loss_hand(self):
        # 0.5*((2*0.25-1)^2) + 0.5*((2*0.75-1)^2) = 0.5*0.25 + 0.5*0.25 = 0.25
        assert compute_q_loss(torch.tensor([0.25]), torch.tensor([0.75]), torch.tensor([1.0])).item() == 0.25


def _lambda_return_brute(r, d, v, gamma, lam):
    """Definition: G^lam_t = (1-lam) sum_{n=1}^{H-1} lam^{n-1} G^(n)_t + lam^{H-1} G^(H)_t over the horizon H = T-t,
    with n-step returns G^(n)_t = sum_{i<n} gamma^i r_{t+i} + gamma^n V(s_{t+n}), cut at the first done."""
    T = len(r)
    out = np.zeros(T)
    for t in range(T):
        H = T - t

        def nstep(n, t=t):
            g, disc = 0.0, 1.0
            for i in range(n):
                g += disc * r[t + i]
                if d[t + i]:
                    return g
                disc *= gamma
            return g + disc * v[t + n - 1]  # v[j] = V(s_{j+1})

        out[t] = sum((1 - lam) * lam ** (n - 1) * nstep(n) for n in range(1, H)) + lam ** (H - 1) * nstep(H)
    return out


class TestLambdaReturn:
    def test_hand(self):
        # T=2, no done, gamma=0.5, lam=0.5: G1 = 1 + 0.5*4 = 3; G0 = 0 + 0.5*(0.5*2 + 0.5*3) = 1.25
        r = torch.tensor([[0.0], [1.0]])
        d = torch.zeros(2, 1)
        v = torch.tensor([[2.0], [4.0]])
        assert compute_lambda_returns(r, d, v, 0.5, 0.5).flatten().tolist() == [1.25, 3.0]

    @pytest.mark.parametrize("seed,lam", list(itertools.product(range(4), [0.0, 0.65, 1.0])))
    def test_against_brute_force(self, seed, lam):
        g = np.random.default_rng(seed)
        T, E = 9, 3
        r, v = g.random((T, E)), g.normal(size=(T, E))
        d = g.random((T, E)) < 0.25
        got = compute_lambda_returns(torch.tensor(r), torch.tensor(d), torch.tensor(v), 0.9, lam).numpy()
        for e in range(E):
            assert got[:, e] == pytest.approx(_lambda_return_brute(r[:, e], d[:, e], v[:, e], 0.9, lam), rel=1e-9)

    def test_shape_error(self):
        with pytest.raises(ValueError, match="shape"):
            compute_lambda_returns(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 1), 0.9, 0.5)
