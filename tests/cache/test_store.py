"""The store and its reader: round trip, plain-zarr access, what the adapter reads from it."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from musilingo.cache import FeatureCache
from musilingo.errors import UserError

from tests.helpers.pooling import adapter_inputs
from tests.helpers.synthetic_cache import D, L, STRIDE, write_synthetic


def test_reader_round_trip(synthetic):
    path, plan, expect = synthetic
    cache = FeatureCache.open(path)
    assert cache.meta["stride"] == STRIDE and cache.layers == L and cache.dim == D
    assert cache.status_counts() == {"pending": 0, "done": 8, "failed": 1}
    # clip1's only row (row 3) failed: it has no features; every other clip does
    assert cache.clip_ids == ["clip0", "clip2", "clip3", "clip4"]
    assert not cache.has("clip1") and cache.has("clip0") and not cache.has("nope")
    assert cache.failures() == [("clip1", 0, "synthetic failure of row 3")]
    for clip in cache.clip_ids:
        segs = cache.segments(clip)
        rows = cache.rows(clip)
        assert len(segs) == len(rows) == plan.clip_num_rows[plan.clip_id.index(clip)]
        for seg, row in zip(segs, rows):
            feats, counts = expect[row]
            assert seg.features.dtype == np.float32 and seg.counts.dtype == np.int32
            assert np.array_equal(seg.features, feats) and np.array_equal(seg.counts, counts)
            assert seg.start == plan.row_start[row]
    assert cache.segments("clip0")[-1].features.shape == (L, 3, D)  # padding window dropped
    with pytest.raises(KeyError):
        cache.segments("nope")
    with pytest.raises(UserError, match="no feature cache"):
        FeatureCache.open(path.parent / "absent.zarr")


def test_plain_zarr_python_reads_it(synthetic):
    """A user without musilingo: zarr alone gives features, counts, status, clip ids, metadata,
    and every array has a core Zarr v3 data type (no string extension another reader lacks)."""
    path, plan, expect = synthetic
    code = f"""
import sys, zarr, numpy as np
g = zarr.open_group({str(path)!r}, mode="r")
assert g.attrs["stride"] == {STRIDE} and g.attrs["encoder"]["encoder"] == "synthetic"
done = np.flatnonzero(g["status"][:] == 1)
row = int(done[-1])
off = g["clip_id_offsets"][:]
i = int(g["row_clip"][row])
clip = g["clip_id_bytes"][off[i]:off[i + 1]].tobytes().decode()
w = int(np.count_nonzero(g["counts"][row]))
print(clip, g["features"][row].shape, w, float(g["features"][row][0, 0, 0]))
kinds = {{str(g[name].dtype) for name in g.array_keys()}}
assert kinds <= {{"float16", "float32", "float64", "int32", "int64", "uint8", "uint64"}}, kinds
assert not any(m.startswith("musilingo") for m in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    clip, *_ = out.stdout.split()
    assert clip == "clip4"
    assert f"{float(expect[8][0][0, 0, 0]):.6g}"[:5] in out.stdout


def test_tokens_repool_the_stride_to_t(synthetic):
    path, plan, expect = synthetic
    cache = FeatureCache.open(path)
    (segment,) = cache.segments("clip3")
    tokens = adapter_inputs(segment, cache.stride, 325)
    feats, counts = expect[plan.clip_first_row[3]]
    # 65 + 65 + 20 frames all fall in one 325-frame window: count-weighted mean, then layer mean
    want = (feats * counts[None, :, None]).sum(1) / counts.sum()
    assert torch.allclose(tokens, torch.from_numpy(want.mean(0)).float()[None], atol=1e-6)
    with pytest.raises(UserError, match="not a multiple of the cache stride 65"):
        adapter_inputs(segment, cache.stride, 100)


def test_float32_store_and_pending_shards(tmp_path):
    plan, expect = write_synthetic(tmp_path / "f.zarr", dtype="float32", pending_shards=(1,))
    cache = FeatureCache.open(tmp_path / "f.zarr")
    assert cache.group["features"].dtype == np.float32
    assert cache.status_counts() == {"pending": 4, "done": 4, "failed": 1}
    # shard 1 (rows 4-7) is pending: clip2 and clip3 have nothing yet, clip4 only its row 8
    assert cache.clip_ids == ["clip0", "clip4"]
    assert [s.start for s in cache.segments("clip4")] == [4.0]


def test_string_columns_round_trip_look_up_and_hash_like_format_2():
    """Clip ids as bytes + offsets: every string back, the lookup exact (no prefix or truncated
    match), and the digest's bytes those of format 2's NUL-joined strings, block by block."""
    from musilingo.cache.layout import StringColumn

    strings = ["b", "a", "", "çà/é", "abc", "aaa", "x" * 40]
    col = StringColumn.from_strings(strings)
    assert list(col) == strings and col[-1] == "x" * 40 and col[1:3] == ["a", ""]
    find = col.lookup()
    assert [find(s) for s in strings] == list(range(len(strings)))
    assert [find(s) for s in ("ab", "abcd", "a\0", "x" * 41, "zz")] == [None] * 5
    for block in (1, 2, 3, 1 << 16):
        joined = b"".join(bytes(p) for p in col.joined_pieces(block=block))
        assert joined == "\0".join(strings).encode() and len(joined) == col.joined_length()
    empty = StringColumn.from_strings([])
    assert len(empty) == 0 and empty.lookup()("a") is None and empty.joined_length() == 0
