import numpy as np
import pytest
import torch
from p_genrm.evaluation_chain import HistoryPair
from p_genrm.prototypes import (
    Member,
    PrototypeIndex,
    RefinementBatch,
    compute_attentive_user_vector,
    compute_kmeans_prototypes,
    compute_prototype_loss,
    refine_prototypes,
)


def clustered(n_per=30, d=8, k=4, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    X = np.concatenate([c + noise * rng.normal(size=(n_per, d)) for c in centers])
    return X.astype(np.float32), np.repeat(np.arange(k), n_per), centers


def test_kmeans_recovers_synthetic_clusters():
    X, labels, centers = clustered()
    A, assign = compute_kmeans_prototypes(X, 4, seed=0)
    assert np.allclose(np.linalg.norm(A, axis=1), 1, atol=1e-5)
    for c in range(4):  # every true cluster maps to exactly one prototype
        assert len(set(assign[labels == c])) == 1
    assert len(set(assign)) == 4
    assert (np.max(centers @ A.T, axis=1) > 0.98).all()


def test_kmeans_bad_k():
    X, _, _ = clustered(n_per=2)
    with pytest.raises(ValueError, match="num_prototypes"):
        compute_kmeans_prototypes(X, 9)


def linear(weight):
    lin = torch.nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(weight, dtype=torch.float32))
    return lin


def test_attentive_user_vector_hand_computed():
    W_h = linear([[1, 0, 0, 0], [0, 0, 0, 1]])  # o = tanh(h_x, delta_y)
    h = torch.tensor([[[0.5, 0.0], [0.0, 0.0]]])
    r_pos = torch.tensor([[[0.0, 0.2], [0.0, 0.0]]])
    r_neg = torch.tensor([[[0.0, 0.0], [0.0, 0.3]]])
    a, q = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    s = compute_attentive_user_vector(a, q, h, r_pos, r_neg, torch.tensor([[True, True]]), W_h, rho=0.5)
    # o1 = (tanh .5, tanh .2) = (.46212, .19738); o2 = (0, tanh -.3) = (0, -.29131)
    # logits: (.46212 + .5*.19738)/sqrt2 = .39655 ; (.5*-.29131)/sqrt2 = -.10299 -> beta = (.62235, .37765)
    # s = .62235*o1 + .37765*o2 = (.28760, .01282)
    assert s.tolist()[0] == pytest.approx([0.28760, 0.012823], abs=1e-4)
    s0 = compute_attentive_user_vector(a, q, h, r_pos, r_neg, torch.tensor([[False, False]]), W_h, rho=0.5)
    assert s0.tolist() == [[0.0, 0.0]]  # no history -> s_q = 0
    masked = compute_attentive_user_vector(a, q, h, r_pos, r_neg, torch.tensor([[True, False]]), W_h, rho=0.5)
    assert masked.tolist()[0] == pytest.approx([0.46212, 0.19738], abs=1e-4)  # all weight on the real event


def test_prototype_loss_hand_computed():
    eye = linear([[1, 0], [0, 1]])
    a, q, s = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 0.0]])
    r_pos, r_neg = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 0.0]])
    loss, margin = compute_prototype_loss(a, q, s, r_pos, r_neg, eye, eye)
    # z = a + q + 0 = (1, 1); y+ = 2, y- = 0 -> L = log(1 + e^-2) = 0.126928
    assert margin.tolist() == [2.0] and loss.item() == pytest.approx(0.126928, abs=1e-5)


def test_refinement_lowers_loss_and_keeps_unit_prototypes():
    rng = np.random.default_rng(0)
    d, n, H = 6, 64, 3
    w = rng.normal(size=(2, d))
    assign = np.repeat([0, 1], n // 2)
    x1, x2 = rng.normal(size=(2, n, d))
    pref = np.einsum("nd,nd->n", w[assign], x1 - x2) > 0
    r_pos, r_neg = np.where(pref[:, None], x1, x2), np.where(pref[:, None], x2, x1)
    t = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    data = RefinementBatch(t(rng.normal(size=(n, d))), t(r_pos), t(r_neg), t(rng.normal(size=(n, H, d))),
                           t(rng.normal(size=(n, H, d))), t(rng.normal(size=(n, H, d))),
                           torch.tensor(rng.random((n, H)) < 0.7))
    A0 = rng.normal(size=(2, d))
    A, m = refine_prototypes(A0, assign, data, epochs=5, lr=1e-2)
    assert m["loss_after"] < m["loss_before"] and m["steps"] == 5 * 4
    assert np.allclose(np.linalg.norm(A, axis=1), 1, atol=1e-5)


def make_members(n, users):
    return [Member(users[i % len(users)], f"r{i}", (HistoryPair("u", f"c{i}", f"r{i}"),)) for i in range(n)]


def test_index_search_exclusion_and_save_load(tmp_path):
    X, labels, _ = clustered(n_per=10)
    A, _ = compute_kmeans_prototypes(X, 4, seed=0)
    idx = PrototypeIndex(A, X, make_members(len(X), ["alice", "bob", "carol"]), meta={"note": "t"})
    (nb,) = idx.search(X[:1], 3)
    assert nb.prototype == idx.assign[0] and len(nb.members) == 3
    assert nb.similarities == sorted(nb.similarities, reverse=True)
    assert all(idx.assign[int(m.row_id[1:])] == nb.prototype for m in nb.members)
    (nb_ex,) = idx.search(X[:1], 3, exclude_users=["alice"])
    assert len(nb_ex.members) == 3 and all(m.user_id != "alice" for m in nb_ex.members)
    (big,) = idx.search(X[:1], 50)
    assert big.short and len(big.members) == len(idx.members_of(nb.prototype))
    idx.save(tmp_path / "p")
    back = PrototypeIndex.load(tmp_path / "p")
    assert np.allclose(back.A, idx.A) and (back.assign == idx.assign).all() and back.members == idx.members
    assert back.meta["note"] == "t" and back.meta["num_prototypes"] == 4
    (tmp_path / "p" / "E.npy").unlink()
    with pytest.raises(FileNotFoundError, match="E.npy"):
        PrototypeIndex.load(tmp_path / "p")


def test_index_bad_shapes():
    with pytest.raises(ValueError, match="members"):
        PrototypeIndex(np.eye(2), np.eye(2), make_members(1, ["a"]))
    with pytest.raises(ValueError, match="must be"):
        PrototypeIndex(np.eye(2), np.eye(3), make_members(3, ["a"]))
