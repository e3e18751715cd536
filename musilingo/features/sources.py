"""Feature sources: where training, inference, scoring and the demo get a clip's pooled segments.

    source = EncoderSource(FrozenEncoder.load("tiny"), stride=325, segment_seconds=30)
    segs = source.segments("song.wav")         # keyed by audio file
    source = CacheSource(FeatureCache.open("cache.zarr"))
    segs = source.segments("ytid123")          # keyed by the cache's clip id
    len(segs), segs[0], join_segments(segs, factor, budget)

There is one protocol, `FeatureSource`, and every consumer goes through it. `segments(key)`
returns a lazy sequence of `PooledSegment`s: its length is known without computing anything, an
item is read (cache) or encoded (audio) only when asked for, and iteration stops at a long
clip's token budget without touching the rest. Training's random segment choice reads one
segment; its `concat` mode, inference's whole track and chat iterate. So cached and online
features, and training and inference, differ only in where a segment's window means come from.

A clip whose audio stops decoding part-way (a truncated file) yields the segments decoded before
that point, as extraction keeps them, with one warning; asking for a later segment by index is a
UserError naming the file.

This module imports neither the cache nor the models: `CacheSource` wraps an opened
`FeatureCache`, and re-opens it in DataLoader workers through the cache's own class.
"""
from __future__ import annotations

import math
import sys
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ..errors import UserError
from .segments import PooledSegment, encode_pooled, segment_plan


class FeatureSource(Protocol):
    """What a clip's pooled segments are read from."""

    online: bool      # True: computed from audio (keys are audio files); False: stored (clip ids)
    layers: int       # hidden states per segment (L+1)
    dim: int          # encoder width
    stride: int | None  # frames per stored window (None: unknown, in-memory features)
    identity: dict    # the encoder the features come from (cache metadata "encoder")

    def describe(self) -> str: ...

    def has(self, key) -> bool: ...

    def segments(self, key) -> Sequence[PooledSegment]: ...


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class _Lazy(Sequence):
    """Segments computed on first access and kept (a Q&A set asks many questions per clip)."""

    def __init__(self, n: int, compute):
        self._n, self._compute = n, compute
        self._done: dict = {}

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(i)
        i %= self._n
        if i not in self._done:
            self._done[i] = self._compute(i)
        return self._done[i]

    def __iter__(self):
        i = 0
        while i < self._n:
            try:
                item = self[i]
            except IndexError:
                if i >= self._n:  # shrunk: this segment and the rest failed to decode
                    return
                raise
            yield item
            i += 1


