"""Training and inference lay a long clip out as the same audio tokens (one joining rule)."""
from __future__ import annotations

import numpy as np

from musilingo.features import PooledSegment


class Segments:
    """A feature source over fixed segments: training's (num_segments/segment) and inference's
    (segments) interfaces."""

    online = False

    def __init__(self, segs):
        self.segs = segs

    def num_segments(self, example):
        return len(self.segs)

    def segment(self, example, i):
        return self.segs[i]

    def segments(self, key):
        return list(self.segs)


def test_training_and_inference_build_identical_adapter_inputs_for_a_long_clip():
    from musilingo.infer.items import _clip_features
    from musilingo.train.data import Example, example_features

    rng = np.random.default_rng(0)
    # A 100 s track in 30 s segments at stride 65 (factor 5): 35, 35, 35 and 16 windows.
    segs = [PooledSegment(rng.standard_normal((3, w, 4)).astype(np.float32),
                          np.array([65] * (w - 1) + [30], np.int32), 30.0 * i, 30.0)
            for i, w in enumerate([35, 35, 35, 16])]
    source = Segments(segs)
    example = Example("track", "track.wav", "Q?", "A.", "test")
    for budget in (3, 7, 9, 17, 100):
        f_train, c_train = example_features(example, source, mode="concat", seed=0, epoch=0,
                                            factor=5, max_audio_tokens=budget)
        f_infer, c_infer, _, _ = _clip_features(source, "track", 5, budget, {})
        np.testing.assert_array_equal(c_train, c_infer)
        np.testing.assert_array_equal(f_train, f_infer)
        tokens = int(np.count_nonzero(c_train.reshape(-1, 5).sum(1)))
        assert tokens == min(budget, 7 + 7 + 7 + 4)
