"""An hour-long file: planned from its header, extracted segment by segment, memory bounded.

Decoding it whole would hold 115 MB of float32 at 8 kHz and 346 MB once resampled to 24 kHz;
the job must stay far below that. A stand-in encoder (frame statistics with MERT's framing)
keeps the 120 segments fast: the memory behaviour under test is the job's, not the encoder's.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from musilingo.cache import FeatureCache
from musilingo.extract.plan import build_plan, clips_from_paths

from tests.helpers.extraction import extract

HOUR = 3600
SR = 8000


@pytest.fixture(scope="module")
def hour_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "hour.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        for minute in range(60):  # written a minute at a time: the test itself stays small
            t = np.arange(60 * SR) / SR
            f.write((0.2 * np.sin(2 * np.pi * (220 + minute) * t)
                     + 0.01 * rng.standard_normal(len(t))).astype(np.float32))
    assert path.stat().st_size > 57e6
    return path


class FrameStats:
    """MERT's framing (400-sample window, 320 hop at 24 kHz), hidden states = frame mean/std."""

    sample_rate, hidden_size, num_hidden_states, min_samples = 24000, 2, 2, 400

    def num_frames(self, n):
        return max(0, (n - 400) // 320 + 1)

    def identity(self):
        return {"encoder": "frame-stats", "config_sha256": "0", "weights_sha256": "0",
                "sample_rate": 24000, "frame_rate": 75.0, "hidden_size": 2, "num_hidden_states": 2}

    def encode(self, waves):
        import torch

        x = torch.from_numpy(np.stack(waves))
        frames = x[:, : self.num_frames(x.shape[1]) * 320].unflatten(1, (-1, 320))
        h = torch.stack([frames.mean(-1), frames.std(-1)], -1)        # [B, T, 2]
        return torch.stack([h, h * 2], 1)                              # [B, 2, T, 2]


@pytest.fixture(scope="module")
def micro_encoder():
    return FrameStats()


def test_plan_reads_only_the_header(hour_file, micro_encoder):
    tracemalloc.start()
    plan = build_plan(clips_from_paths([hour_file]), micro_encoder, segment_seconds=30.0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5e6  # one header read: no decoding, whatever the file's length
    assert plan.num_rows == 120 and plan.row_start[-1] == 3570.0
    assert not plan.clip_error[0]


def test_hour_long_file_memory_stays_bounded(hour_file, micro_encoder, tmp_path):
    out = tmp_path / "hour.zarr"
    clips = clips_from_paths([hour_file])
    tracemalloc.start()  # numpy buffers (decoded and resampled audio) are traced
    extract(clips, out, micro_encoder, segment_seconds=30.0, shard_rows=16, batch_size=4)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak traced memory {peak / 1e6:.1f} MB")
    assert peak < 30e6, f"peak traced memory {peak / 1e6:.0f} MB: something holds the whole file"
    # the measure is not blind: decoding 5 minutes at once is seen (its 5 x 60 x 8000 x 4 B
    # float32 read buffer; soxr's output is not traced), so the whole hour would show >= 115 MB
    from musilingo.audio import read_segment

    tracemalloc.start()
    read_segment(hour_file, 0.0, 300.0, 24000)
    _, five_minutes = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert five_minutes > 9.6e6, five_minutes
    cache = FeatureCache.open(out)
    segs = cache.segments("hour")
    assert len(segs) == 120 and cache.status_counts()["done"] == 120
    assert [s.start for s in segs] == [30.0 * i for i in range(120)]
    assert all(s.counts.tolist() == [325] * 6 + [299] for s in segs)


def test_the_progress_bar_of_long_recordings_ends_at_its_total(micro_encoder, tmp_path, capsys):
    """The bar counts clips, a long recording's rows each adding its share: it must never pass
    its total or show a negative time left (reported once on long recordings)."""
    import re

    paths = []
    for name, seconds in (("five_minutes", 300), ("one_minute", 65)):
        path = tmp_path / f"{name}.wav"
        sf.write(path, (0.1 * np.random.default_rng(1).standard_normal(seconds * SR))
                 .astype(np.float32), SR)
        paths.append(path)
    extract(clips_from_paths(paths), tmp_path / "c.zarr", micro_encoder, segment_seconds=30.0,
            shard_rows=4, batch_size=2, progress=True)
    err = capsys.readouterr().err.replace("\r", "\n")
    counts = [(float(a), float(b)) for a, b in re.findall(r"\| (\d+)/(\d+) \[", err)]
    assert counts and counts[-1] == (2.0, 2.0), err[-500:]
    assert all(n <= total for n, total in counts)
    assert not re.search(r"<-\d", err)                      # no negative ETA
