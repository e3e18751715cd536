"""Which shards are committed, and every row's status, counts, seconds, checksum and reason.

    committed_shards("cache.zarr")              # one listing of commits/
    tables = row_tables(location, group, meta)  # from the row index, or the commit records

A shard's commit record (`commits/<shard>.json`, layout.py's COMMIT_FIELDS) is written last by
its one writer, so its presence is what "committed" means; a resume, or another rank, learns the
whole job's progress from one listing. Reading every record costs one request per shard, which a
finished cache avoids: its row index holds the same values in a few large chunks (`write_index`,
called once every shard is committed, and recorded in the group attribute `index`).
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from zarr.codecs import Crc32cCodec

from ..errors import UserError
from .layout import COMMIT_FIELDS, DONE, FAILED, StringColumn
from .location import Location

TABLE_CHUNK = 1 << 20  # plan and index tables are written once, by one process: large chunks


@dataclass
class RowTables:
    """The per-row values of every committed shard (pending rows: status 0, zeros, '')."""

    status: np.ndarray     # uint8 [rows]
    counts: np.ndarray     # int32 [rows, W]
    seconds: np.ndarray    # float64 [rows]
    checksum: np.ndarray   # uint64 [rows]
    reason: StringColumn   # [rows]
    shard_bytes: np.ndarray  # int64 [shards], -1 for pending shards
    bad_shards: list       # [(shard, why)] commit records that could not be read


def _new_table(group, name, shape, dtype, axis, fill=0):
    """An empty table in chunks of TABLE_CHUNK rows, crc32c-checked (replacing any of its name)."""
    # Every chunk stored, even one equal to the fill value (zarr skips those by default): then a
    # chunk that is not there was lost, never "all zeros", and `row_tables` can tell.
    return group.create_array(name, shape=shape, dtype=dtype, overwrite=True,
                              chunks=(min(max(1, shape[0]), TABLE_CHUNK), *shape[1:]),
                              fill_value=fill, compressors=[Crc32cCodec()],
                              config={"write_empty_chunks": True},
                              dimension_names=(axis, *(["window"] * (len(shape) - 1))))


def create_table(group, name, data, axis, fill=0):
    """A whole table written at once."""
    data = np.asarray(data)
    arr = _new_table(group, name, data.shape, data.dtype, axis, fill)
    if data.size:
        arr[...] = data
    return arr


def write_strings(group, name, column: StringColumn, axis):
    create_table(group, f"{name}_offsets", column.offsets, f"{axis}+1")
    create_table(group, f"{name}_bytes", column.data, "byte")


def commit_key(shard: int) -> str:
    return f"commits/{shard}.json"


def features_key(features, shard: int) -> str:
    """The file (relative to the cache) that holds one cache shard of the features."""
    coords = (shard,) + (0,) * (len(features.shape) - 1)
    return "features/" + features.metadata.chunk_key_encoding.encode_chunk_key(coords)


def make_commits_group(group) -> None:
    """`commits/` as a Zarr group of its own, so that Zarr readers listing the cache see a known
    node (its JSON records are not Zarr nodes: read them as plain files)."""
    if "commits" not in group:
        group.create_group("commits", attributes={
            "about": "one JSON commit record per committed shard, <shard>.json", **COMMIT_FIELDS})


def committed_shards(location) -> set[int]:
    """Shards with a commit record: one listing of `commits/`."""
    out = set()
    for name in Location(location).names("commits"):
        stem, dot, ext = name.partition(".")
        if ext == "json" and stem.isdigit():
            out.add(int(stem))
    return out


def create_empty_index(group, rows, windows):
    """The index arrays, all fill values (pending) until `build_index` writes them."""
    for name, shape, dtype in (("status", (rows,), "uint8"), ("seconds", (rows,), "float64"),
                               ("checksum", (rows,), "uint64"),
                               ("counts", (rows, windows), "int32")):
        _new_table(group, name, shape, dtype, "row")


def write_index(group, t: RowTables):
    create_table(group, "status", t.status, "row")
    create_table(group, "counts", t.counts, "row")
    create_table(group, "seconds", t.seconds, "row")
    create_table(group, "checksum", t.checksum, "row")
    write_strings(group, "reason", t.reason, "row")
    create_table(group, "shard_bytes", t.shard_bytes, "shard")


INDEX_TABLES = ("status", "counts", "seconds", "checksum", "reason_offsets", "reason_bytes",
                "shard_bytes")


class DamagedIndex(UserError):
    """The row index cannot be used; `reason` says why in a few words (for `verify`'s list)."""

    def __init__(self, where, reason: str, what: str):
        self.reason = reason
        super().__init__(f"{where}: {what}: the cache is damaged; run `musilingo cache verify "
                         f"{where} --reset-damaged`, then the extract command again (it "
                         "rewrites the index)")


def _lost_index_chunks(group, index: dict) -> str | None:
    """"chunk 0 of status" when a stored chunk of the index is gone (zarr would read the fill
    value: every row pending). An index written with every chunk stored (`every_chunk`) is
    checked whole; an older one by `status` alone, whose chunks are never all fill value (a
    finished cache has no pending row)."""
    for name in INDEX_TABLES if index.get("every_chunk") else ("status",):
        array = group[name]
        stored, chunks = array.nchunks_initialized, array.nchunks
        if stored < chunks:
            return f"{chunks - stored} of {chunks} chunks of {name}"
    return None


def write_commit(location, shard: int, start: int, stop: int, status, counts, seconds,
                 checksums, reasons, features_bytes: int) -> None:
    """Commit a shard: its record (COMMIT_FIELDS), written atomically; its features are on disk
    already, so the record's presence is what "committed" means."""
    record = {"shard": shard, "rows": [start, stop], "status": [int(x) for x in status],
              "counts": np.asarray(counts, dtype=np.int32).tolist(),
              "seconds": [float(x) for x in seconds],
              "checksum": [f"{int(c):016x}" for c in checksums],
              "reason": [str(r) for r in reasons], "features_bytes": int(features_bytes)}
    Location(location).put(commit_key(shard), json.dumps(record, separators=(",", ":")).encode())


def read_commit(location, shard: int, start: int, stop: int, windows: int) -> dict:
    """One shard's commit record, checked for shape; raises ValueError when it is damaged."""
    record = json.loads(Location(location).get(commit_key(shard)).decode("utf-8"))
    n = stop - start
    if record.get("shard") != shard or record.get("rows") != [start, stop]:
        raise ValueError(f"it names shard {record.get('shard')} rows {record.get('rows')}")
    for name in ("status", "counts", "seconds", "checksum", "reason"):
        if not isinstance(record.get(name), list) or len(record[name]) != n:
            raise ValueError(f"its {name} list does not have {n} entries")
    if any(len(c) != windows for c in record["counts"]):
        raise ValueError(f"a counts entry does not have {windows} windows")
    if any(s not in (DONE, FAILED) for s in record["status"]):
        raise ValueError("a status is neither 1 (done) nor 2 (failed)")
    return record


def row_tables(location, group, meta, use_index: bool = True) -> RowTables:
    """Every row's status, counts, seconds, checksum and reason: from the row index when the
    cache is finished (a few objects), else from the commit records (one per committed shard)."""
    rows, shard_rows, windows = int(meta["rows"]), int(meta["shard_rows"]), int(meta["windows"])
    shards = -(-rows // shard_rows)
    if use_index and meta.get("index"):
        where = Location(location)
        lost = _lost_index_chunks(group, meta["index"])
        if lost:
            raise DamagedIndex(where, f"lost {lost}", f"the row index has lost {lost}")
        try:
            return RowTables(np.asarray(group["status"][:]), np.asarray(group["counts"][:]),
                             np.asarray(group["seconds"][:]), np.asarray(group["checksum"][:]),
                             StringColumn(group["reason_offsets"][:], group["reason_bytes"][:]),
                             np.asarray(group["shard_bytes"][:]), [])
        except Exception as exc:  # crc32c mismatch, a truncated chunk
            why = type(exc).__name__
            raise DamagedIndex(where, why, f"the row index cannot be read ({why})") from None
    status = np.zeros(rows, np.uint8)
    counts = np.zeros((rows, windows), np.int32)
    seconds = np.zeros(rows, np.float64)
    checksum = np.zeros(rows, np.uint64)
    reasons = [""] * rows
    shard_bytes = np.full(shards, -1, np.int64)
    bad = []
    committed = sorted(s for s in committed_shards(location) if s < shards)

    def load(shard):
        start, stop = shard * shard_rows, min(rows, (shard + 1) * shard_rows)
        try:
            return shard, read_commit(location, shard, start, stop, windows)
        except Exception as exc:  # JSON, UTF-8, shape: the record is damaged
            return shard, f"{type(exc).__name__}: {str(exc).strip()[:120]}"

    with ThreadPoolExecutor(8 if Location(location).remote else 1) as pool:
        for shard, record in pool.map(load, committed):
            if isinstance(record, str):
                bad.append((shard, record))
                continue
            a, b = record["rows"]
            status[a:b] = record["status"]
            counts[a:b] = record["counts"]
            seconds[a:b] = record["seconds"]
            checksum[a:b] = [int(c, 16) for c in record["checksum"]]
            reasons[a:b] = record["reason"]
            shard_bytes[shard] = int(record.get("features_bytes", 0))
    return RowTables(status, counts, seconds, checksum, StringColumn.from_strings(reasons),
                     shard_bytes, bad)


def missing_features(location, features, shards) -> list[tuple[int, str]]:
    """(shard, file) of each of `shards` (committed ones) whose features file is absent: one
    listing of the folder (a file at a time for "/" keys, an upgraded format-2 cache)."""
    location = Location(location)
    keys = [(s, features_key(features, s)) for s in shards]
    if any("/" in k[len("features/"):] for _, k in keys):
        return [(s, k) for s, k in keys if not location.is_file(k)]
    names = set(location.names("features"))
    return [(s, k) for s, k in keys if k[len("features/"):] not in names]


def distinct_sorted(values: np.ndarray) -> np.ndarray:
    """np.unique of an already sorted array (a clip's rows are consecutive, and so are a
    shard's), in one pass instead of a sort: 5M rows in milliseconds."""
    if len(values) == 0:
        return values
    keep = np.empty(len(values), dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def committed_of(status: np.ndarray, shard_rows: int) -> np.ndarray:
    """The shards holding a committed (non-pending) row, in order."""
    return distinct_sorted(np.flatnonzero(status) // shard_rows)
