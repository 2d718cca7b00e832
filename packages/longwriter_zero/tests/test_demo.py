import pytest


# TRL 1.16 / transformers 5.x call their own deprecated gradient_checkpointing aliases.
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*gradient_checkpointing.* is deprecated:FutureWarning")
def test_demo_quick_runs_and_reports_computed_figures():
    from longwriter_zero.demo import run_demo

    res = run_demo(quick=True)
    assert set(res) == {"what", "headline", "metrics"}
    m = res["metrics"]
    assert 0 <= m["in_range_before"] <= 1 and 0 <= m["length_reward_before"] <= 1
    for mode in ("average", "gated"):
        assert 0 <= m[mode]["in_range_after"] <= 1
        assert len(m[mode]["logged_length_reward_per_step"]) == m["steps"]
    assert f"{m['gated']['in_range_after']:.2f}" in res["headline"]
