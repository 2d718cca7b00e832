import json
from pathlib import Path

import numpy as np
import pytest
from p_genrm.chain_parser import parse_chain
from p_genrm.synthetic import SyntheticJudge, SyntheticWorld, VectorEmbedder, run_synthetic_study


def test_judge_writes_valid_chains_that_follow_the_history():
    world = SyntheticWorld(seed=0)
    users = world.make_users("u", 1, n_train=6, n_test=1)
    from p_genrm.data import make_request, sample_history
    from p_genrm.evaluation_chain import build_messages
    from p_genrm.scoring import render_prompt

    u = users["u0"]
    req = make_request(u.test[0], sample_history(u.train, 6), chosen_first=True)
    judge = SyntheticJudge(weight_noise=0.0, score_noise=0.0, fail_rate=0.0, slip_rate=0.0)
    (chains,) = judge.generate([render_prompt(build_messages(req), None)], type("P", (), {"n": 3})())
    parsed = [parse_chain(c.text) for c in chains]
    assert len({(p.final_1, p.final_2) for p in parsed}) == 1  # no noise: identical chains
    emb = VectorEmbedder(world.dim, world.topic_dim)([parsed[0].analysis])
    assert emb.shape == (1, world.dim + world.topic_dim) and np.isclose(np.linalg.norm(emb), 1)


@pytest.mark.slow
def test_study_claims_and_golden():
    out = run_synthetic_study(budgets=("ind1", "ind16", "ind16+pro8", "ind2+cpro2"))
    acc = out["accuracy"]
    for group in ("short", "long"):
        assert acc[group]["ind16"] > acc[group]["ind1"]  # Ind-n beats n = 1
        assert acc[group]["ind2+cpro2"] > acc[group]["ind1"]  # the cached 4-chain mode beats one chain
    assert acc["short"]["ind16+pro8"] > acc["short"]["ind16"]  # Ind+Pro beats Ind for short histories
    assert out["chains_per_pair"]["ind2+cpro2"]["budget"] == 4.0  # 2 own + 2 prototype-criteria chains
    assert out["chains_per_pair"]["ind16+pro8"]["budget"] == 24.0
    golden = json.loads((Path(__file__).parent / "golden" / "synthetic_full.json").read_text())
    for group, row in golden.items():
        for budget, value in row.items():
            assert acc[group][budget] == pytest.approx(value, abs=0.03)
    assert out["prototype_build"]["loss_after"] < out["prototype_build"]["loss_before"]
