from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_NANOAOD = REPO_ROOT.parent / "shared" / "data" / "nanoaod"

# tests import helpers such as service_guard from this folder
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def nanoaod_dir() -> Path:
    """The real NanoAOD samples shipped read-only in ../shared/data/nanoaod."""
    if not SHARED_NANOAOD.is_dir():
        pytest.fail(f"real NanoAOD samples not found at {SHARED_NANOAOD}")
    return SHARED_NANOAOD