class EncoderSource:
    """Runs the frozen encoder over audio files, one segment at a time (bounded memory)."""

    online = True

    def __init__(self, encoder, *, stride: int, segment_seconds: float = 30.0,
                 min_tail_seconds: float = 1.0, keep: int = 32, paths: dict | None = None,
                 warn=_warn):
        if not (segment_seconds > 0 and math.isfinite(segment_seconds)):  # nan is refused too
            raise UserError(f"segment_seconds {segment_seconds} must be a positive number")
        self.encoder, self.stride = encoder, int(stride)
        self.segment_seconds, self.min_tail_seconds = float(segment_seconds), min_tail_seconds
        self.layers, self.dim = encoder.num_hidden_states, encoder.hidden_size
        self.identity = {"encoder": encoder.name, "normalize": encoder.normalize}
        self.paths, self.warn = paths, warn
        self._recent: OrderedDict = OrderedDict()
        self._keep = keep

    def describe(self) -> str:
        return f"encoder {self.encoder.name!r}"

    def fill_identity(self) -> dict:
        """The encoder's full identity (hashes every weight: seconds for MERT-330M)."""
        self.identity = dict(self.encoder.identity(), encoder=self.encoder.name)
        return self.identity

    def with_paths(self, paths: dict) -> "EncoderSource":
        """The same encoder keyed by clip id: `paths` maps clip ids to audio files."""
        other = object.__new__(EncoderSource)
        other.__dict__.update(self.__dict__, paths=dict(paths), _recent=OrderedDict())
        return other

    def _path(self, key) -> str:
        return str(self.paths.get(key, key)) if self.paths is not None else str(key)

    def has(self, key) -> bool:
        return Path(self._path(key)).is_file()

    def segments(self, key) -> Sequence[PooledSegment]:
        from ..audio import AudioError, probe

        path = self._path(key)
        if path in self._recent:
            self._recent.move_to_end(path)
            return self._recent[path]
        try:
            info = probe(path)
        except AudioError as exc:
            raise UserError(f"{path}: {exc}") from None
        plan = segment_plan(self.encoder, info, self.segment_seconds, self.min_tail_seconds)
        segs = _Lazy(len(plan), None)
        segs._compute = lambda i: self._encode(path, info, plan, segs, i)
        if self._keep:
            self._recent[path] = segs
            while len(self._recent) > self._keep:
                self._recent.popitem(last=False)
        return segs

    def _encode(self, path: str, info, plan, segs: _Lazy, i: int) -> PooledSegment:
        from ..audio import AudioError, read_segment

        seg = plan[i]
        try:
            wave = read_segment(path, seg.start, seg.seconds, self.encoder.sample_rate, info)
            if len(wave) < self.encoder.min_samples:
                raise AudioError(f"segment {i} decodes to {len(wave)} samples")
        except AudioError as exc:
            if i == 0 or i - 1 not in segs._done:
                raise UserError(f"{path}: {exc}") from None
            segs._n = i  # the segments before this one stand, as extraction keeps them
            self.warn(f"{path}: segment {i} and later cannot be decoded ({exc}); using the "
                      f"first {i} segments")
            raise IndexError(i) from None
        means, counts = encode_pooled(self.encoder, [wave], self.stride)
        return PooledSegment(means[0].cpu().numpy(), counts.numpy(), seg.start,
                             len(wave) / self.encoder.sample_rate)


