"""Channel mixing: the fast mix must equal numpy's mean exactly (caches are bit-compared)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from musilingo.audio import mix_to_mono, read_segment


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_mix_to_mono_is_bitwise_numpy_mean(channels):
    data = np.random.default_rng(channels).standard_normal((48_001, channels)).astype(np.float32)
    data[::7] *= 1e-4        # values of very different sizes: rounding order would show
    mono = mix_to_mono(data)
    assert mono.dtype == np.float32 and mono.flags.c_contiguous
    assert np.array_equal(mono, data.mean(axis=1))


def test_read_segment_mixes_a_stereo_file(tmp_path):
    rng = np.random.default_rng(0)
    left, right = rng.uniform(-0.5, 0.5, 24_000), rng.uniform(-0.5, 0.5, 24_000)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1).astype(np.float32), 24_000, subtype="FLOAT")
    wave = read_segment(path, 0.0, 1.0, 24_000)
    expected = np.stack([left, right], axis=1).astype(np.float32).mean(axis=1)
    assert np.array_equal(wave, expected)        # same rate: no resampling, exactly the mix
