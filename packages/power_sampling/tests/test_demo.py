import pytest
from power_sampling.demo import _tiny_reasoner_demo, _toy_demo, run_demo
from rlcore.testing import save_tiny_causal_lm


def test_toy_demo_power_beats_low_temperature():
    out = _toy_demo(quick=True)
    assert set(out) == {"what", "headline", "metrics"}
    tv = out["metrics"]["tv_to_power_distribution"]
    assert tv["power"] < tv["low_temp"] / 3 < tv["base"]


@pytest.mark.slow
def test_run_demo_quick():
    out = run_demo(quick=True)
    assert out["headline"] and out["what"] and out["metrics"]


@pytest.mark.slow
def test_tiny_reasoner_path_runs_on_any_model(tmp_path):
    """The accuracy path of the demo, on a random tiny model (builtin:tiny-reasoner may not be installed)."""
    out = _tiny_reasoner_demo(quick=True, model_ref=save_tiny_causal_lm(tmp_path / "m"))
    assert set(out["metrics"]["accuracy"]) == {"power", "smc", "low_temp", "base"}
    assert out["metrics"]["summary"]["power"]["mean_tokens_generated"] > out["metrics"]["summary"]["base"]["mean_tokens_generated"]
