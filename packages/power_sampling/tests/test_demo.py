import pytest

from power_sampling.demo import _toy_demo, run_demo


def test_toy_demo_power_beats_low_temperature():
    out = _toy_demo(quick=True)
    assert set(out) == {"what", "headline", "metrics"}
    tv = out["metrics"]["tv_to_power_distribution"]
    assert tv["power"] < tv["low_temp"] / 3 < tv["base"]


@pytest.mark.slow
def test_run_demo_quick():
    out = run_demo(quick=True)
    assert out["headline"] and out["what"] and out["metrics"]
