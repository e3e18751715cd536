"""Pooled encoder features of one clip: the unit the cache stores and online training computes.

`PooledSegment` is what the cache reader returns for a row and what `pooled_features` computes
from audio on the fly, so cached and online training share every line after this point.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import AudioInfo, plan_segments, probe, read_segment
from .cache.pooling import window_pool


@dataclass
class PooledSegment:
    """Window means of every hidden state for one segment of a clip."""

    features: np.ndarray   # float32 [L+1, W, D]: per-layer means over windows of `stride` frames
    counts: np.ndarray     # int32 [W]: frames in each window (the last may be short)
    start: float           # seconds into the audio file
    seconds: float         # segment length in seconds


def segment_plan(encoder, info: AudioInfo, segment_seconds: float, min_tail_seconds: float = 1.0):
    """The segments of a clip for this encoder (none if shorter than one encoder frame)."""
    return plan_segments(info.seconds, segment_seconds,
                         min_seconds=encoder.min_samples / encoder.sample_rate,
                         min_tail_seconds=min_tail_seconds)


def pool_hidden(hidden: torch.Tensor, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """[L+1, T, D] hidden states -> (float32 [L+1, W, D] window means, int32 [W] counts)."""
    means, counts = window_pool(hidden, stride)
    return means.float().cpu().numpy(), counts.numpy()


def pooled_features(encoder, path: str | Path, *, stride: int = 325,
                    segment_seconds: float = 30.0, min_tail_seconds: float = 1.0,
                    max_segments: int | None = None) -> list[PooledSegment]:
    """Run the encoder over a clip, segment by segment (memory bounded for any length)."""
    info = probe(path)
    plan = segment_plan(encoder, info, segment_seconds, min_tail_seconds)
    out = []
    for seg in plan[:max_segments]:
        wave = read_segment(path, seg.start, seg.seconds, encoder.sample_rate, info)
        if len(wave) < encoder.min_samples:
            break
        hidden = encoder.encode([wave])[0]
        feats, counts = pool_hidden(hidden, stride)
        out.append(PooledSegment(feats, counts, seg.start, len(wave) / encoder.sample_rate))
    return out
