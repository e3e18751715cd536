"""Reading the feature cache: per-clip pooled segments, every row checked.

    cache = FeatureCache.open("cache.zarr")
    cache.meta["stride"], cache.clip_ids[:3], cache.status_counts()
    for seg in cache.segments("some_clip"):        # list[musilingo.features.PooledSegment]
        seg.features                              # float32 [L+1, w, D], padding windows dropped

Random access is the training workload, so the small per-row tables (status, counts, seconds,
checksums, the plan) are read once into memory at open: from the row index of a finished cache,
a handful of objects whatever its size (`rows.row_tables`), and the clip-id lookup is built on
first use. A row's features are one `features[row]` call (one inner chunk of a shard;
docs/REFERENCE.md section 5: `oindex` on sharded arrays is ~13x slower than a loop of single-row
reads). Training, inference and scoring read a cache through `features.sources.CacheSource`,
which opens one reader per DataLoader worker.

Nothing is trusted: opening checks the plan digest (which clip and segment every row is, and the
metadata that gives rows their meaning) and that every commit record is readable; every
`read_row` recomputes the row's checksum (a lost features file reads back as zeros and fails it,
and the error then names the missing file). Damage stops the reader with one line naming the
cache, the row and its clip, and `musilingo cache verify` (`bad_rows="skip"` leaves bad rows out
of `segments()` and counts them in `skipped` instead).
"""
from __future__ import annotations


import numpy as np

from ..errors import UserError
from ..features import PooledSegment
from .location import Location
from .layout import DONE, FAILED, STATUS_NAMES
from .rows import committed_of, distinct_sorted, missing_features, row_tables
from .store import READER_PLAN, load_checked_plan, open_group, stored_checksum


class BadRowError(UserError):
    """A row that fails its checksum or cannot be decoded."""


