import pytest
from emotionthinker.demo import run_demo


@pytest.mark.slow
def test_demo_quick_returns_computed_figures():
    out = run_demo(quick=True)
    assert set(out) == {"what", "headline", "metrics"}
    assert out["metrics"]["prosody"]["rising"]["intonation"] == "rising"
    assert len(out["metrics"]["ptr_history"]) == 2
