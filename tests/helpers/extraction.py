"""Helpers shared by the extraction tests (fixtures are in conftest.py)."""
from __future__ import annotations

import numpy as np
import zarr

from musilingo.extract.job import ExtractConfig, run_extract
from musilingo.extract.plan import clips_from_paths

# Short real recordings (REFERENCE data): mono 22 kHz, stereo 44.1 kHz, speech, a 30 s WAV.
REAL = ["librosa-data/sorohanro_-_solo-trumpet-06.ogg",
        "librosa-data/sorohanro_-_solo-trumpet-06.hq.ogg",
        "librosa-data/456440__inspectorj__bird-whistling-robin-single-13.ogg",
        "librosa-data/198-209-0000.ogg",
        "lp-music-caps-samples/orchestra.wav"]
# The settings every comparison uses: the CLI flags and the same ExtractConfig.
# One CPU thread: float rounding depends on the thread count, and torchrun's processes get one.
REF_ARGS = dict(segment_seconds=5.0, shard_rows=2, batch_size=2, stride=325, storage_dtype="float16",
                threads=1)
REF_FLAGS = ["--segment-seconds", "5", "--shard-rows", "2", "--batch-size", "2", "--stride", "325",
             "--storage-dtype", "float16", "--encoder", "tiny", "--threads", "1"]


def folder_clips(folder):
    return clips_from_paths(sorted(p for p in folder.rglob("*") if p.is_file()), root=folder)


def extract(clips, out, encoder, **kw):
    """run_extract in-process, quietly, with the reference settings unless overridden."""
    kw = {**REF_ARGS, "threads": None, "decode_workers": 0, "progress": False, **kw}
    cfg = ExtractConfig(out=str(out), **kw)
    return run_extract(clips, cfg, {"name": "test"}, encoder=encoder, log=lambda *_: None)


def assert_same_cache(a, b):
    """Every array and every attribute identical (bitwise)."""
    from musilingo.cache.location import Location

    ga, gb = (zarr.open_group(store=Location(x).zarr_store(read_only=True), mode="r")
              for x in (a, b))
    assert dict(ga.attrs) == dict(gb.attrs)
    names = sorted(ga.array_keys())
    assert names == sorted(gb.array_keys())
    for name in names:
        x, y = ga[name][:], gb[name][:]
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), f"array {name} differs"
    la, lb = Location(a), Location(b)
    records = la.names("commits")
    assert records == lb.names("commits")
    for name in records:
        assert la.get(f"commits/{name}") == lb.get(f"commits/{name}"), f"commit record {name}"
