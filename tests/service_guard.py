"""Skip-or-fail for tests that need a real service.

Locally a missing service skips the test with a reason; under .ci/run
(POCKET_COFFEA_REQUIRE_SERVICES=1) a missing service is a failure, so CI can never go
green by skipping the integration tests.
"""
from __future__ import annotations

import os

import pytest

REQUIRE_ENV = "POCKET_COFFEA_REQUIRE_SERVICES"


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "False")


def require_service(name: str, available: bool, reason: str = "") -> None:
    """Skip (or, in CI, fail) the calling test when the named service is not available."""
    if available:
        return
    message = f"{name} is not available{': ' + reason if reason else ''}"
    if services_required():
        pytest.fail(f"{message} ({REQUIRE_ENV}=1, so this is a failure, not a skip)")
    pytest.skip(message)
