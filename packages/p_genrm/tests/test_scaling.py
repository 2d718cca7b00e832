import numpy as np
import pytest
from p_genrm.chain_parser import ChainSample
from p_genrm.evaluation_chain import HistoryPair, ScoreRequest, render_chain
from p_genrm.prototypes import Member, PrototypeIndex
from p_genrm.scaling import (
    PRESETS,
    TestTimeScaler,
    compute_fused_scores,
    compute_individual_scores,
    decide,
    get_preset,
    preset_pro_mode,
)
from p_genrm.scoring import GenRMScorer

REQ = ScoreRequest("q", "r1", "r2", history=(HistoryPair("u", "c", "r"),), user_id="me")


def sample(s1, s2, order=(0, 1)):
    disp = (s1, s2) if order == (0, 1) else (s2, s1)
    return ChainSample.from_text(render_chain("a", [("x", 100, *disp)]), order)


def test_individual_scores_mean_and_skip_unparsable():
    chains = [sample(6, 4), sample(8, 2, (1, 0)), ChainSample.from_text("garbage", (0, 1))]
    # (6 + 8) / 2 = 7, (4 + 2) / 2 = 3; the garbage chain is skipped, not scored
    assert compute_individual_scores(chains) == (7.0, 3.0, 2)
    assert compute_individual_scores([ChainSample.from_text("garbage", (0, 1))]) is None


def test_individual_scores_order_invariant():
    rng = np.random.default_rng(0)
    for _ in range(5):
        scores = rng.integers(1, 11, size=(6, 2)).astype(float)
        a = [sample(*s) for s in scores]
        b = [sample(*s, order=(1, 0)) for s in scores[::-1]]  # other display order, reversed sample order
        assert compute_individual_scores(a) == pytest.approx(compute_individual_scores(b))


def test_fused_scores_hand_computed_and_tie_rule():
    # c_s = 0.75, c_n = 0.25: (0.75*6 + 0.25*2, 0.75*4 + 0.25*8) = (5.0, 5.0)
    assert compute_fused_scores((6.0, 4.0), (2.0, 8.0), 0.75, 0.25) == (5.0, 5.0)
    assert compute_fused_scores(None, None) is None
    assert compute_fused_scores((6.0, 4.0), None) == (6.0, 4.0)
    assert decide((5.0, 5.0)) == 0 and decide((5.0, 5.0), "none") is None
    assert decide((4.0, 5.0)) == 1 and decide(None) is None


def test_presets():
    assert get_preset("ind8+pro4") == (8, 4) and get_preset("ind16+pro8") == (16, 8)
    assert get_preset("ind9") == (9, 0) and get_preset("ind2+cpro2") == (2, 2)
    assert preset_pro_mode("ind2+cpro2") == "cached" and preset_pro_mode("ind8+pro4") == "neighbours"
    for bad in ("ind0", "pro4", "ind2+pro", "ind2+xpro2", "ind16+pro8 "):
        with pytest.raises(ValueError, match="ind16\\+pro8"):
            get_preset(bad)
    assert set(PRESETS) >= {"ind1", "ind16", "ind32"}


def test_n1_equals_single_scoring(scripted):
    texts = [render_chain("a", [("x", 100, 3 + i, 8 - i)]) for i in range(4)]
    single = GenRMScorer(scripted(texts), seed=5).sample_chains([REQ] * 4, 1)
    scaled = TestTimeScaler(GenRMScorer(scripted(texts), seed=5), ind_n=1, pro_k=0).score([REQ] * 4)
    assert [r.final for r in scaled] == [c[0].scores for c in single]
    assert [r.n_self for r in scaled] == [1] * 4


def make_index(sizes, d=4, seed=0):
    rng = np.random.default_rng(seed)
    A = np.eye(d)[: len(sizes)]
    E, members = [], []
    for j, n in enumerate(sizes):
        for i in range(n):
            E.append(A[j] + 0.05 * rng.normal(size=d))
            members.append(Member(f"user{j}_{i}", f"row{j}_{i}", (HistoryPair(f"h{j}", f"c{j}{i}", f"r{j}{i}"),),
                                  f"analysis of prototype {j} member {i}"))
    return PrototypeIndex(A, np.array(E), members)


class AnchorEmbedder:
    """Every analysis maps to prototype 0's direction."""

    def __call__(self, texts):
        return np.tile(np.eye(4)[0], (len(texts), 1)).astype(np.float32)


