"""Where inference gets a clip's pooled features: the encoder on raw audio, or a feature cache.

    source = AudioSource(FrozenEncoder.load("tiny"), stride=325, segment_seconds=30)
    segs = source.segments("song.wav")          # list[PooledSegment], each with start/seconds
    source = CacheSource(FeatureCache.open("cache.zarr"))
    segs = source.segments("ytid123")           # keyed by the cache's clip id

Both hand back `musilingo.features.PooledSegment`s, the unit training consumed, so an answer
from raw audio and one from a cache of the same audio come from identical adapter inputs (up to
the cache's storage precision). `check_fits(adapter_config, ...)` refuses, with one line naming the run
folder and the feature source, features the adapter was not trained on: another encoder width or
layer count (a checkpoint from MERT-95M given MERT-330M features), or a cache stride that does
not divide the adapter's t.
"""
from __future__ import annotations

import math
import sys
from collections import OrderedDict
from pathlib import Path

from ..data.records import AUDIO_EXTENSIONS
from ..errors import UserError


def check_fits(config: dict, *, layers: int, dim: int, stride: int | None, where: str,
               run: str, encoder: dict | None = None) -> None:
    """A UserError unless features of (layers, dim, stride, encoder identity) suit the adapter
    described by `config` (adapter_config.json). Checked before any model is loaded."""
    if dim != config["encoder_dim"]:
        raise UserError(f"{run}: the adapter expects features {config['encoder_dim']} wide "
                        f"(adapter_config.json encoder_dim), but {where} gives {dim}: the "
                        "checkpoint was trained on another encoder; use that encoder or its cache")
    if layers != config["num_layers"]:
        raise UserError(f"{run}: the adapter expects {config['num_layers']} hidden states "
                        f"(adapter_config.json num_layers), but {where} gives {layers}: use the "
                        "encoder the checkpoint was trained with")
    if stride is not None and config["t"] % stride:
        raise UserError(f"{where} is pooled at stride {stride}, which does not divide the "
                        f"adapter's t = {config['t']} ({run}): use a cache extracted with a "
                        f"stride that divides {config['t']}")
    trained = config.get("encoder") or {}
    if "normalize" in trained and "normalize" in (encoder or {}) and \
            bool(trained["normalize"]) != bool(encoder["normalize"]):
        raise UserError(f"{run} was trained on features with wave normalisation "
                        f"{trained['normalize']}, but {where} has {encoder['normalize']}: use "
                        "features extracted with the training run's --normalize")
    theirs, ours = trained.get("weights_sha256"), (encoder or {}).get("weights_sha256")
    if theirs and ours and theirs != ours:
        raise UserError(f"{run} was trained on features of encoder {trained.get('encoder')!r} "
                        f"(weights {theirs}), but {where} comes from "
                        f"{(encoder or {}).get('encoder')!r} with other weights ({ours}): use "
                        "the training encoder")


class AudioSource:
    """Runs the frozen encoder over audio files, segment by segment (bounded memory)."""

    def __init__(self, encoder, *, stride: int, segment_seconds: float = 30.0,
                 min_tail_seconds: float = 1.0, keep: int = 32):
        if not (segment_seconds > 0 and math.isfinite(segment_seconds)):  # nan is refused too
            raise UserError(f"--segment-seconds {segment_seconds} must be a positive number")
        self.encoder, self.stride = encoder, stride
        self.segment_seconds, self.min_tail_seconds = float(segment_seconds), min_tail_seconds
        self.layers, self.dim = encoder.num_hidden_states, encoder.hidden_size
        self.identity = {"encoder": encoder.name, "normalize": encoder.normalize}
        self._recent: OrderedDict = OrderedDict()  # Q&A sets ask many questions about one clip
        self._keep = keep

    def describe(self) -> str:
        return f"encoder {self.encoder.name!r}"

    def fill_identity(self) -> dict:
        """The encoder's full identity (hashes every weight: seconds for MERT-330M)."""
        self.identity = dict(self.encoder.identity(), encoder=self.encoder.name)
        return self.identity

    def segments(self, key) -> list:
        """The pooled segments of audio file `key` (UserError if it cannot be decoded)."""
        from ..audio import AudioError
        from ..features import pooled_features

        key = str(key)
        if key in self._recent:
            self._recent.move_to_end(key)
            return self._recent[key]
        try:
            segs = pooled_features(self.encoder, key, stride=self.stride,
                                   segment_seconds=self.segment_seconds,
                                   min_tail_seconds=self.min_tail_seconds,
                                   on_error=lambda m: print(f"warning: {m}", file=sys.stderr))
        except AudioError as exc:
            raise UserError(f"{key}: {exc}") from None
        if not segs:
            raise UserError(f"{key}: shorter than one encoder frame; nothing to listen to")
        self._recent[key] = segs
        while len(self._recent) > self._keep:
            self._recent.popitem(last=False)
        return segs


class CacheSource:
    """Reads a clip's done segments from a feature cache (`musilingo extract`)."""

    def __init__(self, cache):
        self.cache = cache
        self.stride, self.layers, self.dim = cache.stride, cache.layers, cache.dim
        self.identity = dict(cache.meta.get("encoder") or {})

    def describe(self) -> str:
        return f"cache {self.cache.path}"

    def has(self, clip_id: str) -> bool:
        return self.cache.has(clip_id)

    def segments(self, key) -> list:
        if not self.cache.has(str(key)):
            raise UserError(f"clip {key!r} has no extracted features in {self.cache.path}: run "
                            "`musilingo extract` for it, or leave it out")
        return self.cache.segments(str(key))


class DictSource:
    """Features already in memory: {key: [PooledSegment, ...]} (tests, the demo)."""

    def __init__(self, segments: dict):
        self._segments = dict(segments)
        first = next(iter(self._segments.values()))[0]
        self.layers, self.dim = first.features.shape[0], first.features.shape[-1]
        self.stride, self.identity = None, {}

    def describe(self) -> str:
        return "in-memory features"

    def has(self, key) -> bool:
        return key in self._segments

    def segments(self, key) -> list:
        try:
            return self._segments[key]
        except KeyError:
            raise UserError(f"no features for clip {key!r}") from None


def as_source(features):
    """A source from a source object, or a dict {key: [PooledSegment...] | (features, counts)}."""
    if hasattr(features, "segments"):
        return features
    if isinstance(features, dict):
        from ..features import PooledSegment

        def segs(v):
            if isinstance(v, tuple):  # (features [L, W, D], counts [W]): one segment
                return [PooledSegment(v[0], v[1], 0.0, 0.0)]
            return list(v)

        return DictSource({k: segs(v) for k, v in features.items()})
    raise TypeError("features must be a source with .segments(key) or a dict")


def expand_audio(paths) -> list[Path]:
    """Audio files named, and those found (recursively, sorted) in the folders named."""
    files: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix in AUDIO_EXTENSIONS)
            if not found:
                raise UserError(f"{path}: folder holds no audio files "
                                f"({', '.join(sorted({e.lower() for e in AUDIO_EXTENSIONS}))})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path}: no such audio file or folder")
    return files
