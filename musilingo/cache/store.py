"""Creating and writing the Zarr v3 feature cache (the layout is in `layout.py`).

    plan = CachePlan(...)                                   # rows fixed before extraction
    store = CacheStore.create("cache.zarr", plan, meta)     # atomic: a tmp folder, then rename
    store = CacheStore.open("cache.zarr")                   # resume, another rank
    for s in store.pending_shards(rank, world): store.write_shard(s, ...)

Why it looks like this (docs/REFERENCE.md section 5): Zarr rewrites a shard as a whole, so two
processes writing rows of one shard lose data and row-by-row writes are 10x slower. Each cache
shard therefore has exactly one owner (rank r owns shards r, r+N, ...), which buffers the whole
shard and writes each array's shard file once. `status` goes last: Zarr's LocalStore writes files
atomically (tmp + rename), so after a crash a shard is committed (status non-zero) or pending,
never half done, and a resumed run redoes only pending shards, computing them exactly as before.
Inner chunks carry a crc32c, so a damaged shard fails to decode instead of returning wrong
numbers; per-row blake2b checksums (which also cover the row's index and the plan digest) catch
everything else, and every reader checks them (`reader.py`, `cache verify`). A missing chunk
file would read back as zeros (Zarr's fill value): `missing_files` names it instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec

from ..errors import UserError
from .location import Location
from .layout import (FAILED, FORMAT, PENDING, PLAN_ARRAYS, READABLE_VERSIONS, ROW_ARRAYS,
                     plan_digest, row_checksum)

PLAN_CHUNK = 1 << 16  # plan tables are written once, by one process: large chunks read fast


@dataclass
class CachePlan:
    """The row layout: which clip and segment each row holds, decided from file headers."""

    clip_id: list[str]
    clip_path: list[str]
    clip_error: list[str]
    clip_sample_rate: np.ndarray   # int32 [clips]
    clip_frames: np.ndarray        # int64 [clips]
    clip_channels: np.ndarray      # int32 [clips]
    clip_first_row: np.ndarray     # int64 [clips]
    clip_num_rows: np.ndarray      # int32 [clips]
    row_clip: np.ndarray           # int32 [rows]
    row_segment: np.ndarray        # int32 [rows]
    row_start: np.ndarray          # float64 [rows]
    row_planned_seconds: np.ndarray  # float64 [rows]

    @property
    def num_rows(self) -> int:
        return len(self.row_clip)

    @property
    def num_clips(self) -> int:
        return len(self.clip_id)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for name in PLAN_ARRAYS:
            value = getattr(self, name)
            out[name] = np.array(value, dtype=str) if isinstance(value, list) else value
        return out

    @classmethod
    def load(cls, group) -> "CachePlan":
        values = {}
        for name in PLAN_ARRAYS:
            data = group[name][:]
            values[name] = [str(x) for x in data] if data.dtype.kind in "OUT" else np.asarray(data)
        return cls(**values)


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
        crc = [Crc32cCodec()]  # fp16 features compress ~0.88x: not worth the read time
        group.create_array("features", shape=(rows, layers, windows, dim), dtype=meta["dtype"],
                           chunks=(1, layers, windows, dim), shards=(shard, layers, windows, dim),
                           fill_value=0, compressors=crc,
                           dimension_names=("row", "hidden_state", "window", "dim"))
        group.create_array("counts", shape=(rows, windows), dtype="int32", chunks=(shard, windows),
                           fill_value=0, compressors=crc, dimension_names=("row", "window"))
        for name, dtype, fill in (("seconds", "float64", 0.0), ("status", "uint8", PENDING),
                                  ("checksum", "uint64", 0), ("reason", str, "")):
            group.create_array(name, shape=(rows,), dtype=dtype, chunks=(shard,), fill_value=fill,
                               dimension_names=("row",))
        for name, data in plan.arrays().items():
            n = max(1, len(data))
            kind = str if data.dtype.kind in "OUT" else data.dtype
            axis = "clip" if name.startswith("clip") else "row"
            arr = group.create_array(name, shape=(len(data),), dtype=kind,
                                     chunks=(min(n, PLAN_CHUNK),),
                                     fill_value="" if kind is str else 0, dimension_names=(axis,))
            if len(data):
                arr[:] = data
        group.attrs.update(meta)
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

    def shard_committed(self, shard: int) -> bool:
        """True when the shard's status chunk is written and has no pending row."""
        start, stop = self.shard_range(shard)
        try:
            status = self.group["status"][start:stop]
        except Exception:  # a damaged status chunk: the shard is redone, which is always safe
            return False
        return bool(np.all(status != PENDING))

    def owned_shards(self, rank: int = 0, world: int = 1) -> list[int]:
        return list(range(rank, self.num_shards, world))

    def write_shard(self, shard: int, features: np.ndarray, counts: np.ndarray,
                    seconds: np.ndarray, status: np.ndarray, reason: list[str]) -> None:
        """Commit one whole shard: data and checksums first, then status (the commit marker)."""
        start, stop = self.shard_range(shard)
        n = stop - start
        assert features.shape[0] == counts.shape[0] == len(seconds) == len(status) == n
        assert len(reason) == n
        assert np.all(status != PENDING), "a committed shard has no pending rows"
        features = features.astype(self.features.dtype, copy=False)
        checks = np.array([stored_checksum(self.meta, start + i, features[i], counts[i],
                                           seconds[i], status[i], reason[i])
                           for i in range(n)], dtype=np.uint64)
        # Every file is written, even one equal to the fill value (all rows failed, no reasons):
        # a committed shard then has all its files, and a missing one is damage, never zeros.
        def put(name, values):
            self.group[name].with_config({"write_empty_chunks": True})[start:stop] = values

        put("features", features)
        put("counts", counts.astype(np.int32, copy=False))
        put("seconds", np.asarray(seconds, dtype=np.float64))
        put("reason", np.array(reason, dtype=str))
        put("checksum", checks)
        put("status", np.asarray(status, dtype=np.uint8))

    def status(self) -> np.ndarray:
        return read_rows(self.group["status"], self.shard_rows, fill=PENDING)[0]

    def disk_bytes(self) -> int:
        return self.location.total_bytes()


