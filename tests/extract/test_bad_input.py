"""Bad input: every kind of unusable or unusual audio is recorded (failed with a reason, or done
correctly), never fatal unless --strict; caches made differently are refused with the reason."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from musilingo.cache import FeatureCache
from musilingo.cache.layout import FAILED
from musilingo.errors import UserError
from musilingo.extract.plan import ClipSource, clips_from_paths
from musilingo.features.sources import EncoderSource

from tests.helpers.extraction import extract

SR_TONE = 2.0  # seconds of each synthetic clip


def tone(sr, seconds=SR_TONE, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 1234 * t)
    return np.stack([wave * (0.5 + 0.1 * c) for c in range(channels)], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "a_empty.wav").write_bytes(b"")
    (d / "b_garbage.wav").write_bytes(b"this is not audio at all" * 100)
    sf.write(d / "c_tiny.wav", tone(24000, 0.01), 24000)          # 240 samples < 400 (one frame)
    sf.write(d / "d_silence.wav", np.zeros((48000, 1), np.float32), 24000)
    sf.write(d / "e_6ch.wav", tone(48000, channels=6), 48000)
    sf.write(d / "f_8k.wav", tone(8000), 8000, subtype="PCM_16")
    sf.write(d / "g_96k.flac", tone(96000), 96000)
    sf.write(d / "h_good.ogg", tone(22050), 22050)
    return d


@pytest.fixture(scope="module")
def bad_cache(bad_folder, tiny_encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("badc") / "c.zarr"
    clips = clips_from_paths(sorted(bad_folder.iterdir()), root=bad_folder)
    clips.append(ClipSource("z_missing", str(bad_folder / "nope.wav"), True, "notes.csv:7"))
    extract(clips, out, tiny_encoder)
    return FeatureCache.open(out)


def reason_of(cache, clip_id):
    reasons = {c: r for c, _, r in cache.failures()}
    assert clip_id in reasons, f"{clip_id} did not fail"
    return reasons[clip_id]


def test_zero_length_file(bad_cache):
    assert "empty" in reason_of(bad_cache, "a_empty")


def test_corrupt_file(bad_cache):
    assert "cannot decode b_garbage.wav" in reason_of(bad_cache, "b_garbage")


def test_shorter_than_one_frame(bad_cache):
    assert "shorter than one encoder frame" in reason_of(bad_cache, "c_tiny")


def test_missing_audio_is_recorded_not_fatal(bad_cache):
    reason = reason_of(bad_cache, "z_missing")
    assert "not found" in reason and "notes.csv:7" in reason
    assert bad_cache.status_counts() == {"pending": 0, "done": 5, "failed": 4}
    assert not bad_cache.has("z_missing") and bad_cache.segments("z_missing") == []


def test_silence_is_finite(bad_cache):
    (seg,) = bad_cache.segments("d_silence")
    assert np.all(np.isfinite(seg.features)) and seg.counts.tolist() == [149]


@pytest.mark.parametrize("clip_id", ["e_6ch", "f_8k", "g_96k", "h_good"])
def test_channels_and_rates_match_online(bad_cache, bad_folder, tiny_encoder, clip_id):
    """6 channels are averaged, 8/22.05/48/96 kHz resampled to 24 kHz, exactly as online."""
    (seg,) = bad_cache.segments(clip_id)
    path = next(bad_folder.glob(clip_id + ".*"))
    (ref,) = EncoderSource(tiny_encoder, stride=325, segment_seconds=5.0).segments(str(path))
    assert seg.seconds == pytest.approx(SR_TONE, abs=1e-3) and seg.counts.tolist() == [149]
    scale = np.abs(ref.features).max()
    np.testing.assert_allclose(seg.features, ref.features, rtol=2e-3, atol=2e-3 * scale)


def test_strict_makes_the_first_failure_fatal(bad_folder, tiny_encoder, tmp_path):
    """A clip that fails at planning stops a --strict run before anything is written."""
    clips = clips_from_paths(sorted(bad_folder.iterdir()), root=bad_folder)
    with pytest.raises(UserError, match="a_empty.*empty.*--strict"):
        extract(clips, tmp_path / "s.zarr", tiny_encoder, strict=True)
    assert not (tmp_path / "s.zarr").exists()


def test_decode_failure_during_extraction(bad_folder, tiny_encoder, tmp_path, monkeypatch):
    """A file that breaks after planning: recorded per row (or fatal with --strict)."""
    import musilingo.extract.job as job

    clips = clips_from_paths([bad_folder / "h_good.ogg", bad_folder / "f_8k.wav"], root=bad_folder)
    real = job.read_segment

    def flaky(path, *a, **k):
        if str(path).endswith("f_8k.wav"):
            from musilingo.audio import AudioError
            raise AudioError("cannot decode f_8k.wav at 0.0s: simulated")
        return real(path, *a, **k)

    monkeypatch.setattr(job, "read_segment", flaky)
    with pytest.raises(UserError, match="f_8k.*simulated.*--strict"):
        extract(clips, tmp_path / "strict.zarr", tiny_encoder, strict=True, shard_rows=1)
    cache = FeatureCache.open(tmp_path / "strict.zarr")
    assert cache.status_counts() == {"pending": 1, "done": 1, "failed": 0}  # shard 0 kept
    extract(clips, tmp_path / "strict.zarr", tiny_encoder, shard_rows=1)  # resume, not strict
    cache = FeatureCache.open(tmp_path / "strict.zarr")
    assert cache.failures() == [("f_8k", 0, "cannot decode f_8k.wav at 0.0s: simulated")]


def test_fp16_overflow_is_caught(bad_folder, tiny_encoder, tmp_path, monkeypatch):
    clips = clips_from_paths([bad_folder / "h_good.ogg"], root=bad_folder)
    real = tiny_encoder.encode_pooled   # what the job calls: window means of every state
    monkeypatch.setattr(tiny_encoder, "encode_pooled",
                        lambda waves, stride: (real(waves, stride)[0] * 1e6, real(waves, stride)[1]))
    extract(clips, tmp_path / "h.zarr", tiny_encoder)
    cache = FeatureCache.open(tmp_path / "h.zarr")
    assert "float16 range" in reason_of(cache, "h_good")
    extract(clips, tmp_path / "f.zarr", tiny_encoder, storage_dtype="float32")
    (seg,) = FeatureCache.open(tmp_path / "f.zarr").segments("h_good")
    assert np.abs(seg.features).max() > 65504


def test_refuses_to_mix_encoders_strides_dtypes(bad_folder, tiny_encoder, tmp_path):
    from musilingo.models.encoders.hubert import FrozenEncoder, build_random_encoder

    clips = clips_from_paths([bad_folder / "h_good.ogg"], root=bad_folder)
    out = tmp_path / "c.zarr"
    extract(clips, out, tiny_encoder)
    with pytest.raises(UserError, match=r"--stride 325 .* asks for 65"):
        extract(clips, out, tiny_encoder, stride=65)
    with pytest.raises(UserError, match=r"--storage-dtype float16 .* asks for float32"):
        extract(clips, out, tiny_encoder, storage_dtype="float32")
    with pytest.raises(UserError, match="--segment-seconds"):
        extract(clips, out, tiny_encoder, segment_seconds=10.0)
    other = FrozenEncoder.load(str(build_random_encoder(
        tmp_path / "other", seed=3, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=256, conv_dim=[64] * 7, num_conv_pos_embeddings=32,
        num_conv_pos_embedding_groups=4)))
    with pytest.raises(UserError, match="encoder weights .* refusing to mix"):
        extract(clips, out, other)
    with pytest.raises(UserError, match="different clip list"):
        extract(clips + [ClipSource("x", clips[0].audio_path)], out, tiny_encoder)
    with pytest.raises(UserError, match="does not divide 325"):
        extract(clips, tmp_path / "d.zarr", tiny_encoder, stride=100)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(UserError, match="not a feature cache"):
        extract(clips, tmp_path / "junk", tiny_encoder)
    # the refused runs changed nothing
    assert FeatureCache.open(out).status_counts() == {"pending": 0, "done": 1, "failed": 0}
    assert FeatureCache.open(out).segments("h_good")[0].features.shape[0] == 3


def test_failed_rows_hold_zeros(bad_cache):
    status = bad_cache.status
    rows = np.flatnonzero(status == FAILED)
    feats = bad_cache.group["features"]
    for r in rows:
        assert not np.any(feats[int(r)]) and not np.any(bad_cache.counts[r])


def test_a_symlink_loop_is_named_as_such_not_as_missing(tmp_path):
    from musilingo.audio import AudioError, probe

    loop = tmp_path / "loop.wav"
    loop.symlink_to(loop)
    with pytest.raises(AudioError, match="Too many levels of symbolic links"):
        probe(loop)
    with pytest.raises(AudioError, match="audio file not found"):
        probe(tmp_path / "absent.wav")
    with pytest.raises(AudioError, match="not a regular file"):
        probe(tmp_path)
