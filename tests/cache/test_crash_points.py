"""Crash consistency of `musilingo cache upgrade`, at every write, not a sample.

The harness (tests/helpers/crash.py) runs the upgrade with every write to the store counted
(zarr objects set or deleted, the cache's own commit records, renames and tree removals) and
kills it (`os._exit(9)`, as a kill -9 would leave it) just before write k. Then the same command
runs again, as the README tells the user to, and the cache must equal an uninterrupted
upgrade's: the plan, every row's status and failure, every feature row, what `verify` says,
and no other file. Before the fix, 15 of the 49 writes lost the cache: a half-written
string column made the format-2 plan unreadable, and the six writes the attributes took could
leave format 3 beside format-2 digest rules.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers.crash import files, kill_at_every_write

FIXTURE = Path(__file__).parent / "fixtures" / "format2.zarr"
JOB = r"""
from musilingo.cache.upgrade import upgrade_cache


def job(work, arm):
    arm()
    upgrade_cache(work / "cache.zarr")


def again(work):
    upgrade_cache(work / "cache.zarr")
"""


def state(path: Path) -> dict:
    """Everything a user of the cache can observe."""
    import hashlib

    import numpy as np

    from musilingo.cache import FeatureCache
    from musilingo.cache.verify import verify_cache

    cache = FeatureCache.open(path)
    rows = hashlib.sha256()
    for r in range(cache.num_rows):
        try:
            rows.update(np.ascontiguousarray(cache.read_row(r).features).tobytes())
        except Exception as exc:  # pending and failed rows: their refusal is part of the state
            rows.update(type(exc).__name__.encode())
    return {"version": cache.meta["format_version"], "plan": cache.meta["plan_sha256"],
            "ids": [str(c) for c in cache.plan.clip_id], "status": cache.status_counts(),
            "failures": [list(map(str, f)) for f in cache.failures()],
            "verify": [p.kind for p in verify_cache(path)], "rows": rows.hexdigest()}


@pytest.mark.slow
def test_upgrade_killed_at_every_write_is_finished_by_running_it_again(tmp_path):
    prepared = tmp_path / "prepared"
    shutil.copytree(FIXTURE, prepared / "cache.zarr")
    writes, killed = kill_at_every_write(JOB, tmp_path / "kills", what="store", prepare=prepared)
    reference = tmp_path / "kills" / "reference" / "cache.zarr"
    expected = state(reference)
    assert writes > 30 and expected["version"] == 3
    for k, work in enumerate(killed, start=1):
        path = work / "cache.zarr"                # killed, then the same command again
        assert state(path) == expected, f"killed before write {k} of {writes}"
        assert files(path) == files(reference), f"leftovers of write {k} of {writes}"
        shutil.rmtree(work)
    print(f"cache upgrade: {writes} writes, {len(killed)} kills, all recovered")
