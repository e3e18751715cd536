"""`musilingo cache upgrade PATH`: a format-2 cache becomes format 3, its features untouched.

    musilingo cache upgrade cache.zarr

Format 2 kept the per-row tables (status, counts, seconds, checksum, reason) as one small file per
shard each and the strings in zarr-python's vlen-utf8 extension. The upgrade, in place:

1. writes the strings as bytes + offsets beside the old arrays, and a commit record for every
   committed shard (from its status, counts, seconds, checksum and reason: the same values);
   until step 2 the cache is format 2 and reads its own arrays, whatever of these exists;
2. switches the group attributes to format 3 in one write (the row index marked absent), keeping the plan
   digest's rules (`digest_format_version: 2`), so that `plan_sha256` and every row checksum stay
   valid: nothing is recomputed, and a plan damaged before the upgrade is still refused after it;
3. removes the old arrays and writes the row index.

The features files are neither read nor rewritten. A kill at any write leaves either a format-2
cache that the same command upgrades from the start, or a format-3 cache that reads from its
commit records and that the same command finishes (tests/cache/test_crash_points.py kills it at
every write in turn). Shards with an
unreadable status or pending rows stay pending (no record), for `extract` to redo. Format 1 is
not upgraded (its checksums do not cover the row's identity): re-extract it.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from .layout import (COMMIT_FIELDS, FORMAT_VERSION, INDEX_ARRAYS, PENDING, PLAN_ARRAYS, ROW_ARRAYS,
                     STRING_ARRAYS)
from .location import Location
from .lock import writer_lock
from .rows import (committed_shards, create_empty_index, features_key, make_commits_group,
                   write_commit, write_strings)
from .store import CacheStore, load_checked_plan, open_group

OLD_ROW_ARRAYS = ("status", "counts", "seconds", "checksum", "reason")


def upgrade_cache(path, progress: bool = False) -> dict:
    """Upgrade `path` in place; returns {"from": version, "shards": committed shards}.
    Holds the cache's writer lock: an extraction or a second upgrade of it is refused."""
    with writer_lock(path):
        location = Location(path)
        location.sweep_temporaries()  # files an upgrade killed earlier had not yet renamed
        return _upgrade(location, path, progress)


def _upgrade(location: Location, path, progress: bool) -> dict:
    group = open_group(location, mode="r+", upgrading=True)
    meta = dict(group.attrs)
    version = meta.get("format_version")
    if version == FORMAT_VERSION:
        _finish(CacheStore.open(location))
        return {"from": version, "shards": len(committed_shards(location))}
    plan = load_checked_plan(group, meta, path)  # format 2 plan, its digest checked
    rows, shard_rows = int(meta["rows"]), int(meta["shard_rows"])
    shards = -(-rows // shard_rows)
    features = group["features"]
    tables = {name: group[name] for name in OLD_ROW_ARRAYS}
    for name in STRING_ARRAYS:
        write_strings(group, name, getattr(plan, name), "clip")
    make_commits_group(group)
    steps = range(shards)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, unit="shard", desc="upgrade")
    for shard in steps:
        start, stop = shard * shard_rows, min(rows, (shard + 1) * shard_rows)
        try:
            status = np.asarray(tables["status"][start:stop])
            values = {n: np.asarray(tables[n][start:stop]) for n in OLD_ROW_ARRAYS[1:]}
        except Exception:  # an unreadable table chunk: the shard stays pending, extract redoes it
            continue
        if np.any(status == PENDING):
            continue
        key = features_key(features, shard)
        write_commit(location, shard, start, stop, status, values["counts"], values["seconds"],
                     values["checksum"], values["reason"],
                     location.size(key) if location.is_file(key) else 0)
    # One write of zarr.json (`attrs.update` writes it once per key: a kill between those left a
    # format-3 version beside format-2 digest rules, a cache neither command could open).
    group.update_attributes({"format_version": FORMAT_VERSION, "digest_format_version": version,
                             "index": None, "commit_record": COMMIT_FIELDS,
                             "arrays": {**ROW_ARRAYS, **PLAN_ARRAYS, **INDEX_ARRAYS},
                             "upgraded_from": version})
    _finish(CacheStore.open(location))  # now format 3: opened, and its plan checked, as such
    return {"from": version, "shards": len(committed_shards(location))}


def _finish(store: CacheStore) -> None:
    """Step 3: old arrays out, the row index in (when every shard is committed)."""
    group = store.group
    if store.meta.get("index"):
        return  # finished already
    for name in (*STRING_ARRAYS, "reason"):
        if name in group and str(group[name].dtype) not in ("uint8", "int64"):
            del group[name]
    create_empty_index(group, store.num_rows, int(store.meta["windows"]))
    tables = store.row_tables()
    if tables.bad_shards:
        raise UserError(f"{store.path}: commit record(s) of shard {tables.bad_shards[0][0]} "
                        f"cannot be read: run `musilingo cache verify {store.path}`")
    if not np.any(tables.status == PENDING):
        store.build_index(tables)


__all__ = ["upgrade_cache"]
