"""The pooling maths: fine windows re-pooled equal coarse windows, layer means commute."""
from __future__ import annotations

import pytest
import torch

from musilingo.features.pooling import layer_mean, repool, window_pool


@pytest.mark.parametrize("frames", [2249, 749, 325, 1, 650, 651])
def test_repool_fine_windows_equals_coarse(frames):
    hidden = torch.randn(4, frames, 16, dtype=torch.float32)
    fine, fine_counts = window_pool(hidden, 65)
    coarse, coarse_counts = window_pool(hidden, 325)
    merged, merged_counts = repool(fine, fine_counts, 5)
    assert torch.equal(merged_counts, coarse_counts)
    assert torch.allclose(merged, coarse, rtol=1e-5, atol=1e-6)
    assert torch.allclose(layer_mean(merged), layer_mean(coarse), atol=1e-6)
