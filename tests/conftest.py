"""Shared helpers for the workspace tests: load the scripts in ``tools/`` as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"


def load_tool(name: str):
    """Import ``tools/<name>.py`` as a module (tools/ is a folder of scripts, not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    if str(TOOLS) not in sys.path:  # build_builtin_data imports train_tiny_reasoner by name
        sys.path.insert(0, str(TOOLS))
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tool():
    """``tool("demo")`` imports ``tools/demo.py``."""
    return load_tool
