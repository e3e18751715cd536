"""Audio input: decode any file, downmix, resample, and cut it into bounded segments.

Every clip reaches the encoder through this module, so extraction and online training see the
same samples. Long files are never decoded whole: `plan_segments` cuts a track into consecutive
windows of `segment_seconds` from its header alone, and `read_segment` seeks to one window, so
memory stays bounded for an hour-long file. Decoding is libsndfile (wav, flac, ogg, mp3) through
`soundfile`; resampling is soxr (high quality). Failures raise `AudioError` with a reason that the
extraction job records per clip.
"""
from __future__ import annotations

import errno

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class AudioError(Exception):
    """This clip cannot be used; the message is the reason recorded in the cache."""


@dataclass(frozen=True)
class AudioInfo:
    path: str
    sample_rate: int
    frames: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


@dataclass(frozen=True)
class Segment:
    """One piece of a clip: `seconds` of audio starting at `start` (seconds into the file)."""

    index: int
    start: float
    seconds: float


def probe(path: str | Path) -> AudioInfo:
    """Read the header only. Raises AudioError for missing, empty or undecodable files."""
    path = Path(path)
    try:
        path.stat()
    except OSError as exc:  # absent, a symlink loop, a permission problem: say which
        if exc.errno == errno.ENOENT:
            raise AudioError(f"audio file not found: {path}") from None
        raise AudioError(f"cannot open {path}: {exc.strerror}") from None
    if not path.is_file():
        raise AudioError(f"not a regular file: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file is empty (0 bytes): {path}")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile's errors are RuntimeError/LibsndfileError with text
        raise AudioError(f"cannot decode {path.name}: {_one_line(exc)}") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"audio file has no samples: {path}")
    return AudioInfo(str(path), int(info.samplerate), int(info.frames), int(info.channels))


def plan_segments(seconds: float, segment_seconds: float = 30.0, min_seconds: float = 0.0,
                  min_tail_seconds: float = 1.0) -> list[Segment]:
    """Consecutive, non-overlapping segments covering a clip of `seconds`.

    The last segment may be short. A short tail is dropped when earlier segments exist and it is
    under `min_tail_seconds` (a fraction of a second makes a meaningless audio token); a clip
    shorter than `min_seconds` (one encoder frame) has no segments at all.
    """
    if segment_seconds <= 0:
        raise ValueError("segment_seconds must be positive")
    if seconds < min_seconds or seconds <= 0:
        return []
    n = max(1, math.ceil(seconds / segment_seconds - 1e-9))
    out = []
    for i in range(n):
        start = i * segment_seconds
        length = min(segment_seconds, seconds - start)
        if i > 0 and length < max(min_tail_seconds, min_seconds):
            break
        out.append(Segment(i, start, length))
    return out


def read_segment(path: str | Path, start: float, seconds: float, sample_rate: int,
                 info: AudioInfo | None = None) -> np.ndarray:
    """Decode `seconds` of audio from `start`, as float32 mono at `sample_rate`.

    Only the requested frames are decoded (libsndfile seeks), then channels are averaged and
    the result resampled with soxr.
    """
    info = info or probe(path)
    first = int(round(start * info.sample_rate))
    last = min(info.frames, first + int(round(seconds * info.sample_rate)))
    try:
        with sf.SoundFile(str(path)) as f:
            if first:
                f.seek(first)
            data = f.read(last - first, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"cannot decode {Path(path).name} at {start:.1f}s: {_one_line(exc)}") from None
    if data.shape[0] == 0:
        raise AudioError(f"no audio decoded from {Path(path).name} at {start:.1f}s")
    mono = mix_to_mono(data)
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"decoded audio has NaN/Inf samples: {Path(path).name}")
    return resample(mono, info.sample_rate, sample_rate)


def mix_to_mono(data: np.ndarray) -> np.ndarray:
    """[frames, channels] float32 -> [frames] channel mean, bitwise equal to
    `data.mean(axis=1)` (the same sequential float32 sum, then one division) but ~8x faster:
    numpy reduces a 2-wide inner axis slowly (24 ms of a 30 s stereo clip's 62 ms here)."""
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])
    mono = data[:, 0].copy()
    for c in range(1, data.shape[1]):
        mono += data[:, c]
    mono /= data.shape[1]
    return mono


def resample(wave: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate:
        return wave.astype(np.float32, copy=False)
    return soxr.resample(wave, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """The whole file (or its first `max_seconds`) as float32 mono at `sample_rate`."""
    info = probe(path)
    seconds = info.seconds if max_seconds is None else min(info.seconds, max_seconds)
    return read_segment(path, 0.0, seconds, sample_rate, info)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
