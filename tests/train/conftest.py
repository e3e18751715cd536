"""Fixtures for the training tests: a small synthetic music set, float32 feature caches of it
made by the real extraction job with the tiny encoder, and a helper that builds a TrainConfig.

Clips are 3 s (225 encoder frames). `cache` pools at stride 65 in one segment per clip (t=130 gives
2 audio tokens); `cache_2seg` cuts each clip into two 1.5 s segments (random/concat segments)."""
from __future__ import annotations

import pytest
import torch

from musilingo.train.config import TrainConfig


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny matrices: with 2 OpenMP threads on a busy 2-core machine every matmul pays ~40 ms of
    # thread wake-up; one thread is 10-50x faster here and deterministic.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    from musilingo.synth import generate

    return generate(tmp_path_factory.mktemp("synth") / "set", n_train=16, n_test=0, seconds=3.0,
                    workers=1)


def _extract(synth, out, segment_seconds):
    from musilingo.data import read_dataset
    from musilingo.extract.job import ExtractConfig, run_extract
    from musilingo.extract.plan import clip_list

    clips = clip_list(read_dataset("synth", synth, None))
    cfg = ExtractConfig(out=str(out), encoder="tiny", stride=65, segment_seconds=segment_seconds,
                        storage_dtype="float32", decode_workers=0, progress=False, shard_rows=8,
                        batch_size=4)
    run_extract(clips, cfg, {"name": "synth"}, log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def cache(synth, tmp_path_factory):
    return _extract(synth, tmp_path_factory.mktemp("cache") / "synth.zarr", 3.0)


@pytest.fixture(scope="session")
def cache_2seg(synth, tmp_path_factory):
    return _extract(synth, tmp_path_factory.mktemp("cache2") / "synth2.zarr", 1.5)


@pytest.fixture
def make_cfg(synth, cache, tmp_path):
    def make(**kw) -> TrainConfig:
        base = dict(stage="pretrain", datasets=[{"name": "synth", "annotations": str(synth / "captions.csv")}],
                    cache=str(cache), llm="tiny-llama", t=130, batch_size=4, max_steps=4,
                    lr=3e-2, min_lr=3e-3, warmup_steps=1, dtype="fp32", deepspeed="zero0",
                    out=str(tmp_path / "run"), num_workers=0, save_every=100, progress=False)
        base.update(kw)
        return TrainConfig.from_dict(base)
    return make
