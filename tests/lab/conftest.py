"""The lab autograder checks solutions/ by default; set INFERLAB_CHECK=labs to check your work.

.venv/bin/python -m pytest tests/lab                       # the worked solution
INFERLAB_CHECK=labs .venv/bin/python -m pytest tests/lab   # your labs/queue_proxy.py
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def load_lab_module(name: str) -> ModuleType:
    folder = os.environ.get("INFERLAB_CHECK", "solutions")
    if folder not in {"solutions", "labs"}:
        raise pytest.UsageError(f"INFERLAB_CHECK must be 'solutions' or 'labs', got {folder!r}")
    path = ROOT / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def queue_proxy() -> ModuleType:
    return load_lab_module("queue_proxy")


@pytest.fixture(scope="session")
def exercises() -> dict[str, ModuleType]:
    """The exercise modules, by lesson number: exercises["07"].static_steps(...)."""
    return {
        path.stem.removeprefix("exercises_"): load_lab_module(path.stem)
        for path in sorted((ROOT / "solutions").glob("exercises_*.py"))
    }
