"""Pooled encoder features of one clip: the unit the cache stores and online training computes.

`PooledSegment` is what the cache reader returns for a row and what `sources.EncoderSource`
computes from audio on the fly, so cached and online training share every line after this point, and
`join_segments` is the one rule by which training and inference lay a long clip's segments out
as audio tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..audio import AudioInfo, plan_segments

# torch (and the pooling maths on it) load on first use: a cache reader, `cache info` and
# `cache verify` need PooledSegment and numpy, not 1.5 s of torch import.
if TYPE_CHECKING:
    import torch


@dataclass
class PooledSegment:
    """Window means of every hidden state for one segment of a clip."""

    features: np.ndarray   # float32 [L+1, W, D]: per-layer means over windows of `stride` frames
    counts: np.ndarray     # int32 [W]: frames in each window (the last may be short)
    start: float           # seconds into the audio file
    seconds: float         # segment length in seconds


def join_segments(segments, factor: int, max_audio_tokens: int | None = None) -> tuple:
    """A clip's pooled segments (objects with .features [L, w, D] and .counts [w]) joined into
    one `(features, counts, used)` of at most `max_audio_tokens` adapter tokens of `factor`
    windows each (None: no limit); `used` is how many segments contributed.

    The one rule training (`segments: concat`) and inference (a whole track, a chat) share, so a
    model is asked about inputs laid out exactly as in training: each segment is padded with empty
    (count-0) windows to whole tokens, so that re-pooling never merges one segment's short last
    window with the next segment's first, and the budget cuts at a token boundary, mid-segment if
    need be. `segments` may be a lazy iterable: reading stops once the budget is full."""
    feats, counts, tokens, used = [], [], 0, 0
    for seg in segments:
        pad = (-seg.counts.shape[0]) % factor
        f = np.pad(seg.features, ((0, 0), (0, pad), (0, 0)))
        c = np.pad(seg.counts, (0, pad))
        if max_audio_tokens is not None:
            room = (max_audio_tokens - tokens) * factor
            f, c = f[:, :room], c[:room]
        feats.append(f)
        counts.append(c)
        tokens += c.shape[0] // factor
        used += 1
        if max_audio_tokens is not None and tokens >= max_audio_tokens:
            break
    if not feats:
        raise ValueError("no segments")
    return np.concatenate(feats, axis=1), np.concatenate(counts), used


def segment_plan(encoder, info: AudioInfo, segment_seconds: float, min_tail_seconds: float = 1.0):
    """The segments of a clip for this encoder (none if shorter than one encoder frame)."""
    return plan_segments(info.seconds, segment_seconds,
                         min_seconds=encoder.min_samples / encoder.sample_rate,
                         min_tail_seconds=min_tail_seconds)


def encode_pooled(encoder, waves, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(window means [B, L+1, W, D] float32, counts [W]) of equal-length waves: the encoder's own
    `encode_pooled` (FrozenEncoder pools each hidden state as it is produced), or, for any object
    with just `encode` ([B, L+1, T, D]), pooling after it."""
    from .pooling import window_pool

    own = getattr(encoder, "encode_pooled", None)
    if own is not None:
        return own(waves, stride)
    means, counts = window_pool(encoder.encode(waves), stride)
    return means.float(), counts


def pool_hidden(hidden: torch.Tensor, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """[L+1, T, D] hidden states -> (float32 [L+1, W, D] window means, int32 [W] counts)."""
    from .pooling import window_pool

    means, counts = window_pool(hidden, stride)
    return means.float().cpu().numpy(), counts.numpy()
