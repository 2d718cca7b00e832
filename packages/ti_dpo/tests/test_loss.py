import math

import torch
import torch.nn.functional as F
from ti_dpo.loss import (
    compute_sequential_kl,
    compute_ti_dpo_loss,
    compute_triplet_loss,
    compute_weighted_margin,
    pack_left,
)


def test_weighted_margin_hand_computed():
    # row 0: 2*1 + 0.5*(-2) = 1 (third token masked); row 1: 1*3 + 3*1 = 6
    r = torch.tensor([[1.0, -2.0, 5.0], [3.0, 1.0, 0.0]])
    w = torch.tensor([[2.0, 0.5, 9.0], [1.0, 3.0, 7.0]])
    m = torch.tensor([[1, 1, 0], [1, 1, 0]])
    torch.testing.assert_close(compute_weighted_margin(r, w, m), torch.tensor([1.0, 6.0]))


def test_weighted_margin_weights_are_constants():
    r = torch.tensor([[1.0, 2.0]], requires_grad=True)
    w = torch.tensor([[3.0, 4.0]], requires_grad=True)
    compute_weighted_margin(r, w, torch.ones(1, 2)).sum().backward()
    assert w.grad is None
    torch.testing.assert_close(r.grad, torch.tensor([[3.0, 4.0]]))


def test_ti_dpo_loss_hand_computed_and_dpo_reduction():
    # alpha = 0: z = 2 - (-1) = 3, beta z = 0.3, loss = log(1 + e^-0.3) = 0.554355
    loss, z = compute_ti_dpo_loss(torch.tensor([2.0]), torch.tensor([-1.0]), beta=0.1)
    assert z.item() == 3.0 and math.isclose(loss.item(), math.log1p(math.exp(-0.3)), rel_tol=1e-6)
    # alpha = 0.5, K_w = 1, K_l = 3: z = 3 - 0.5 * (3 - 1) = 2, loss = log(1 + e^-0.2)
    loss, z = compute_ti_dpo_loss(torch.tensor([2.0]), torch.tensor([-1.0]), beta=0.1, alpha_kl=0.5,
                                  chosen_kl=torch.tensor([1.0]), rejected_kl=torch.tensor([3.0]))
    assert z.item() == 2.0 and math.isclose(loss.item(), math.log1p(math.exp(-0.2)), rel_tol=1e-6)


def test_ti_dpo_loss_stops_gradient_through_chosen_kl():
    kw, kl = torch.tensor([1.0], requires_grad=True), torch.tensor([3.0], requires_grad=True)
    loss, _ = compute_ti_dpo_loss(torch.tensor([0.0]), torch.tensor([0.0]), 1.0, 0.5, kw, kl)
    loss.sum().backward()
    assert kw.grad is None
    # d/dK_l of -logsigmoid(-0.5 (K_l - K_w)) = 0.5 * sigmoid(0.5 * (3 - 1)) = 0.5 * sigmoid(1)
    assert math.isclose(kl.grad.item(), 0.5 / (1 + math.exp(-1.0)), rel_tol=1e-6)


def test_sequential_kl_hand_computed():
    # position 0: ref = [0.5, 0.5], pol = [0.25, 0.75]: KL = 0.5 ln 2 + 0.5 ln(2/3); position 1 masked out
    ref = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1]]]))
    pol = torch.log(torch.tensor([[[0.25, 0.75], [0.1, 0.9]]]))
    k = compute_sequential_kl(ref, pol, torch.tensor([[1, 0]]))
    assert math.isclose(k.item(), 0.5 * math.log(2) + 0.5 * math.log(2 / 3), rel_tol=1e-6)


def test_pack_left_keeps_order():
    v = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    m = torch.tensor([[0, 1, 0, 1], [1, 1, 1, 0]])
    p, pm = pack_left(v, m)
    torch.testing.assert_close(p, torch.tensor([[2.0, 4.0, 0.0], [5.0, 6.0, 7.0]]))
    assert pm.tolist() == [[1, 1, 0], [1, 1, 1]]


def test_triplet_hand_computed_mask_intersection():
    # anchor d = [1, 2, 3] (3 tokens), chosen b = [1, 0] (2), rejected c = [0, 0, 0, 9] (4)
    # D(y, y_w) over 2 shared positions: (1-1)^2 + (2-0)^2 = 4
    # D(y, y_l) over 3 shared positions: 1 + 4 + 9 = 14 -> max(0, 4 - 14 + 1) = 0
    # with margin 12: 4 - 14 + 12 = 2
    d, dm = torch.tensor([[1.0, 2.0, 3.0]]), torch.ones(1, 3)
    b, bm = torch.tensor([[1.0, 0.0]]), torch.ones(1, 2)
    c, cm = torch.tensor([[0.0, 0.0, 0.0, 9.0]]), torch.ones(1, 4)
    loss, dist = compute_triplet_loss(d, dm, b, bm, c, cm, margin=1.0)
    assert dist["d_pos"].item() == 4.0 and dist["d_neg"].item() == 14.0 and loss.item() == 0.0
    loss, _ = compute_triplet_loss(d, dm, b, bm, c, cm, margin=12.0)
    assert loss.item() == 2.0


def test_triplet_gradients_flow_to_all_three():
    d = torch.tensor([[1.0, 2.0]], requires_grad=True)
    b = torch.tensor([[0.0, 0.0]], requires_grad=True)
    c = torch.tensor([[1.0, 2.5]], requires_grad=True)
    m = torch.ones(1, 2)
    loss, _ = compute_triplet_loss(d, m, b, m, c, m, margin=0.0)
    loss.sum().backward()
    # L = (d-b)^2 - (c-d)^2 summed: dL/db = -2(d-b) = [-2, -4]; dL/dc = -2(c-d) = [0, -1]; dL/dd = -(dL/db + dL/dc)
    torch.testing.assert_close(b.grad, torch.tensor([[-2.0, -4.0]]))
    torch.testing.assert_close(c.grad, torch.tensor([[0.0, -1.0]]))
    torch.testing.assert_close(d.grad, torch.tensor([[2.0, 5.0]]))


def test_uniform_mean_one_weights_reduce_to_dpo_sigmoid():
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        r = torch.randn(4, 6, generator=g)
        mask = (torch.rand(4, 6, generator=g) > 0.3).long()
        m = compute_weighted_margin(r, mask.float(), mask)
        cm, rm = m.chunk(2)
        loss, _ = compute_ti_dpo_loss(cm, rm, beta=0.1)
        s = (r * mask).sum(dim=1)
        torch.testing.assert_close(loss, -F.logsigmoid(0.1 * (s[:2] - s[2:])))
