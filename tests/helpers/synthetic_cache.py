"""A synthetic cache written through the real writer (no encoder: fast, and every value known)."""
from __future__ import annotations

import numpy as np

from musilingo.cache.layout import DONE, FAILED, build_meta
from musilingo.cache.store import CachePlan, CacheStore

L, W, D, STRIDE, SHARD = 3, 4, 8, 65, 4
IDENTITY = {"encoder": "synthetic", "config_sha256": "c", "weights_sha256": "w",
            "sample_rate": 24000, "frame_rate": 75.0, "hidden_size": D, "num_hidden_states": L}


def make_plan(rows_per_clip, errors=None):
    errors = errors or {}
    ids = [f"clip{i}" for i in range(len(rows_per_clip))]
    first = np.concatenate([[0], np.cumsum(rows_per_clip)[:-1]]).astype(np.int64)
    row_clip = np.repeat(np.arange(len(ids)), rows_per_clip).astype(np.int32)
    row_segment = (np.arange(len(row_clip)) - first[row_clip]).astype(np.int32)
    n = len(ids)
    return CachePlan(ids, [f"/audio/{c}.wav" for c in ids], [errors.get(c, "") for c in ids],
                     np.full(n, 24000, np.int32), np.full(n, 24000 * 4, np.int64),
                     np.ones(n, np.int32), first, np.array(rows_per_clip, np.int32), row_clip,
                     row_segment, row_segment * 4.0, np.full(len(row_clip), 4.0))


def write_synthetic(path, rows_per_clip=(3, 1, 2, 1, 2), failed_rows=(3,), pending_shards=(),
                    dtype="float16", seed=0):
    """Rows of random window means; the last row of each clip has a short last window."""
    rng = np.random.default_rng(seed)
    plan = make_plan(list(rows_per_clip))
    meta = build_meta(encoder_identity=IDENTITY, encoder_dtype="float32", stride=STRIDE, windows=W,
                      segment_seconds=4.0, min_tail_seconds=1.0, dtype=dtype,
                      rows=plan.num_rows, clips=plan.num_clips, shard_rows=SHARD,
                      dataset={"name": "synthetic"}, clip_list_sha256="x")
    store = CacheStore.create(path, plan, meta)
    expect = {}
    for s in range(store.num_shards):
        if s in pending_shards:
            continue
        a, b = store.shard_range(s)
        n = b - a
        feats = np.zeros((n, L, W, D), np.float32)
        counts = np.zeros((n, W), np.int32)
        seconds, status, reason = np.zeros(n), np.full(n, DONE, np.uint8), [""] * n
        for i, row in enumerate(range(a, b)):
            if row in failed_rows:
                status[i], reason[i] = FAILED, f"synthetic failure of row {row}"
                continue
            last = plan.row_segment[row] == plan.clip_num_rows[plan.row_clip[row]] - 1
            w = 3 if last else W
            counts[i, :w] = STRIDE
            if last:
                counts[i, w - 1] = 20
            feats[i, :, :w] = rng.standard_normal((L, w, D))
            seconds[i] = (counts[i].sum() - 1) * 320 / 24000 + 400 / 24000
            expect[row] = (feats[i, :, :w].astype(dtype).astype(np.float32), counts[i, :w].copy())
        store.write_shard(s, feats, counts, seconds, status, reason)
    if not pending_shards:  # what the end of an extraction does
        store.build_index()
    return plan, expect


