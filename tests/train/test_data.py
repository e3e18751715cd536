"""Example building and batch plans: mixing, rank shares, segment choice and concatenation."""
from __future__ import annotations

import numpy as np
import pytest

from musilingo.errors import UserError
from musilingo.models.prompts import CAPTION_QUESTION
from musilingo.train.config import DataSpec
from musilingo.cache import FeatureCache
from musilingo.features.sources import CacheSource
from musilingo.train.data import (Example, build_trainset, epoch_plan,
                                  example_features, mixing_probs, segment_choice, targets_of)


def test_epoch_plan_is_deterministic_and_mixes_as_asked():
    sizes = [10, 1000]
    equal = epoch_plan(sizes, mixing_probs(sizes, "equal"), 400, 4, seed=1, epoch=0)
    again = epoch_plan(sizes, mixing_probs(sizes, "equal"), 400, 4, seed=1, epoch=0)
    assert all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(equal, again))
    share = np.mean([d == 0 for d, _ in equal])
    assert 0.4 < share < 0.6                      # each batch from one set, equal probability
    prop = epoch_plan(sizes, mixing_probs(sizes, "proportional"), 400, 4, seed=1, epoch=0)
    assert np.mean([d == 0 for d, _ in prop]) < 0.05
    # Every batch has global-micro examples of its own set; a small set is cycled through
    # complete reshuffled passes (each example once per pass).
    small = np.concatenate([idx for d, idx in equal if d == 0])
    assert all(len(idx) == 4 for _, idx in equal) and small.max() < 10
    first_pass = small[:10]
    assert sorted(first_pass.tolist()) == list(range(10))
    other_epoch = epoch_plan(sizes, mixing_probs(sizes, "equal"), 400, 4, seed=1, epoch=1)
    assert [d for d, _ in other_epoch] != [d for d, _ in equal]
    with pytest.raises(UserError):
        mixing_probs(sizes, "weighted", [0, 0])
    assert mixing_probs(sizes, "weighted", [3, 1]).tolist() == [0.75, 0.25]


def test_targets_per_stage():
    class R:
        source = "file:1"

        def __init__(self, texts):
            self.texts = texts

    assert targets_of(R({"caption": "c"}), "pretrain", None) == (None, "c")
    assert targets_of(R({"caption": "c"}), "instruct", None) == (CAPTION_QUESTION, "c")
    assert targets_of(R({"question": "q", "answer": "a"}), "instruct", None) == ("q", "a")
    with pytest.raises(UserError, match="question/answer"):
        targets_of(R({"question": "q", "answer": "a"}), "pretrain", None)


def test_random_segment_per_epoch_and_concat(synth, cache_2seg):
    src = CacheSource(FeatureCache.open(cache_2seg))
    ts = build_trainset(DataSpec(name="synth", annotations=str(synth / "captions.csv")),
                        "pretrain", src, 0.0)
    ex = ts.examples[0]
    assert len(src.segments(ex.clip_id)) == 2
    segs = [src.segments(ex.clip_id)[i] for i in range(2)]
    assert [s.counts.tolist() for s in segs] == [[65, 47], [65, 47]]
    picks = {segment_choice(0, e, ex.clip_id, 2) for e in range(20)}
    assert picks == {0, 1}                         # a different crop across epochs
    f, c = example_features(ex, src, mode="random", seed=0, epoch=3, factor=2, max_audio_tokens=9)
    k = segment_choice(0, 3, ex.clip_id, 2)
    assert np.array_equal(f, segs[k].features) and np.array_equal(c, segs[k].counts)
    # concat with t = 3 x stride: each segment padded to whole tokens, never merged across.
    f, c = example_features(ex, src, mode="concat", seed=0, epoch=0, factor=3, max_audio_tokens=9)
    assert c.tolist() == [65, 47, 0, 65, 47, 0]
    assert np.array_equal(f[:, 3:5], segs[1].features) and not f[:, 2].any()
    f, c = example_features(ex, src, mode="concat", seed=0, epoch=0, factor=1, max_audio_tokens=3)
    assert c.tolist() == [65, 47, 65]


def test_rows_without_features_are_counted(synth, cache):
    src = CacheSource(FeatureCache.open(cache))
    ts = build_trainset(DataSpec(name="synth", annotations=str(synth)), "instruct", src, 0.0)
    assert ts.skipped == 0 and len(ts.examples) == 112
    ex = Example("nope", "/nowhere.wav", None, "x", "f:1")
    assert not src.has(ex.clip_id)
