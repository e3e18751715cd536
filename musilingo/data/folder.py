"""Reader for a plain folder of audio files (no annotations): captioning or asking about any music.

Every audio file under the folder (recursive, sorted, hidden files and folders skipped) becomes
one record in split "test" with no texts. clip_id = the path relative to the folder without its
last extension (`jazz/take1.wav` -> `jazz/take1`), which keeps `x.ogg` and `x.hq.ogg` apart. Two
files differing only in extension (`a.mp3`, `a.wav`) would collide; the later one in sorted
order keeps its extension in its clip_id (`a.wav`), so every clip_id stays unique.
"""
from __future__ import annotations

import os
from pathlib import Path

from musilingo.data.records import AUDIO_EXTENSIONS, DatasetRecords, Record
from musilingo.errors import UserError


def _audio_files(root: Path) -> list[Path]:
    found = []
    for directory, subdirectories, files in os.walk(root):
        # os.walk visits subdirectories in the order of this list: sort it, skip hidden ones.
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        found.extend(Path(directory) / f for f in files
                     if not f.startswith(".") and f.endswith(AUDIO_EXTENSIONS))
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def read_folder(annotations: str | Path | None, audio_root: str | Path | None, *,
                split: str | None = None, name: str = "folder") -> DatasetRecords:
    """One record per audio file under `audio_root` (or `annotations`, if only that is given)."""
    given = audio_root if audio_root is not None else annotations
    if given is None:
        raise UserError("folder: no folder given; pass the folder of audio files as the audio root")
    root = Path(given).expanduser().absolute()
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; pass a folder that holds audio files "
                        f"({', '.join(AUDIO_EXTENSIONS[:4])})")
    records: list[Record] = []
    if split not in (None, "test"):
        return DatasetRecords(name=name, records=records, missing=[])
    used: set[str] = set()
    for path in _audio_files(root):
        relative = path.relative_to(root).as_posix()
        clip_id = relative.rsplit(".", 1)[0]
        if clip_id in used:
            clip_id = relative
        used.add(clip_id)
        records.append(Record(clip_id=clip_id, audio_path=path, split="test", texts={},
                              source=str(path), meta={"relative_path": relative}))
    return DatasetRecords(name=name, records=records, missing=[])


def expand_audio(paths) -> list[Path]:
    """Audio files named, and those found (recursively, sorted) in the folders named."""
    files: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            found = _audio_files(path)
            if not found:
                raise UserError(f"{path}: folder holds no audio files "
                                f"({', '.join(sorted({e.lower() for e in AUDIO_EXTENSIONS}))})")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path}: no such audio file or folder")
    return files
