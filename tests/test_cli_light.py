"""`--help` stays instant: importing any package's CLI loads neither torch nor trl (heavy imports live in commands)."""

import subprocess
import sys

import pytest

PACKAGES = ["longwriter_zero", "emotionthinker", "ti_dpo", "p_genrm", "power_sampling", "loongrl", "q_rag"]


@pytest.mark.parametrize("pkg", PACKAGES)
def test_cli_import_loads_no_torch(pkg):
    code = f"import sys, {pkg}.cli; print(sorted(m for m in ('torch', 'trl', 'vllm') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", f"{pkg}.cli imports {out} at module level"