def test_pro_k_rescored_with_neighbour_histories(scripted):
    gen = scripted()
    index = make_index([5, 5])
    scaler = TestTimeScaler(GenRMScorer(gen), index, AnchorEmbedder(), ind_n=2, pro_k=3)
    (res,) = scaler.score([REQ])
    assert gen.calls == [(1, 2), (3, 1)]  # batched: all Ind chains, then all neighbour re-scorings
    assert res.prototype == 0 and res.n_neighbors == 3 and res.neighbors_requested == 3
    assert res.final == compute_fused_scores(res.self_scores, res.nb_scores)


def test_prototype_with_fewer_members_than_k(scripted):
    index = make_index([2, 6])
    (res,) = TestTimeScaler(GenRMScorer(scripted()), index, AnchorEmbedder(), ind_n=1, pro_k=4).score([REQ])
    assert res.n_neighbors == 2 and res.neighbors_requested == 4  # all it has, never another prototype's members
    empty = make_index([0, 3])
    (res,) = TestTimeScaler(GenRMScorer(scripted()), empty, AnchorEmbedder(), ind_n=1, pro_k=2).score([REQ])
    assert res.pro_skipped == "empty_prototype" and res.nb_scores is None and res.final == res.self_scores


def test_user_without_history_and_no_parsable_chain(scripted):
    req = ScoreRequest("q", "a", "b")  # no history: the prompt says so, scoring still works
    (res,) = TestTimeScaler(GenRMScorer(scripted()), ind_n=2, pro_k=0).score([req])
    assert res.final is not None and res.n_self == 2
    gen = scripted(default="no chain at all")
    (res,) = TestTimeScaler(GenRMScorer(gen, max_retries=0), make_index([3]), AnchorEmbedder(), 2, 2).score([req])
    assert res.final is None and res.preferred is None and res.pro_skipped == "no_analysis"


def test_sequential_path_matches_batched_structure(scripted):
    gen = scripted()
    res = TestTimeScaler(GenRMScorer(gen), make_index([4]), AnchorEmbedder(), ind_n=3, pro_k=2).score(
        [REQ, REQ], batched=False)
    assert len(gen.calls) == 2 * 3 + 2 * 2 and all(c == (1, 1) for c in gen.calls)
    assert all(r.n_self == 3 and r.n_neighbors == 2 for r in res)


def test_scaler_bad_arguments(scripted):
    with pytest.raises(ValueError, match="ind_n"):
        TestTimeScaler(GenRMScorer(scripted()), ind_n=0)
    with pytest.raises(ValueError, match="prototype index"):
        TestTimeScaler(GenRMScorer(scripted()), ind_n=1, pro_k=2)


def test_cached_prototype_mode_uses_the_central_members_criteria_in_one_shared_prompt(scripted):
    index = make_index([5, 5])
    # prototype 0 = e_0: its most central members are those with the largest E_n . e_0
    order = np.argsort(-index.E[:5, 0])
    cards = index.prototype_criteria()  # default: the 4 most central members, most central first
    assert cards[0] == "\n---\n".join(f"analysis of prototype 0 member {i}" for i in order[:4])
    assert index.prototype_criteria(members=1)[0] == f"analysis of prototype 0 member {order[0]}"
    assert cards[1].startswith("analysis of prototype 1")
    central = order[0]
    gen = scripted()
    scaler = TestTimeScaler(GenRMScorer(gen), index, AnchorEmbedder(), ind_n=2, pro_k=2, pro_mode="cached")
    (res,) = scaler.score([REQ])
    assert gen.calls == [(1, 2), (1, 2)]  # 2 own chains + 2 chains of ONE prompt: 4 chains per pair
    own, pro = gen.prompts[0][0], gen.prompts[1][0]
    assert "Similar users' analysis" not in own and f"analysis of prototype 0 member {central}" in pro
    assert "User: u\nChosen: c\nRejected: r" in pro  # the user's own history stays
    assert res.prototype == 0 and res.n_self == 2 and res.n_neighbors == 2
    assert res.final == compute_fused_scores(res.self_scores, res.nb_scores)


def test_cached_mode_needs_member_analyses():
    idx = make_index([3])
    bare = PrototypeIndex(idx.A, idx.E, [Member(m.user_id, m.row_id, m.history) for m in idx.members])
    with pytest.raises(ValueError, match="no member analyses"):
        TestTimeScaler(GenRMScorer(None), bare, AnchorEmbedder(), ind_n=1, pro_k=2, pro_mode="cached")