def open_group(path, mode: str = "r"):
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
    if attrs.get("format_version") not in READABLE_VERSIONS:
        raise UserError(f"{path} has cache format {attrs.get('format_version')!r}; this musilingo "
                        f"reads {', '.join(map(str, READABLE_VERSIONS))}: re-extract it")
    return group


def load_checked_plan(group, meta: dict, path) -> CachePlan:
    """The row plan, checked against the `plan_sha256` recorded at creation (format 2): a plan
    array or a metadata field edited since (swapped clip ids, another stride) is refused."""
    try:
        plan = CachePlan.load(group)
    except Exception as exc:
        raise UserError(f"{path}: the row plan cannot be read ({type(exc).__name__}: "
                        f"{_first_line(exc)}): the cache is damaged; run `musilingo cache verify "
                        f"{path}`") from None
    if int(meta.get("format_version", 1)) >= 2:
        expected = meta.get("plan_sha256")
        if not expected or plan_digest(plan.arrays(), meta) != expected:
            raise UserError(f"{path}: the row plan or the metadata changed after extraction (clip "
                            "ids, segments, stride, windows, dtype or encoder no longer match "
                            f"plan_sha256), so its rows cannot be trusted: run `musilingo cache "
                            f"verify {path}`, and re-extract into a new --out")
    return plan


def stored_checksum(meta: dict, row: int, features, counts, seconds, status, reason) -> int:
    """The checksum a row of this cache must carry (format 2: identity included)."""
    if int(meta.get("format_version", 1)) >= 2:
        return row_checksum(features, counts, seconds, status, reason, row=row,
                            plan=meta["plan_sha256"])
    return row_checksum(features, counts, seconds, status, reason)


def shard_file(name: str, shard: int, ndim: int) -> str:
    """The file (relative to the cache) that holds one cache shard of a row array."""
    return "/".join([name, "c", str(shard)] + ["0"] * (ndim - 1))


def missing_files(path, group, status: np.ndarray, shard_rows: int) -> list[str]:
    """Row-array files absent for shards whose status says committed (a deleted file would
    otherwise read back as Zarr's fill value: zeros). Format 1 writers skipped files equal to
    the fill value, so there only the row checksums can tell."""
    if int(group.attrs.get("format_version", 1)) < 2:
        return []
    path = Location(path)
    ndims = {name: len(group[name].shape) for name in ROW_ARRAYS}
    # One listing instead of a request per file: thousands of shards open in one round trip.
    present = {k for k, _ in path.keys()} if path.remote else None
    out = []
    for shard, start in enumerate(range(0, len(status), shard_rows)):
        if np.any(status[start:start + shard_rows] == PENDING):
            continue  # not committed: nothing is expected on disk yet
        out += [f for f in (shard_file(n, shard, d) for n, d in ndims.items())
                if not (f in present if present is not None else path.is_file(f))]
    return out


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else ""


def read_rows(array, shard_rows: int, fill=0) -> tuple[np.ndarray, list[int]]:
    """A whole per-row array, chunk by chunk, so one damaged chunk costs only its rows.

    Returns the values (damaged chunks filled with `fill`) and the shards that could not be read.
    """
    try:
        return array[:], []
    except Exception:
        pass
    out = np.full(array.shape, fill, dtype=array.dtype if array.dtype.kind not in "OUT" else object)
    bad = []
    for shard, start in enumerate(range(0, array.shape[0], shard_rows)):
        try:
            out[start:start + shard_rows] = array[start:start + shard_rows]
        except Exception:
            bad.append(shard)
    return out, bad


def disk_bytes(path) -> int:
    return Location(path).total_bytes()


__all__ = ["CachePlan", "CacheStore", "open_group", "load_checked_plan", "stored_checksum",
           "missing_files", "read_rows", "disk_bytes", "FAILED", "PENDING"]
