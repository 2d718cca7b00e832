import pytest


@pytest.mark.slow
def test_demo_quick_contract():
    from q_rag.demo import run_demo

    out = run_demo(quick=True)
    assert set(out) == {"what", "headline", "metrics"}
    m = out["metrics"]
    assert 0.0 <= m["recall_before"] <= 1.0 and 0.0 <= m["recall_after"] <= 1.0
    assert f"{m['recall_after']:.2f}" in out["headline"]
