"""Fixtures for the extraction tests: the tiny encoder, a folder of short real recordings, and
one reference cache of it (stride 325, fp16, 5 s segments, 2-row shards) that the exactness,
resume and torchrun tests all compare against."""
from __future__ import annotations

import shutil

import pytest

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
REF_ARGS = dict(segment_seconds=5.0, shard_rows=2, batch_size=2, stride=325, dtype="float16",
                threads=1)
REF_FLAGS = ["--segment-seconds", "5", "--shard-rows", "2", "--batch-size", "2", "--stride", "325",
             "--dtype", "float16", "--encoder", "tiny", "--threads", "1"]


@pytest.fixture(scope="session")
def tiny_encoder():
    from musilingo.models.encoder import FrozenEncoder

    return FrozenEncoder.load("tiny")


@pytest.fixture(scope="session")
def real_folder(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("real") / "audio"
    folder.mkdir()
    for name in REAL:
        src = shared_data / "audio" / name
        sub = folder / name.split("/")[0]
        sub.mkdir(exist_ok=True)
        shutil.copy(src, sub / src.name)
    return folder


def folder_clips(folder):
    return clips_from_paths(sorted(p for p in folder.rglob("*") if p.is_file()), root=folder)


def extract(clips, out, encoder, **kw):
    kw = {**REF_ARGS, "threads": None, "num_workers": 0, "progress": False, **kw}
    cfg = ExtractConfig(out=str(out), **kw)
    return run_extract(clips, cfg, {"name": "test"}, encoder=encoder, log=lambda *_: None)


@pytest.fixture(scope="session")
def ref_cache(real_folder, tiny_encoder, tmp_path_factory):
    """The uninterrupted, single-process cache of `real_folder` through the CLI's reader."""
    from musilingo.data import read_dataset
    from musilingo.extract.plan import clip_list

    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    clips = clip_list(read_dataset("folder", None, real_folder))
    cfg = ExtractConfig(out=str(out), **REF_ARGS, num_workers=1, progress=False)
    info = {"name": "folder", "split": None, "limit": None, "annotations": None,
            "audio_root": str(real_folder)}
    run_extract(clips, cfg, info, encoder=tiny_encoder, log=lambda *_: None)
    return out


def assert_same_cache(a, b):
    """Every array and every attribute identical (bitwise)."""
    import numpy as np
    import zarr

    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    assert dict(ga.attrs) == dict(gb.attrs)
    names = sorted(ga.array_keys())
    assert names == sorted(gb.array_keys())
    for name in names:
        x, y = ga[name][:], gb[name][:]
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert np.array_equal(x, y), f"array {name} differs"
