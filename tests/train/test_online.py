"""The cache is exact end to end: for the same batches, cached and online features give the
same loss, and the same training run."""
from __future__ import annotations

import numpy as np
import pytest

from musilingo.models.encoders.hubert import FrozenEncoder
from musilingo.models.prompts import get_template
from musilingo.train import run
from musilingo.train.config import DataSpec
from musilingo.cache import FeatureCache
from musilingo.features.sources import CacheSource, EncoderSource
from musilingo.train.data import MicroBatches, build_trainset, epoch_plan
from tests.helpers.models import build_model


def test_cached_and_online_batches_give_the_same_loss(synth, cache_2seg):
    cached = CacheSource(FeatureCache.open(cache_2seg))
    online = EncoderSource(FrozenEncoder.load("tiny"), stride=65, segment_seconds=1.5, keep=0)
    spec = DataSpec(name="synth", annotations=str(synth))
    sets = {k: [build_trainset(spec, "instruct", src, 0.0)] for k, src in
            (("cache", cached), ("online", online))}
    assert [e.clip_id for e in sets["cache"][0].examples] == [e.clip_id for e in sets["online"][0].examples]
    model = build_model("tiny-llama", encoder_dim=128, num_layers=3, stride=65, t=130,
                        template=get_template("instruct"))
    n = len(sets["cache"][0].examples)
    plan = epoch_plan([n], np.array([1.0]), 3, 4, seed=0, epoch=0)
    for mode in ("random", "concat"):
        batches = {k: MicroBatches(v, plan, rank=0, micro=4, tokenizer=model.tokenizer,
                                   template=model.template, seed=0, epoch=0, factor=2, mode=mode,
                                   max_audio_tokens=8)
                   for k, v in sets.items()}
        for i in range(len(plan)):
            a, b = batches["cache"][i], batches["online"][i]
            assert a["counts"].tolist() == b["counts"].tolist()
            np.testing.assert_allclose(a["features"], b["features"], rtol=1e-4, atol=1e-5)
            assert model(a).item() == pytest.approx(model(b).item(), rel=1e-5)


def test_online_training_run_matches_the_cached_run(make_cfg, tmp_path):
    cached = run(make_cfg(out=str(tmp_path / "cached"), max_steps=3), log=lambda *a: None)
    online = run(make_cfg(out=str(tmp_path / "online"), max_steps=3, features="online"),
                 log=lambda *a: None)
    assert online.losses == pytest.approx(cached.losses, rel=1e-5)
