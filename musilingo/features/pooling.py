"""Window pooling: the maths that lets a cache replace the encoder exactly.

MusiLingo feeds the adapter `mean over layers` of the hidden states, averaged over
non-overlapping windows of t = 325 frames (a shorter last window averaged on its own). Means over
layers, over windows and the linear adapter all commute, so a cache can store per-layer window
means at a base stride s that divides t, plus each window's frame count, and any multiple of s
is recovered exactly later as a count-weighted mean of consecutive windows.

Windows with count 0 are padding (a segment shorter than the cache's row width) and carry no
weight.
"""
from __future__ import annotations

import math

import torch



def num_windows(frames: int, stride: int) -> int:
    return math.ceil(frames / stride)


def window_pool(hidden: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[..., T, D] -> (window means [..., ceil(T/stride), D], frame counts [W] int32).

    The means stay on `hidden`'s device (the extraction job pools on the GPU); counts are on
    the CPU.
    """
    frames = hidden.shape[-2]
    if frames == 0:
        raise ValueError("cannot pool zero frames")
    w = num_windows(frames, stride)
    counts = torch.full((w,), stride, dtype=torch.int32)
    counts[-1] = frames - (w - 1) * stride
    means = hidden.new_empty((*hidden.shape[:-2], w, hidden.shape[-1]))
    # One window at a time, summed in the hidden states' float32 (torch sums pairwise: a few ulp,
    # 1e-7 relative, three orders below fp16 storage; re-pooling a fine cache still matches a
    # coarse one to rounding only). A float64 copy of a 30 s MERT-330M segment's 25 x 2249 x
    # 1024 values plus a padded copy was ~1 GB and 6x slower: on CPU it cost 5% of extraction.
    acc = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    for k in range(w):
        a, b = k * stride, min(frames, (k + 1) * stride)
        means[..., k, :] = hidden[..., a:b, :].sum(-2, dtype=acc) / (b - a)
    return means, counts


def repool(means: torch.Tensor, counts: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge groups of `factor` consecutive windows.

    means [L, W, D] with counts [W], or batched means [B, L, W, D] with counts [B, W]
    -> means with ceil(W/factor) windows, and their counts. The result is the count-weighted
    mean, so re-pooling windows of stride s by factor k gives windows of stride k*s exactly.
    Groups whose counts are all zero (padding) come out as zeros with count 0.
    """
    if factor == 1:
        return means, counts
    batched = counts.dim() == 2
    w = means.shape[-2]
    groups = math.ceil(w / factor)
    pad = groups * factor - w
    x = means.to(torch.float64)
    c = counts.to(torch.float64)
    if pad:
        x = torch.nn.functional.pad(x, (0, 0, 0, pad))
        c = torch.nn.functional.pad(c, (0, pad))
    x = x.unflatten(-2, (groups, factor))                  # [(B,) L, G, k, D]
    c = c.unflatten(-1, (groups, factor))                  # [(B,) G, k]
    cw = c[:, None, :, :, None] if batched else c[None, :, :, None]
    total = c.sum(-1)                                      # [(B,) G]
    tw = total[:, None, :, None] if batched else total[None, :, None]
    pooled = (x * cw).sum(-2) / tw.clamp(min=1)
    return pooled.to(means.dtype), total.to(torch.int32)


def layer_mean(features: torch.Tensor, layer_dim: int = -3) -> torch.Tensor:
    """The paper's layer aggregation: a plain mean over all L+1 hidden states."""
    return features.mean(dim=layer_dim)


def pool_to_tokens(hidden: torch.Tensor, t: int) -> torch.Tensor:
    """Reference path, on the fly: [L+1, T, D] hidden states -> [ceil(T/t), D] adapter inputs."""
    means, _ = window_pool(hidden, t)
    return layer_mean(means)
