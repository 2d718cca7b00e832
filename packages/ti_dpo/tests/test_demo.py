import pytest


@pytest.mark.slow
def test_run_demo_quick_improves_train_preference_accuracy():
    from ti_dpo.demo import run_demo

    out = run_demo(quick=True)
    assert set(out) == {"what", "headline", "metrics"}
    m = out["metrics"]
    assert m["reward_accuracy_after"] > m["reward_accuracy_before"]
    assert m["seconds_per_step"] > 0
