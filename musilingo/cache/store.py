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
numbers; per-row blake2b checksums catch everything else (`cache verify`).
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec

from .layout import FAILED, PENDING, PLAN_ARRAYS, row_checksum

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

    def __init__(self, path: Path, group):
        self.path = Path(path)
        self.group = group
        self.meta = dict(group.attrs)
        self.shard_rows = int(self.meta["shard_rows"])
        self.num_rows = int(self.meta["rows"])
        self.num_shards = -(-self.num_rows // self.shard_rows)
        self.features = group["features"]

    @classmethod
    def create(cls, path, plan: CachePlan, meta: dict) -> "CacheStore":
        """Write an empty cache (plan tables, metadata) atomically: a crash leaves no half store."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.creating")
        shutil.rmtree(tmp, ignore_errors=True)  # a creation killed earlier: nothing of value
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
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
        tmp.replace(path)
        return cls.open(path)

    @classmethod
    def open(cls, path, mode: str = "r+") -> "CacheStore":
        return cls(Path(path), zarr.open_group(str(path), mode=mode, zarr_format=3))

    def load_plan(self) -> CachePlan:
        return CachePlan.load(self.group)

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
        checks = np.array([row_checksum(features[i], counts[i], seconds[i], status[i], reason[i])
                           for i in range(n)], dtype=np.uint64)
        g = self.group
        g["features"][start:stop] = features
        g["counts"][start:stop] = counts.astype(np.int32, copy=False)
        g["seconds"][start:stop] = np.asarray(seconds, dtype=np.float64)
        g["reason"][start:stop] = np.array(reason, dtype=str)
        g["checksum"][start:stop] = checks
        g["status"][start:stop] = np.asarray(status, dtype=np.uint8)

    def status(self) -> np.ndarray:
        return read_rows(self.group["status"], self.shard_rows, fill=PENDING)[0]

    def disk_bytes(self) -> int:
        return disk_bytes(self.path)


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
    total = 0
    for p in Path(path).rglob("*"):
        if p.is_file():
            total += p.stat().st_size
    return total


__all__ = ["CachePlan", "CacheStore", "read_rows", "disk_bytes", "FAILED", "PENDING"]
