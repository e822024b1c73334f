from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NANOAOD_ENV = "POCKET_COFFEA_NANOAOD_DIR"


def _shared_nanoaod_candidates() -> list[Path]:
    """Where the read-only samples may be: $POCKET_COFFEA_NANOAOD_DIR, else ../shared beside
    this checkout, else ../shared beside the repository a local clone was made from (a clone
    in a temporary folder, as in ``git clone -q . $(mktemp -d)``)."""
    if os.environ.get(NANOAOD_ENV):
        return [Path(os.environ[NANOAOD_ENV])]
    candidates = [REPO_ROOT.parent / "shared" / "data" / "nanoaod"]
    origin = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "remote", "get-url", "origin"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / "shared" / "data" / "nanoaod")
    return candidates

# tests import helpers such as service_guard from this folder
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def nanoaod_dir() -> Path:
    """The real NanoAOD samples shipped read-only in ../shared/data/nanoaod."""
    candidates = _shared_nanoaod_candidates()
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    pytest.fail(
        f"real NanoAOD samples not found at {', '.join(map(str, candidates))}; "
        f"set {NANOAOD_ENV} to the folder holding nano_dy.root"
    )
