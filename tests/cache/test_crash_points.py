"""Crash consistency of `musilingo cache upgrade`, at every write, not a sample.

A driver process runs the upgrade with every write to the store counted (zarr's LocalStore
`set`, `set_if_not_exists`, `delete`, `delete_dir`, and the cache's own `Location.put` /
`delete` for commit records) and dies (`os._exit(9)`, as a kill -9 would leave it) just before
write k. Then the same command runs again, as the README tells the user to, and the cache must
equal an uninterrupted upgrade's: the plan, every row's status and failure, every feature row,
and what `verify` says. Before the fix, 15 of the 49 writes lost the cache: a half-written
string column made the format-2 plan unreadable, and the six writes the attributes took could
leave format 3 beside format-2 digest rules.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "format2.zarr"
REPO = Path(__file__).resolve().parents[2]

DRIVER = r"""
import os, sys
from zarr.storage import LocalStore
from musilingo.cache.location import Location
from musilingo.cache.upgrade import upgrade_cache

stop_at, count = int(sys.argv[2]), [0]

def tick():
    count[0] += 1
    if count[0] == stop_at:
        os._exit(9)

def counted_async(orig):
    async def wrapped(self, *a, **k):
        tick()
        return await orig(self, *a, **k)
    return wrapped

def counted(orig):
    def wrapped(self, *a, **k):
        tick()
        return orig(self, *a, **k)
    return wrapped

for name in ("set", "set_if_not_exists", "delete", "delete_dir"):
    if hasattr(LocalStore, name):
        setattr(LocalStore, name, counted_async(getattr(LocalStore, name)))
for name in ("put", "delete"):
    setattr(Location, name, counted(getattr(Location, name)))
upgrade_cache(sys.argv[1])
print(count[0])  # the writes of an uninterrupted upgrade
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


def drive(path: Path, stop_at: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", DRIVER, str(path), str(stop_at)], cwd=REPO,
                          capture_output=True, text=True)


@pytest.mark.slow
def test_upgrade_killed_at_every_write_is_finished_by_running_it_again(tmp_path):
    from musilingo.cache.upgrade import upgrade_cache

    reference = tmp_path / "reference.zarr"
    shutil.copytree(FIXTURE, reference)
    done = drive(reference, 0)
    assert done.returncode == 0, done.stderr
    writes = int(done.stdout.split()[-1])
    expected = state(reference)
    assert writes > 30 and expected["version"] == 3
    for k in range(1, writes + 1):
        path = tmp_path / f"killed_at_{k}.zarr"
        shutil.copytree(FIXTURE, path)
        killed = drive(path, k)
        assert killed.returncode == 9, (k, killed.stderr[-500:])
        upgrade_cache(path)                       # the same command again
        assert state(path) == expected, f"killed before write {k} of {writes}"
        shutil.rmtree(path)
