"""Creating and writing the Zarr v3 feature cache (the layout is in `layout.py`).

    plan = CachePlan(...)                                   # rows fixed before extraction
    store = CacheStore.create("cache.zarr", plan, meta)     # atomic: a tmp folder, then rename
    store = CacheStore.open("cache.zarr")                   # resume, another rank
    for s in store.pending_shards(rank, world): store.write_shard(s, ...)
    store.build_index()                                     # once every shard is committed

Why it looks like this (docs/REFERENCE.md section 5): Zarr rewrites a shard as a whole, so two
processes writing rows of one shard lose data and row-by-row writes are 10x slower. Each cache
shard therefore has exactly one owner (rank r owns shards r, r+N, ...), which buffers the whole
shard and writes its features file once, then its commit record `commits/<shard>.json` (written
atomically, last): after a crash a shard is committed or pending, never half done, and a resumed
run redoes only pending shards, computing them exactly as before. Inner chunks carry a crc32c, so
a damaged shard fails to decode instead of returning wrong numbers; per-row blake2b checksums
(which also cover the row's index and the plan digest) catch everything else, including a lost
features file (it would read back as zeros), and every reader checks them.

The start-up cost of a reader must not grow with the corpus: the plan arrays are a few large
chunks (strings as bytes + offsets), and a finished cache carries the row index (every commit
record's values in large chunks), so an open reads a handful of objects for any row count.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec

from ..errors import UserError
from .layout import (DONE, FAILED, FORMAT, PENDING, PLAN_ARRAYS, READABLE_VERSIONS, STRING_ARRAYS,
                     UPGRADABLE_VERSIONS, StringColumn, hash_plan_array, plan_digest, plan_hasher,
                     row_checksum)
from .location import Location
from .rows import (RowTables, committed_shards, create_empty_index, create_table,
                   features_key, make_commits_group, row_tables, write_commit, write_index,
                   write_strings)


@dataclass
class CachePlan:
    """The row layout: which clip and segment each row holds, decided from file headers."""

    clip_id: StringColumn          # lists of str are accepted and converted
    clip_path: StringColumn
    clip_error: StringColumn
    clip_sample_rate: np.ndarray   # int32 [clips]
    clip_frames: np.ndarray        # int64 [clips]
    clip_channels: np.ndarray      # int32 [clips]
    clip_first_row: np.ndarray     # int64 [clips]
    clip_num_rows: np.ndarray      # int32 [clips]
    row_clip: np.ndarray           # int32 [rows]
    row_segment: np.ndarray        # int32 [rows]
    row_start: np.ndarray          # float64 [rows]
    row_planned_seconds: np.ndarray  # float64 [rows]

    def __post_init__(self):
        for name in STRING_ARRAYS:
            if getattr(self, name) is not None:
                setattr(self, name, StringColumn.from_strings(getattr(self, name)))

    @property
    def num_rows(self) -> int:
        return len(self.row_clip)

    @property
    def num_clips(self) -> int:
        return len(self.clip_id)

    def arrays(self) -> dict:
        return {name: getattr(self, name) for name in PLAN_ARRAYS}

    @classmethod
    def load(cls, group) -> "CachePlan":
        return cls(**{name: load_plan_array(group, name) for name in PLAN_ARRAYS})


def load_plan_array(group, name: str):
    """One plan array: numpy, or a StringColumn for the strings. A format-2 cache's strings are
    its own vlen arrays, even where an interrupted upgrade has begun writing their format-3
    columns beside them (those may be half-written until the version says 3)."""
    old = group.attrs.get("format_version") in UPGRADABLE_VERSIONS
    if name in STRING_ARRAYS and name in group and (old or f"{name}_offsets" not in group):
        return [str(x) for x in group[name][:]]  # format 2 (being upgraded)
    if name in STRING_ARRAYS:
        return StringColumn(group[f"{name}_offsets"][:], group[f"{name}_bytes"][:])
    return np.asarray(group[name][:])


# What a reader of features needs of the plan; the rest is hashed at open and dropped.
READER_PLAN = ("clip_id", "clip_first_row", "clip_num_rows", "row_clip", "row_segment",
               "row_start")


class CacheStore:
    """A writable handle on one cache (the extraction job's side)."""

    def __init__(self, path, group):
        self.location = Location(path)
        self.path = str(self.location)
        self.group = group
        self.meta = dict(group.attrs)
        self.shard_rows = int(self.meta["shard_rows"])
        self.num_rows = int(self.meta["rows"])
        self.num_shards = -(-self.num_rows // self.shard_rows)
        self.features = group["features"]

    @classmethod
    def create(cls, path, plan: CachePlan, meta: dict) -> "CacheStore":
        """Write an empty cache (plan tables, metadata) atomically: a crash leaves no half store."""
        final = Location(path)
        tmp = final.with_suffix_name(".creating")
        tmp.delete_all()  # a creation killed earlier: nothing of value
        group = zarr.open_group(store=tmp.zarr_store(), mode="w", zarr_format=3)
        rows, shard = plan.num_rows, int(meta["shard_rows"])
        layers, windows, dim = int(meta["layers"]), int(meta["windows"]), int(meta["dim"])
        # fp16 features compress ~0.88x: not worth the read time; "." keys: one file per shard
        group.create_array("features", shape=(rows, layers, windows, dim), dtype=meta["dtype"],
                           chunks=(1, layers, windows, dim), shards=(shard, layers, windows, dim),
                           fill_value=0, compressors=[Crc32cCodec()],
                           chunk_key_encoding={"name": "default", "separator": "."},
                           dimension_names=("row", "hidden_state", "window", "dim"))
        for name, data in plan.arrays().items():
            axis = "clip" if name.startswith("clip") else "row"
            if name in STRING_ARRAYS:
                write_strings(group, name, data, axis)
            else:
                create_table(group, name, data, axis)
        create_empty_index(group, rows, windows)
        make_commits_group(group)
        group.attrs.update(meta)
        group.attrs["index"] = None
        # The digest is taken of the attributes as stored (JSON round trip), as readers see them.
        group.attrs["plan_sha256"] = plan_digest(plan.arrays(), dict(group.attrs))
        if final.remote:  # no rename in an object store: copy, the root zarr.json last
            final.delete_all()
            tmp.copy_tree_to(final)
            tmp.delete_all()
        else:
            tmp.path.replace(final.path)
        return cls.open(final)

    @classmethod
    def open(cls, path, mode: str = "r+") -> "CacheStore":
        store = cls(path, open_group(path, mode=mode))
        store.plan = load_checked_plan(store.group, store.meta, path)
        return store

    def load_plan(self) -> CachePlan:
        return self.plan

    def shard_range(self, shard: int) -> tuple[int, int]:
        start = shard * self.shard_rows
        return start, min(self.num_rows, start + self.shard_rows)

    def committed_shards(self) -> set[int]:
        return committed_shards(self.location)

    def pending_shards(self, rank: int = 0, world: int = 1) -> list[int]:
        """The shards rank `rank` of `world` owns (r, r+N, ...) that have no commit record."""
        done = self.committed_shards()
        return [s for s in range(rank, self.num_shards, world) if s not in done]

    def write_shard(self, shard: int, features: np.ndarray, counts: np.ndarray,
                    seconds: np.ndarray, status: np.ndarray, reason: list[str]) -> None:
        """Commit one whole shard: its features file first, then its commit record."""
        start, stop = self.shard_range(shard)
        n = stop - start
        assert features.shape[0] == counts.shape[0] == len(seconds) == len(status) == n
        assert len(reason) == n
        assert np.all(status != PENDING), "a committed shard has no pending rows"
        if self.meta.get("index"):  # the index describes a finished cache; this one changes
            self.drop_index()
        features = features.astype(self.features.dtype, copy=False)
        counts = counts.astype(np.int32, copy=False)
        checks = [stored_checksum(self.meta, start + i, features[i], counts[i], seconds[i],
                                  status[i], reason[i]) for i in range(n)]
        # Written even when equal to the fill value (all rows failed): a committed shard has its
        # features file, and a missing one is damage.
        self.features.with_config({"write_empty_chunks": True})[start:stop] = features
        write_commit(self.location, shard, start, stop, status, counts, seconds, checks, reason,
                     self.location.size(features_key(self.features, shard)))

    def row_tables(self) -> RowTables:
        return row_tables(self.location, self.group, self.meta)

    def build_index(self, tables: RowTables | None = None) -> None:
        """Write the row index from the commit records (every shard must be committed)."""
        if tables is None or self.meta.get("index"):
            tables = row_tables(self.location, self.group, self.meta, use_index=False)
        if tables.bad_shards or np.any(tables.status == PENDING):
            raise UserError(f"{self.path}: cannot index an unfinished or damaged cache: run "
                            f"`musilingo cache verify {self.path}`")
        self.drop_index()
        write_index(self.group, tables)
        index = {"shards": self.num_shards, "rows": self.num_rows,
                 "done": int(np.sum(tables.status == DONE)),
                 "failed": int(np.sum(tables.status == FAILED)),
                 "features_bytes": int(tables.shard_bytes.sum()),
                 "every_chunk": True}  # rows.py: a missing chunk of any index table is a loss
        self.group.attrs["index"] = index
        self.meta["index"] = index

    def drop_index(self) -> None:
        """Mark the row index stale (readers fall back to the commit records)."""
        self.group.attrs["index"] = None
        self.meta["index"] = None

    def disk_bytes(self) -> int:
        return self.location.total_bytes()


def open_group(path, mode: str = "r", upgrading: bool = False):
    """A cache's Zarr group, or one line (a UserError) saying what is wrong with it."""
    path = Location(path)
    if not path.is_file("zarr.json"):
        raise UserError(f"no feature cache at {path} (expected a Zarr group made by "
                        "`musilingo extract`)")
    try:
        group = zarr.open_group(store=path.zarr_store(read_only=mode == "r"), mode=mode,
                                zarr_format=3)
        attrs = dict(group.attrs)
    except Exception as exc:  # not JSON, not UTF-8, not a Zarr group
        raise UserError(f"{path}/zarr.json cannot be read ({type(exc).__name__}: "
                        f"{_first_line(exc)}): the cache's metadata is damaged; extract into a new "
                        "--out") from None
    if attrs.get("format") != FORMAT:
        raise UserError(f"{path} is a Zarr group but not a musilingo feature cache")
    version = attrs.get("format_version")
    if version in UPGRADABLE_VERSIONS and not upgrading:
        raise UserError(f"{path} has cache format {version}; this musilingo reads format "
                        f"{READABLE_VERSIONS[-1]}: run `musilingo cache upgrade {path}` (it rewrites "
                        "the metadata in place and leaves the features as they are)")
    if version not in READABLE_VERSIONS and not (upgrading and version in UPGRADABLE_VERSIONS):
        raise UserError(f"{path} has cache format {version!r}; this musilingo reads "
                        f"{', '.join(map(str, READABLE_VERSIONS))} and upgrades "
                        f"{', '.join(map(str, UPGRADABLE_VERSIONS))}: re-extract it")
    return group


def load_checked_plan(group, meta: dict, path, keep=None) -> CachePlan:
    """The row plan, checked against the `plan_sha256` recorded at creation: a plan array or a
    metadata field edited since (swapped clip ids, another stride) is refused. The arrays are
    read and hashed one at a time; only those in `keep` (default: all) stay in memory, the others
    are None in the plan returned."""
    h = plan_hasher(meta)
    values = {}
    try:
        for name in PLAN_ARRAYS:
            value = load_plan_array(group, name)
            if name in STRING_ARRAYS and not isinstance(value, StringColumn):
                value = StringColumn.from_strings(value)
            hash_plan_array(h, name, value)
            values[name] = value if keep is None or name in keep else None
    except Exception as exc:
        raise UserError(f"{path}: the row plan cannot be read ({type(exc).__name__}: "
                        f"{_first_line(exc)}): the cache is damaged; run `musilingo cache verify "
                        f"{path}`") from None
    expected = meta.get("plan_sha256")
    if not expected or h.hexdigest() != expected:
        raise UserError(f"{path}: the row plan or the metadata changed after extraction (clip "
                        "ids, segments, stride, windows, dtype or encoder no longer match "
                        f"plan_sha256), so its rows cannot be trusted: run `musilingo cache "
                        f"verify {path}`, and re-extract into a new --out")
    return CachePlan(**values)


def stored_checksum(meta: dict, row: int, features, counts, seconds, status, reason) -> int:
    """The checksum a row of this cache must carry (its identity included)."""
    return row_checksum(features, counts, seconds, status, reason, row=row,
                        plan=meta["plan_sha256"])


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else ""



def disk_bytes(path) -> int:
    return Location(path).total_bytes()


__all__ = ["CachePlan", "CacheStore", "open_group", "load_checked_plan", "stored_checksum",
           "disk_bytes", "FAILED", "PENDING"]
