"""Fixtures for the extraction tests: a folder of short real recordings, and
one reference cache of it (stride 325, fp16, 5 s segments, 2-row shards, 1 thread) that the
exactness, resume and torchrun tests all compare against. Helpers: tests/helpers/extraction.py."""
from __future__ import annotations

import shutil

import pytest

from tests.helpers.extraction import REAL, REF_ARGS
from musilingo.extract.job import ExtractConfig, run_extract


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


@pytest.fixture(scope="session")
def ref_cache(real_folder, tiny_encoder, tmp_path_factory):
    """The uninterrupted, single-process cache of `real_folder` through the CLI's reader."""
    from musilingo.data import read_dataset
    from musilingo.extract.plan import clip_list

    out = tmp_path_factory.mktemp("ref") / "ref.zarr"
    clips = clip_list(read_dataset("folder", None, real_folder))
    cfg = ExtractConfig(out=str(out), **REF_ARGS, decode_workers=1, progress=False)
    info = {"name": "folder", "split": None, "limit": None, "annotations": None,
            "audio_root": str(real_folder)}
    run_extract(clips, cfg, info, encoder=tiny_encoder, log=lambda *_: None)
    return out
