"""`musilingo cache upgrade`: the checked-in format-2 cache becomes format 3, features untouched."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from musilingo.cache import FeatureCache
from musilingo.cache.store import CacheStore
from musilingo.cache.verify import verify_cache
from musilingo.errors import UserError
from tests.helpers.cli import run_cli

FIXTURE = Path(__file__).parent / "fixtures" / "format2.zarr"


def feature_files(path: Path) -> dict:
    return {p.relative_to(path).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (path / "features").rglob("*") if p.is_file()}


@pytest.fixture
def old(tmp_path):
    path = tmp_path / "old.zarr"
    shutil.copytree(FIXTURE, path)
    return path


def test_format2_is_refused_with_the_upgrade_command(old):
    with pytest.raises(UserError, match=r"cache format 2.*musilingo cache upgrade .*old\.zarr"):
        FeatureCache.open(old)


def test_upgrade_keeps_every_row_and_touches_no_feature_byte(old, capsys):
    g = zarr.open_group(str(old), mode="r")
    assert g.attrs["format_version"] == 2
    before = {"features": g["features"][:], "status": g["status"][:], "counts": g["counts"][:],
              "clip_id": [str(x) for x in g["clip_id"][:]], "reason": [str(x) for x in g["reason"][:]]}
    files = feature_files(old)
    code, out, err = run_cli(capsys, "cache", "upgrade", str(old), "--no-progress")
    assert code == 0, err
    assert "format 2 -> 3, 2 committed shards" in out
    assert feature_files(old) == files  # not one features file rewritten
    cache = FeatureCache.open(old)
    assert cache.meta["format_version"] == 3 and cache.meta["plan_sha256"] == g.attrs["plan_sha256"]
    assert list(cache.plan.clip_id) == before["clip_id"]
    assert cache.status_counts() == {"pending": 1, "done": 7, "failed": 1}
    assert cache.failures() == [("clip1", 0, before["reason"][3])]
    for row in np.flatnonzero(before["status"] == 1):  # every checksum still holds
        seg = cache.read_row(int(row))
        w = int(np.count_nonzero(before["counts"][row]))
        assert np.array_equal(seg.features, before["features"][row][:, :w].astype(np.float32))
    # the pending shard stays pending: verify says so, and writing it finishes the cache
    assert [p.kind for p in verify_cache(old)] == ["pending"]
    store = CacheStore.open(old)
    assert store.pending_shards() == [2]
    feats = np.zeros((1, 3, 4, 8), np.float16)
    counts = np.zeros((1, 4), np.int32)
    counts[0, :2] = 65
    feats[0, :, :2] = 0.25
    store.write_shard(2, feats, counts, np.array([1.0]), np.array([1], np.uint8), [""])
    store.build_index()
    assert verify_cache(old) == [] and FeatureCache.open(old).meta["index"]["done"] == 8
    # running it again is harmless
    code, out, _ = run_cli(capsys, "cache", "upgrade", str(old), "--no-progress")
    assert code == 0 and "format 3 -> 3" in out and verify_cache(old) == []


def test_upgrade_does_not_launder_a_damaged_plan(old, capsys):
    g = zarr.open_group(str(old), mode="r+")
    ids = g["clip_id"][:]
    ids[0], ids[1] = ids[1], ids[0]
    g["clip_id"][:] = ids
    code, _, err = run_cli(capsys, "cache", "upgrade", str(old), "--no-progress")
    assert code == 2 and "plan_sha256" in err and "Traceback" not in err
    assert zarr.open_group(str(old), mode="r").attrs["format_version"] == 2
