"""Shared fixtures.

`shared_data` points at the real third-party test data that sits beside the project
(`../shared/data`, or `$MUSILINGO_SHARED_DATA`). It is never copied into the repo (its licences
allow testing, not shipping). In a user's clone it is absent and the tests that need it skip with
the reason; in CI (`CI=true`) it is present, and its absence is a failure, not a skip.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MUSILINGO_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "SOURCES.md").is_file():
        msg = (f"real test data not found at {SHARED} (set MUSILINGO_SHARED_DATA to the folder "
               "holding SOURCES.md)")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED
