"""Reading the feature cache: per-clip pooled segments, and a torch Dataset over them.

    cache = FeatureCache.open("cache.zarr")
    cache.meta["stride"], cache.clip_ids[:3], cache.status_counts()
    for seg in cache.segments("some_clip"):        # list[musilingo.features.PooledSegment]
        seg.features                              # float32 [L+1, w, D], padding windows dropped
    ds = CacheDataset("cache.zarr")               # items: (clip_id, segment) of done rows
    loader = DataLoader(ds, batch_size=8, collate_fn=CacheDataset.collate, num_workers=2)

Random access is the training workload, so the small per-row tables (status, counts, seconds,
the plan) are read once into memory at open, and a row's features are one `features[row]` call
(one inner chunk of a shard; docs/REFERENCE.md section 5: `oindex` on sharded arrays is ~13x
slower than a loop of single-row reads). A `CacheDataset` opens its cache lazily in each DataLoader worker.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import zarr

from ..errors import UserError
from ..features import PooledSegment
from .layout import DONE, FAILED, FORMAT, PENDING, STATUS_NAMES
from .pooling import layer_mean, repool
from .store import CachePlan, read_rows


class FeatureCache:
    """Read-only view of a cache: clip ids, pooled segments, status counts."""

    def __init__(self, path: Path, group):
        self.path = Path(path)
        self.group = group
        self.meta = dict(group.attrs)
        if self.meta.get("format") != FORMAT:
            raise UserError(f"{path} is not a musilingo feature cache (no '{FORMAT}' attribute)")
        shard_rows = int(self.meta["shard_rows"])
        self.plan = CachePlan.load(group)
        self.status, self.damaged_shards = read_rows(group["status"], shard_rows, fill=PENDING)
        self.counts, bad_counts = read_rows(group["counts"], shard_rows)
        self.seconds, bad_seconds = read_rows(group["seconds"], shard_rows)
        for shard in set(bad_counts) | set(bad_seconds):  # unreadable row tables: not usable
            self.status[shard * shard_rows:(shard + 1) * shard_rows] = PENDING
        self.damaged_shards = sorted(set(self.damaged_shards) | set(bad_counts) | set(bad_seconds))
        self._features = group["features"]
        self._clip_index = {cid: i for i, cid in enumerate(self.plan.clip_id)}
        done_clips = np.unique(self.plan.row_clip[self.status == DONE])
        self.clip_ids: list[str] = [self.plan.clip_id[i] for i in done_clips]
        """Clips with at least one done row, in cache order."""

    @classmethod
    def open(cls, path) -> "FeatureCache":
        path = Path(path)
        if not (path / "zarr.json").is_file():
            raise UserError(f"no feature cache at {path} (expected a Zarr group made by "
                            "`musilingo extract`)")
        return cls(path, zarr.open_group(str(path), mode="r", zarr_format=3))

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

    def status_counts(self) -> dict[str, int]:
        """{"done": n, "failed": n, "pending": n} over rows."""
        return {name: int(np.sum(self.status == code)) for code, name in STATUS_NAMES.items()}

    def failures(self) -> list[tuple[str, int, str]]:
        """(clip_id, segment, reason) of every failed row."""
        rows = np.flatnonzero(self.status == FAILED)
        if not len(rows):
            return []
        reasons = read_rows(self.group["reason"], int(self.meta["shard_rows"]), fill="")[0]
        return [(self.plan.clip_id[self.plan.row_clip[r]], int(self.plan.row_segment[r]),
                 str(reasons[r])) for r in rows]

    # -- rows -----------------------------------------------------------------------------
    def has(self, clip_id: str) -> bool:
        """True if the clip has at least one done row."""
        i = self._clip_index.get(clip_id)
        if i is None:
            return False
        first, n = int(self.plan.clip_first_row[i]), int(self.plan.clip_num_rows[i])
        return bool(np.any(self.status[first:first + n] == DONE))

    def rows(self, clip_id: str) -> list[int]:
        """The done rows of a clip, in segment order."""
        i = self._clip_index.get(clip_id)
        if i is None:
            raise KeyError(f"clip {clip_id!r} is not in the cache {self.path}")
        first, n = int(self.plan.clip_first_row[i]), int(self.plan.clip_num_rows[i])
        return [r for r in range(first, first + n) if self.status[r] == DONE]

    def read_row(self, row: int) -> PooledSegment:
        """One row as float32, padding windows (count 0) dropped."""
        counts = self.counts[row]
        w = int(np.count_nonzero(counts))
        try:
            stored = self._features[row]
        except Exception as exc:  # crc32c mismatch or a truncated shard file
            raise UserError(f"row {row} of {self.path} cannot be read ({type(exc).__name__}): the "
                            "cache is damaged; run `musilingo cache verify` on it") from None
        features = np.asarray(stored[:, :w], dtype=np.float32)
        return PooledSegment(features, counts[:w].astype(np.int32), float(self.plan.row_start[row]),
                             float(self.seconds[row]))

    def segments(self, clip_id: str) -> list[PooledSegment]:
        """A clip's done segments, in order (a failed middle segment is simply absent)."""
        return [self.read_row(r) for r in self.rows(clip_id)]

    def tokens(self, clip_id: str, t: int = 325) -> list[torch.Tensor]:
        """The adapter input per segment: layer mean, windows re-pooled to `t` frames."""
        return [segment_tokens(seg, self.stride, t) for seg in self.segments(clip_id)]


