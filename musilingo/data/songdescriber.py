"""Reader for the Song Describer Dataset (SDD) captions CSV.

Columns: `caption_id,track_id,caption,is_valid_subset,familiarity,artist_id,album_id,path,
duration`. One record per caption; several captions describe one track, so clip_id = track_id.
Audio = audio_root/`path` (e.g. `34/1004034.mp3`); the SDD audio release names its files
`<track_id>.2min.mp3` (2-minute excerpts), so that variant is used when the plain one is absent.

Split: SDD is an evaluation-only set, and `is_valid_subset` marks captions that passed the
dataset's human validation (it is True/False/empty), not a validation split. So every record is
"test", and is_valid_subset is kept in meta (True, False or None) for a scorer that wants the
validated subset only.
"""
from __future__ import annotations

from pathlib import Path

from musilingo.data.annotations import fail, read_csv_rows, require_file, text_field
from musilingo.data.records import (AudioLocator, DatasetRecords, Record, audio_root_path,
                                    partition)

SONGDESCRIBER_REQUIRED = ("track_id", "caption", "path")


def _two_minute_variant(relative: str) -> str:
    """`34/1004034.mp3` -> `34/1004034.2min.mp3` (the SDD audio release's file names)."""
    stem, dot, extension = relative.rpartition(".")
    if not dot or stem.endswith(".2min"):
        return relative
    return f"{stem}.2min.{extension}"


def _optional_bool(value: str, path: Path, line: int) -> bool | None:
    value = value.strip().lower()
    if not value:
        return None
    if value in ("true", "false"):
        return value == "true"
    raise fail(path, line, f"column 'is_valid_subset' is {value!r}, not True/False/empty",
               "write True, False or leave it empty")


def read_songdescriber(annotations: str | Path | None, audio_root: str | Path | None, *,
                       split: str | None = None, name: str = "songdescriber") -> DatasetRecords:
    """One caption record per CSV row, all in split "test"."""
    path = require_file(annotations, "Song Describer CSV")
    root = audio_root_path(audio_root, path.parent)
    locator = AudioLocator()
    records = []
    if split not in (None, "test"):
        return partition(name, records, locator, root)
    for line, row in read_csv_rows(path, SONGDESCRIBER_REQUIRED, "Song Describer"):
        track_id = text_field(row, "track_id", path, line, "Song Describer")
        caption = text_field(row, "caption", path, line, "Song Describer")
        relative = text_field(row, "path", path, line, "Song Describer")
        audio_path = locator.find(root / relative)
        if not locator.exists(audio_path):
            variant = locator.find(root / _two_minute_variant(relative))
            if locator.exists(variant):
                audio_path = variant
        meta: dict = {"path": relative,
                      "is_valid_subset": _optional_bool(row.get("is_valid_subset", ""), path,
                                                        line)}
        for column in ("caption_id", "familiarity", "artist_id", "album_id"):
            if row.get(column, "").strip():
                meta[column] = row[column]
        if row.get("duration", "").strip():
            try:
                meta["duration"] = float(row["duration"])
            except ValueError:
                raise fail(path, line, f"column 'duration' is {row['duration']!r}, not a number",
                           "write the track duration in seconds") from None
        records.append(Record(clip_id=track_id, audio_path=audio_path, split="test",
                              texts={"caption": caption}, source=f"{path}:{line}", meta=meta))
    return partition(name, records, locator, root)
