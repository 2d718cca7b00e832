import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["metropolis_hastings", "power_distribution", "grading", "sandbox", "smc", "chain_rng"])
def test_docstring_examples(name):
    mod = importlib.import_module(f"power_sampling.{name}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