def segment_tokens(seg: PooledSegment, stride: int, t: int = 325) -> torch.Tensor:
    """[L+1, w, D] window means at `stride` -> [ceil(w*stride/t), D] adapter input at `t`."""
    if t % stride:
        raise UserError(f"cannot re-pool a stride-{stride} cache to t = {t}: t must be a "
                        f"multiple of {stride}")
    means, _ = repool(torch.from_numpy(seg.features), torch.from_numpy(seg.counts), t // stride)
    return layer_mean(means)


class CacheDataset(torch.utils.data.Dataset):
    """(clip_id, segment) items of done rows; each a dict of tensors (see `__getitem__`).

    `clip_ids` restricts it to some clips (e.g. a split); `t` adds the adapter input re-pooled
    to `t` frames as "tokens". Safe to use with DataLoader workers: each opens its own reader.
    """

    def __init__(self, path, clip_ids=None, t: int | None = None):
        self.path = Path(path)
        self.t = t
        cache = FeatureCache.open(self.path)
        wanted = cache.clip_ids if clip_ids is None else [c for c in clip_ids if cache.has(c)]
        self.items: list[tuple[str, int, int]] = []  # (clip_id, segment, row)
        for cid in wanted:
            for r in cache.rows(cid):
                self.items.append((cid, int(cache.plan.row_segment[r]), r))
        self._cache = cache

    def __getstate__(self):  # DataLoader workers re-open the cache themselves
        state = dict(self.__dict__)
        state["_cache"] = None
        return state

    @property
    def cache(self) -> FeatureCache:
        if self._cache is None:
            self._cache = FeatureCache.open(self.path)
        return self._cache

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        clip_id, segment, row = self.items[i]
        seg = self.cache.read_row(row)
        item = {"clip_id": clip_id, "segment": segment, "start": seg.start, "seconds": seg.seconds,
                "features": torch.from_numpy(seg.features), "counts": torch.from_numpy(seg.counts)}
        if self.t is not None:
            item["tokens"] = segment_tokens(seg, self.cache.stride, self.t)
        return item

    @staticmethod
    def collate(items: list[dict]) -> dict:
        """Pad windows to the longest item: features [B, L+1, W, D], counts [B, W] (0 = pad)."""
        width = max(it["counts"].shape[0] for it in items)
        first = items[0]["features"]
        feats = first.new_zeros((len(items), first.shape[0], width, first.shape[2]))
        counts = torch.zeros((len(items), width), dtype=torch.int32)
        for b, it in enumerate(items):
            w = it["counts"].shape[0]
            feats[b, :, :w] = it["features"]
            counts[b, :w] = it["counts"]
        out = {"clip_id": [it["clip_id"] for it in items],
               "segment": torch.tensor([it["segment"] for it in items]),
               "start": torch.tensor([it["start"] for it in items], dtype=torch.float64),
               "seconds": torch.tensor([it["seconds"] for it in items], dtype=torch.float64),
               "features": feats, "counts": counts}
        if "tokens" in items[0]:
            out["tokens"] = [it["tokens"] for it in items]
        return out
