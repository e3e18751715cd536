"""Fixtures for the cache tests (helpers live in synthetic_cache.py)."""
from __future__ import annotations

import pytest

from tests.helpers.synthetic_cache import write_synthetic


@pytest.fixture
def synthetic(tmp_path):
    path = tmp_path / "syn.zarr"
    plan, expect = write_synthetic(path)
    return path, plan, expect