class FeatureCache:
    """Read-only view of a cache: clip ids, pooled segments, status counts."""

    def __init__(self, path, group, bad_rows: str = "error"):
        if bad_rows not in ("error", "skip"):
            raise ValueError("bad_rows is 'error' or 'skip'")
        location = Location(path)
        self.path, self.remote = str(location), location.remote
        self.group = group
        self.meta = dict(group.attrs)
        self.bad_rows, self.skipped = bad_rows, []
        self.fetched_bytes = 0   # feature bytes read so far (what a remote store was asked for)
        self.shard_rows = int(self.meta["shard_rows"])
        # only what reading rows needs stays: 6 of the 12 plan arrays (paths, header fields
        # and planned lengths are hashed and dropped: ~1/3 of the memory at 5M clips)
        self.plan = load_checked_plan(group, self.meta, path, keep=READER_PLAN)
        tables = row_tables(location, group, self.meta)
        if tables.bad_shards:
            shard, why = tables.bad_shards[0]
            raise UserError(f"{path}: the commit record of shard {shard} (commits/{shard}.json) "
                            f"cannot be read ({why}): the cache is damaged; run `musilingo cache "
                            f"verify {path} --reset-damaged`, then the extract command again")
        self.status, self.counts, self.seconds = tables.status, tables.counts, tables.seconds
        self.checksums, self.reasons = tables.checksum, tables.reason
        self.shard_bytes = tables.shard_bytes  # features file sizes at commit (-1: pending)
        self._features = group["features"]
        self._clip_index_map = None
        self._first_done = None   # clip number -> first done row, built on first use
        if not self.remote:  # one directory listing; a remote store pays per 1000 shards, so
            # there a lost file is caught by the checksums of the rows read from it instead
            self._refuse_lost(committed_of(self.status, self.shard_rows).tolist())

    def _refuse_lost(self, shards) -> None:
        """A UserError naming the first of `shards` whose features file is gone."""
        lost = missing_features(self.path, self._features, shards)
        if lost:
            (shard, name), more = lost[0], len(lost) - 1
            raise UserError(f"{self.path}: {name} is missing"
                            + (f" (and {more} more files)" if more else "")
                            + f" although shard {shard} is committed: the cache is damaged; run "
                            f"`musilingo cache verify {self.path} --reset-damaged`, then the "
                            "extract command again")

    def _done_clips(self) -> np.ndarray:
        return distinct_sorted(self.plan.row_clip[self.status == DONE])

    def _clip_number(self, clip_id: str) -> int | None:
        """The clip's number in the plan, or None; the lookup is built on first use."""
        if self._clip_index_map is None:
            self._clip_index_map = self.plan.clip_id.lookup()
        return self._clip_index_map(str(clip_id))

    def first_done_rows(self, ids) -> np.ndarray:
        """Each clip id's first done row, -1 where the clip has none: one Arrow hash lookup
        for the whole list (an annotation column of 520k ids), no Python call per id."""
        import pyarrow as pa
        import pyarrow.compute as pc

        col = self.plan.clip_id
        known = pa.LargeStringArray.from_buffers(len(col), pa.py_buffer(col.offsets),
                                                 pa.py_buffer(col.data))
        ids = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(ids)
        number = pc.index_in(ids.cast(pa.large_string()), value_set=known)
        number = np.asarray(number.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
        if self._first_done is None:
            done = np.flatnonzero(self.status == DONE)
            clips, first = np.unique(self.plan.row_clip[done], return_index=True)
            self._first_done = np.full(len(col), -1, dtype=np.int64)
            self._first_done[clips] = done[first]
        return np.where(number >= 0, self._first_done[np.maximum(number, 0)], -1)

    @property
    def clip_ids(self) -> list[str]:
        """Clips with at least one done row, in cache order."""
        return [self.plan.clip_id[i] for i in self._done_clips()]

    @classmethod
    def open(cls, path, *, bad_rows: str = "error") -> "FeatureCache":
        return cls(path, open_group(path, mode="r"), bad_rows=bad_rows)

    # -- metadata -------------------------------------------------------------------------
    @property
    def stride(self) -> int:
        return int(self.meta["stride"])

    @property
    def layers(self) -> int:
        return int(self.meta["layers"])

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def num_rows(self) -> int:
        return int(self.meta["rows"])

    def clip_count(self) -> int:
        """Clips with at least one done row (without building the list of their ids)."""
        return len(self._done_clips())

    def status_counts(self) -> dict[str, int]:
        """{"done": n, "failed": n, "pending": n} over rows."""
        return {name: int(np.sum(self.status == code)) for code, name in STATUS_NAMES.items()}

    def failures(self) -> list[tuple[str, int, str]]:
        """(clip_id, segment, reason) of every failed row."""
        rows = np.flatnonzero(self.status == FAILED)
        return [(self.plan.clip_id[self.plan.row_clip[r]], int(self.plan.row_segment[r]),
                 str(self.reasons[r])) for r in rows]

    # -- rows -----------------------------------------------------------------------------
    def has(self, clip_id: str) -> bool:
        """True if the clip has at least one done row."""
        i = self._clip_number(clip_id)
        if i is None:
            return False
        first, n = int(self.plan.clip_first_row[i]), int(self.plan.clip_num_rows[i])
        return bool(np.any(self.status[first:first + n] == DONE))

    def rows(self, clip_id: str) -> list[int]:
        """The done rows of a clip, in segment order."""
        i = self._clip_number(clip_id)
        if i is None:
            raise KeyError(f"clip {clip_id!r} is not in the cache {self.path}")
        first, n = int(self.plan.clip_first_row[i]), int(self.plan.clip_num_rows[i])
        return [r for r in range(first, first + n) if self.status[r] == DONE]

    def _bad(self, row: int, what: str) -> BadRowError:
        clip = self.plan.clip_id[self.plan.row_clip[row]]
        return BadRowError(f"{self.path}: row {row} (clip {clip!r} segment "
                           f"{int(self.plan.row_segment[row])}) {what}: the cache is damaged; run "
                           f"`musilingo cache verify {self.path}`")

    def check_row(self, row: int, stored: np.ndarray) -> None:
        """A `BadRowError` unless `stored` (the row's features as stored) matches its checksum."""
        expect = stored_checksum(self.meta, row, stored, self.counts[row], self.seconds[row],
                                 self.status[row], str(self.reasons[row]))
        if expect != int(self.checksums[row]):
            self._refuse_lost([row // self.shard_rows])  # zeros read from a lost file
            raise self._bad(row, "does not match its checksum")

    def read_row(self, row: int) -> PooledSegment:
        """One row as float32, padding windows (count 0) dropped; checked against its checksum
        (a `BadRowError` names the row when it does not match)."""
        try:
            stored = self._features[row]
        except Exception as exc:  # crc32c mismatch or a truncated shard file
            raise self._bad(row, f"cannot be read ({type(exc).__name__})") from None
        self.fetched_bytes += stored.nbytes
        return self._segment(row, stored)

    def _segment(self, row: int, stored: np.ndarray) -> PooledSegment:
        self.check_row(row, stored)
        counts = self.counts[row]
        w = int(np.count_nonzero(counts))
        features = np.asarray(stored[:, :w], dtype=np.float32)
        return PooledSegment(features, counts[:w].astype(np.int32), float(self.plan.row_start[row]),
                             float(self.seconds[row]))

    def read_shard(self, shard: int) -> dict[int, PooledSegment]:
        """{row: segment} of every done row of one shard, from ONE read of its features: the
        access pattern an object store wants (one request per shard, not one per row)."""
        a = shard * self.shard_rows
        b = min(self.num_rows, a + self.shard_rows)
        done = [r for r in range(a, b) if self.status[r] == DONE]
        if not done:
            return {}
        try:
            block = self._features[done[0]:done[-1] + 1]
        except Exception:  # a damaged chunk: row by row, so that the error names the row
            return {r: self.read_row(r) for r in done}
        self.fetched_bytes += block.nbytes
        return {r: self._segment(r, block[r - done[0]]) for r in done}

    def segments(self, clip_id: str) -> list[PooledSegment]:
        """A clip's done segments, in order (a failed middle segment is simply absent; with
        `bad_rows="skip"`, so is a damaged one, recorded in `skipped`)."""
        out = []
        for r in self.rows(clip_id):
            try:
                out.append(self.read_row(r))
            except BadRowError as exc:
                if self.bad_rows != "skip":
                    raise
                self.skipped.append((r, str(exc)))
        return out

