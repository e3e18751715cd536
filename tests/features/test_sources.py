"""Training and inference lay a long clip out as the same audio tokens (one joining rule)."""
from __future__ import annotations

import numpy as np

from musilingo.features import PooledSegment
from musilingo.features.sources import DictSource, EncoderSource


def test_training_and_inference_build_identical_adapter_inputs_for_a_long_clip():
    from musilingo.infer.items import _clip_features
    from musilingo.data import Item
    from musilingo.train.data import example_features

    rng = np.random.default_rng(0)
    # A 100 s track in 30 s segments at stride 65 (factor 5): 35, 35, 35 and 16 windows.
    segs = [PooledSegment(rng.standard_normal((3, w, 4)).astype(np.float32),
                          np.array([65] * (w - 1) + [30], np.int32), 30.0 * i, 30.0)
            for i, w in enumerate([35, 35, 35, 16])]
    source = DictSource({"track": segs})
    example = Item("test:1", "track", "Q?", "A.", audio_path="track.wav")
    for budget in (3, 7, 9, 17, 100):
        f_train, c_train = example_features(example, source, mode="concat", seed=0, epoch=0,
                                            factor=5, max_audio_tokens=budget)
        f_infer, c_infer, _, _ = _clip_features(source, "track", 5, budget, {})
        np.testing.assert_array_equal(c_train, c_infer)
        np.testing.assert_array_equal(f_train, f_infer)
        tokens = int(np.count_nonzero(c_train.reshape(-1, 5).sum(1)))
        assert tokens == min(budget, 7 + 7 + 7 + 4)


class CountingEncoder:
    """The tiny encoder, counting its forward passes."""

    def __init__(self, encoder):
        self.inner, self.calls = encoder, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_pooled(self, waves, stride):
        self.calls += 1
        return self.inner.encode_pooled(waves, stride)


def test_an_encoder_source_encodes_only_the_segments_used(tmp_path):
    """One protocol for training and inference, lazy: a random crop encodes one segment, a token
    budget stops encoding once full, and a second read of a segment encodes nothing."""
    import soundfile as sf

    from musilingo.features import join_segments
    from musilingo.models.encoders.hubert import FrozenEncoder

    path = tmp_path / "long.wav"
    t = np.arange(24000 * 10) / 24000
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 24000)
    encoder = CountingEncoder(FrozenEncoder.load("tiny"))
    source = EncoderSource(encoder, stride=65, segment_seconds=2.0)
    segs = source.segments(str(path))
    assert len(segs) == 5 and encoder.calls == 0            # planned from the header only
    third = segs[2]
    assert encoder.calls == 1 and third.start == 4.0
    f, c, used = join_segments(segs, 2, max_audio_tokens=3)  # 2 s = 150 frames = 3 windows -> 2 tokens
    assert used == 2 and encoder.calls == 3
    assert segs[2] is third and source.segments(str(path)) is segs and encoder.calls == 3
    everything = list(segs)
    assert len(everything) == 5 and encoder.calls == 5
