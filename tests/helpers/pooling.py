"""What the adapter reads from a cached segment, through the adapter's own pooling."""
from __future__ import annotations

import torch

from tests.helpers.models import adapter


def adapter_inputs(seg, stride: int, t: int = 325) -> torch.Tensor:
    """[L+1, w, D] window means at `stride` -> [ceil(w*stride/t), D]: the layer mean re-pooled
    to `t` frames, exactly as `AudioAdapter.pooled` computes it before its Linear."""
    layers, _, dim = seg.features.shape
    pool = adapter(dim, 8, layers, stride=stride, t=t)
    x, counts = pool.pooled(torch.from_numpy(seg.features)[None],
                               torch.from_numpy(seg.counts)[None])
    return x[0][counts[0] > 0]
