"""Planning an extraction: which clips, and which rows (segments) each gets, before any decoding.

    clips = clip_list(read_dataset("folder", None, "music/"), limit=100)
    plan = build_plan(clips, encoder, segment_seconds=30.0)

Row i is fixed here, from audio headers only (`musilingo.audio.probe`: no decoding, so an
hour-long file costs one header read), in the data set's clip order. Fixing rows up front is what
makes the job resumable and splittable: every process, every re-run, agrees on which shard holds
which row. Clips that cannot be used (audio missing, unreadable header, empty, shorter than one
encoder frame) get one failed row with the reason, so the cache records why they are absent.
"""
from __future__ import annotations

from array import array
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import AudioError, AudioInfo, probe
from ..cache.layout import clip_list_sha256
from ..cache.store import CachePlan
from ..features import segment_plan


@dataclass(frozen=True, slots=True)  # slots: 520k of them stay small
class ClipSource:
    """One clip to extract: its cache key and audio file (`missing`: the file is absent)."""

    clip_id: str
    audio_path: str
    missing: bool = False
    source: str = ""   # "<annotation file>:<line>" for messages
    error: str = ""    # why the clip is refused before any file is opened (path outside the root)


def clip_list(dataset, limit: int | None = None) -> list[ClipSource]:
    """Distinct clips of a `musilingo.data.DatasetRecords`: present ones first, then missing.

    `limit` keeps the first N clips of that order (so `--max-clips` is deterministic).
    """
    clips = [ClipSource(r.clip_id, str(r.audio_path), False, r.source) for r in dataset.clips()]
    seen = {c.clip_id for c in clips}
    for r in dataset.missing:
        if r.clip_id not in seen:
            seen.add(r.clip_id)
            clips.append(ClipSource(r.clip_id, str(r.audio_path), True, r.source))
    for r, reason in getattr(dataset, "refused", ()):
        if r.clip_id not in seen:
            seen.add(r.clip_id)
            clips.append(ClipSource(r.clip_id, str(r.audio_path), True, r.source, error=reason))
    return clips[:limit] if limit is not None else clips


def dataset_clips(cfg) -> tuple[list[ClipSource], str | None]:
    """The clip list of an ExtractConfig's data set (`--max-clips` applied) and the note to
    print about missing or refused audio (None when there is none).

    LP-MusicCaps-MSD (520k rows) is read column-wise without a Record per row, so that a re-run
    with nothing to do does not pay for every caption (`musilingo.data.msd.msd_clips`: the same
    list as `clip_list(read_dataset(...))`)."""
    from ..data import read_dataset
    from ..data.msd import msd_clips

    if cfg.dataset == "msd":
        clips, line, worth = msd_clips(cfg.annotations, cfg.audio_root, split=cfg.split,
                                       caption_field=cfg.caption_field,
                                       allow_outside_root=cfg.allow_outside_root,
                                       make=ClipSource)
        clips = clips[:cfg.max_clips] if cfg.max_clips is not None else clips
    else:
        records = read_dataset(cfg.dataset, cfg.annotations, cfg.audio_root, split=cfg.split,
                               caption_field=cfg.caption_field,
                               allow_outside_root=cfg.allow_outside_root)
        clips = clip_list(records, cfg.max_clips)
        line, worth = records.summary(), bool(records.missing or records.refused)
    return clips, line if worth else None


def clips_from_paths(paths, root=None) -> list[ClipSource]:
    """ClipSources for plain files (clip id = path relative to `root`, without suffix)."""
    out = []
    for p in paths:
        p = Path(p)
        cid = str(p.relative_to(root).with_suffix("")) if root else p.stem
        out.append(ClipSource(cid, str(p), not p.exists(), str(p)))
    return out


def fingerprint(clips: list[ClipSource]) -> str:
    return clip_list_sha256((c.clip_id, c.missing) for c in clips)


def check_unique(clips: list[ClipSource]) -> None:
    from ..errors import UserError

    seen = {}
    for c in clips:
        if c.clip_id in seen:
            raise UserError(f"clip id {c.clip_id!r} names two audio files ({seen[c.clip_id]} and "
                            f"{c.audio_path}): clip ids are the cache key and must be unique")
        seen[c.clip_id] = c.audio_path


def _probe(clip: ClipSource) -> AudioInfo | str:
    if clip.error:
        return clip.error
    if clip.missing:
        named = clip.source and clip.source != clip.audio_path
        where = f" (annotation {clip.source})" if named else ""
        return f"audio file not found: {clip.audio_path}{where}"
    try:
        return probe(clip.audio_path)
    except AudioError as exc:
        return str(exc)


PROBE_BATCH = 4096  # headers in flight at once: memory stays flat whatever the clip count


def build_plan(clips: list[ClipSource], encoder, segment_seconds: float,
               min_tail_seconds: float = 1.0, threads: int = 8) -> CachePlan:
    """Rows for every clip, from headers read in parallel (libsndfile releases the GIL), in
    bounded batches: no per-clip Future or AudioInfo outlives its batch."""
    errors = []
    # typed arrays: 8 bytes or fewer per value, not a Python object each
    rates, frames, channels, first, nrows = (array("i"), array("q"), array("i"), array("q"),
                                             array("i"))
    row_clip, row_segment, row_start, row_seconds = array("i"), array("i"), array("d"), array("d")
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for base in range(0, len(clips), PROBE_BATCH):
            batch = clips[base:base + PROBE_BATCH]
            for ci, info in enumerate(pool.map(_probe, batch, chunksize=64), start=base):
                error, segments = "", []
                if isinstance(info, str):
                    error = info
                else:
                    segments = segment_plan(encoder, info, segment_seconds, min_tail_seconds)
                    if not segments:
                        error = (f"audio shorter than one encoder frame "
                                 f"({info.seconds * 1000:.1f} ms; needs {encoder.min_samples} "
                                 f"samples at {encoder.sample_rate} Hz = "
                                 f"{encoder.min_samples / encoder.sample_rate * 1000:.1f} ms)")
                ok = not isinstance(info, str)
                errors.append(error)
                rates.append(info.sample_rate if ok else 0)
                frames.append(info.frames if ok else 0)
                channels.append(info.channels if ok else 0)
                first.append(len(row_clip))
                if error:  # one failed row records the clip and its reason
                    segments = [None]
                nrows.append(len(segments))
                for k, seg in enumerate(segments):
                    row_clip.append(ci)
                    row_segment.append(k)
                    row_start.append(seg.start if seg else 0.0)
                    row_seconds.append(seg.seconds if seg else (info.seconds if ok else 0.0))
    return CachePlan(
        clip_id=[c.clip_id for c in clips], clip_path=[c.audio_path for c in clips],
        clip_error=errors, clip_sample_rate=np.array(rates, dtype=np.int32),
        clip_frames=np.array(frames, dtype=np.int64),
        clip_channels=np.array(channels, dtype=np.int32),
        clip_first_row=np.array(first, dtype=np.int64),
        clip_num_rows=np.array(nrows, dtype=np.int32),
        row_clip=np.array(row_clip, dtype=np.int32),
        row_segment=np.array(row_segment, dtype=np.int32),
        row_start=np.array(row_start, dtype=np.float64),
        row_planned_seconds=np.array(row_seconds, dtype=np.float64))
