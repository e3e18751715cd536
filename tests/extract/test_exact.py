"""Exactness: the cache feeds the adapter what the encoder would have, on real recordings.

The adapter input is mean-over-hidden-states of windows of t = 325 frames. From the cache it is
computed from stored window means (re-pooled to 325 when the base stride is finer); on the fly it
is computed from `FrozenEncoder.encode` of each segment. They must agree to storage precision.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from musilingo.cache import FeatureCache
from musilingo.features.pooling import pool_to_tokens
from musilingo.features import PooledSegment

from tests.helpers.extraction import extract, folder_clips
from tests.helpers.pooling import adapter_inputs


def online(encoder, path):
    """Per segment: (PooledSegment at stride 325, adapter input from the raw hidden states)."""
    from musilingo.audio import probe, read_segment
    from musilingo.features import pool_hidden, segment_plan

    info = probe(path)
    out = []
    for seg in segment_plan(encoder, info, 5.0):
        wave = read_segment(path, seg.start, seg.seconds, encoder.sample_rate, info)
        hidden = encoder.encode([wave])[0]                       # [L+1, T, D]
        feats, counts = pool_hidden(hidden, 325)
        out.append((PooledSegment(feats, counts, seg.start, len(wave) / encoder.sample_rate),
                    pool_to_tokens(hidden, 325)))
    return out


def fp16_close(a: torch.Tensor, b: torch.Tensor):
    # fp16 keeps 11 significant bits: relative error <= 2^-11 per stored value.
    scale = float(b.abs().max())
    assert a.shape == b.shape
    assert torch.allclose(a.float(), b.float(), rtol=2e-3, atol=2e-3 * scale), \
        float((a - b).abs().max())


def test_cache_equals_online_encoder(ref_cache, real_folder, tiny_encoder):
    cache = FeatureCache.open(ref_cache)
    paths = sorted(p for p in real_folder.rglob("*") if p.is_file())
    assert len(cache.clip_ids) == len(paths) == 5
    compared = 0
    for path in paths:
        clip_id = path.relative_to(real_folder).as_posix().rsplit(".", 1)[0]
        cached = [adapter_inputs(seg, cache.stride) for seg in cache.segments(clip_id)]
        ref = online(tiny_encoder, path)
        assert len(cached) == len(ref) > 0
        for c, seg, (ref_seg, ref_tokens) in zip(cached, cache.segments(clip_id), ref):
            fp16_close(c, ref_tokens)
            # start, length and window counts per segment are the online path's too
            assert seg.start == ref_seg.start and seg.seconds == pytest.approx(ref_seg.seconds)
            assert np.array_equal(seg.counts, ref_seg.counts)
            compared += 1
    assert compared >= 10  # the 30 s WAV alone has 6 segments


def test_stride_65_repools_to_stride_325(ref_cache, real_folder, tiny_encoder, tmp_path):
    fine = tmp_path / "s65.zarr"
    extract(folder_clips(real_folder), fine, tiny_encoder, stride=65)
    a, b = FeatureCache.open(fine), FeatureCache.open(ref_cache)
    assert a.meta["windows"] == 6 and b.meta["windows"] == 2  # 374 frames per 5 s segment
    assert a.clip_ids == b.clip_ids
    for clip_id in a.clip_ids:
        for sa, sb in zip(a.segments(clip_id), b.segments(clip_id)):
            assert sa.counts.sum() == sb.counts.sum()
            tokens_a = adapter_inputs(sa, 65, 325)
            fp16_close(tokens_a, adapter_inputs(sb, 325, 325))


def test_stride_65_float32_is_exact_to_rounding(real_folder, tiny_encoder, tmp_path):
    """With fp32 storage the re-pooled fine cache matches the encoder to float rounding."""
    out = tmp_path / "s65f32.zarr"
    clips = [c for c in folder_clips(real_folder) if "orchestra" in c.clip_id]
    extract(clips, out, tiny_encoder, stride=65, storage_dtype="float32")
    cache = FeatureCache.open(out)
    ref = [tokens for _, tokens in online(tiny_encoder, clips[0].audio_path)]
    cached = [adapter_inputs(seg, cache.stride) for seg in cache.segments(clips[0].clip_id)]
    assert len(cached) == len(ref) == 6
    for c, o in zip(cached, ref):
        assert torch.allclose(c, o, rtol=1e-4, atol=1e-5 * float(o.abs().max()))