class CacheSource:
    """Reads a clip's done segments from an opened feature cache (`musilingo extract`).

    With `shard_reads` (the default for a remote cache) a row is served from its whole shard,
    read in one request and kept in a bounded LRU of `keep_shards` shards: with the trainer's
    shard-aware shuffle each shard is then fetched about once per epoch instead of once per row.
    `group(key)` is the shard a clip's first row lives in (what that shuffle groups by).

    `expect(keys)` says which clips this process reads next, in order; with `readahead` shards
    (2 by default for a remote cache) the first shards they need that are neither kept nor on
    their way are read by one background thread, so the next shard's request overlaps the
    work on the current one. A read error surfaces when the row is used, as without it."""

    online = False

    def __init__(self, cache, *, shard_reads: bool | None = None, keep_shards: int = 8,
                 readahead: int | None = None):
        self.cache, self.path = cache, str(cache.path)
        self.remote = bool(getattr(cache, "remote", False))  # readers in fresh processes only
        self.shard_reads = self.remote if shard_reads is None else bool(shard_reads)
        self.keep_shards = max(1, int(keep_shards))
        default = 2 if self.remote and self.shard_reads else 0
        self.readahead = default if readahead is None else max(0, int(readahead))
        self._shards: OrderedDict = OrderedDict()
        self._pending: dict = {}   # shard -> Future of cache.read_shard, from `expect`
        self._pool = None
        self.stride, self.layers, self.dim = cache.stride, cache.layers, cache.dim
        self.identity = dict(cache.meta.get("encoder") or {})

    def group(self, key) -> int:
        return self.cache.rows(str(key))[0] // self.cache.shard_rows

    def groups(self, keys):
        """`group` of every key at once (an Arrow column of clip ids), as a numpy array; -1
        where a clip has no features."""
        first = self.cache.first_done_rows(keys)
        return (first // self.cache.shard_rows) * (first >= 0) - (first < 0)

    def _row(self, row: int) -> PooledSegment:
        if not self.shard_reads:
            return self.cache.read_row(row)
        shard = row // self.cache.shard_rows
        if shard in self._shards:
            self._shards.move_to_end(shard)
        else:
            ahead = self._pending.pop(shard, None)
            self._shards[shard] = ahead.result() if ahead else self.cache.read_shard(shard)
            while len(self._shards) > self.keep_shards:
                self._shards.popitem(last=False)
        return self._shards[shard][row]

    def expect(self, keys) -> None:
        """Start background reads of the next shards that `keys` (in reading order) need."""
        if not (self.shard_reads and self.readahead):
            return
        from concurrent.futures import ThreadPoolExecutor

        for key in keys:
            if len(self._pending) >= self.readahead:
                return
            for row in (self.cache.rows(str(key)) if self.cache.has(str(key)) else ()):
                shard = row // self.cache.shard_rows
                if shard in self._shards or shard in self._pending:
                    continue
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(1, thread_name_prefix="shard-readahead")
                self._pending[shard] = self._pool.submit(self.cache.read_shard, shard)
                if len(self._pending) >= self.readahead:
                    return

    def __getstate__(self):  # DataLoader workers re-open the cache themselves
        state = {k: v for k, v in self.__dict__.items() if k not in ("cache", "_pool")}
        state["_shards"], state["_pending"], state["_pool"] = OrderedDict(), {}, None
        state["_reopen"] = (type(self.cache), self.cache.bad_rows)
        return state

    def __setstate__(self, state):
        cls, bad_rows = state.pop("_reopen")
        self.__dict__.update(state)
        self.cache = cls.open(self.path, bad_rows=bad_rows)

    def describe(self) -> str:
        return f"cache {self.path}"

    def fill_identity(self) -> dict:
        return self.identity

    def has(self, key) -> bool:
        return self.cache.has(str(key))

    def segments(self, key) -> Sequence[PooledSegment]:
        if not self.cache.has(str(key)):
            raise UserError(f"clip {key!r} has no extracted features in {self.path}: run "
                            "`musilingo extract` for it, or leave it out")
        rows = self.cache.rows(str(key))
        if self.cache.bad_rows == "skip":  # damaged rows are left out: read them all now
            return self.cache.segments(str(key))
        return _Lazy(len(rows), lambda i: self._row(rows[i]))


class DictSource:
    """Features already in memory: {key: [PooledSegment, ...]} (tests, notebooks)."""

    online = False

    def __init__(self, segments: dict):
        self._segments = dict(segments)
        first = next(iter(self._segments.values()))[0]
        self.layers, self.dim = first.features.shape[0], first.features.shape[-1]
        self.stride, self.identity = None, {}

    def describe(self) -> str:
        return "in-memory features"

    def fill_identity(self) -> dict:
        return self.identity

    def has(self, key) -> bool:
        return key in self._segments

    def segments(self, key) -> Sequence[PooledSegment]:
        try:
            return self._segments[key]
        except KeyError:
            raise UserError(f"no features for clip {key!r}") from None


class OverlaySource:
    """`base` plus a few clips held in memory under their own keys (the silence, noise and
    text-only controls of `score --run`: one probe clip every item can hear)."""

    def __init__(self, base, extra: dict):
        self.base, self.extra = base, dict(extra)
        self.online, self.layers, self.dim = base.online, base.layers, base.dim
        self.stride, self.identity = base.stride, base.identity

    def describe(self) -> str:
        return self.base.describe()

    def fill_identity(self) -> dict:
        return self.base.fill_identity()

    def has(self, key) -> bool:
        return key in self.extra or self.base.has(key)

    def segments(self, key) -> Sequence[PooledSegment]:
        return self.extra[key] if key in self.extra else self.base.segments(key)


def as_source(features) -> FeatureSource:
    """A source from a source, or from a dict {key: [PooledSegment, ...] | (features, counts)}."""
    if hasattr(features, "segments") and hasattr(features, "describe"):
        return features
    if isinstance(features, dict):
        def segs(v):
            if isinstance(v, tuple):  # (features [L, W, D], counts [W]): one segment
                return [PooledSegment(v[0], v[1], 0.0, 0.0)]
            return list(v)

        return DictSource({k: segs(v) for k, v in features.items()})
    raise TypeError("features must be a FeatureSource (EncoderSource, CacheSource) or a dict")
