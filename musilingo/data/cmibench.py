"""Reader for CMI-Bench's instruction files (JSON lines, e.g. CMI_MusicCaps.jsonl, CMI_SDD.jsonl).

    musilingo score --run runs/s2 --dataset cmibench --annotations CMI_MusicCaps.jsonl \
        --audio-root CMI-bench/ --split test

Each line is one task item: `{"instruction", "input", "output", "split": ["test"],
"task_type": {"major": [...], "minor": [...]}, "audio_path": ["data/MusicCaps/audio/<ytid>.wav"],
"audio_start", "audio_end", "source", ...}`. The model is given the instruction (CMI-Bench
prompts every model with it; `input` only marks where the audio goes) and scored against
`output`, so an item becomes a Q&A record: question = instruction, answer = output.

Audio paths are relative to the CMI-Bench checkout (`--audio-root`; default the file's folder)
and, like every reader's, must stay inside it. Clip ids are the audio file's name up to its
first dot (`7lV4IvuW2lk`, `1004034` of `1004034.2min.mp3`): the ids the MusicCaps and Song
Describer readers give the same clips, so one feature cache serves all three. Several items may
share a clip (Song Describer has 1,106 captions of 706 tracks).

`audio_start` / `audio_end` are kept in meta but not applied: a clip is heard whole, as every
reader's is. CMI_MusicCaps' spans (0-10 s) are its whole 10 s files; CMI_SDD's (0-30 s) are the
first 30 s of 2-minute excerpts, so to hear what CMI-Bench's models heard, cut those files to
their first 30 s before extracting.
"""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from musilingo.data.annotations import fail, require_file, text_field
from musilingo.data.records import (SPLITS, AudioLocator, DatasetRecords, Record,
                                    audio_root_path, partition)

WHAT = "CMI-Bench"


def _lines(path: Path):
    """(line number, item) of each non-blank line; a line that is not a JSON object fails."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise fail(path, None, f"not UTF-8 text (byte {exc.start})",
                   "save the file as UTF-8") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except RecursionError:
            raise fail(path, number, "JSON nested too deeply",
                       "CMI-Bench files hold one flat JSON object per line") from None
        except ValueError as exc:
            raise fail(path, number, f"not a JSON object ({str(exc)[:80]})",
                       "CMI-Bench files hold one JSON object per line") from None
        yield number, item


def _one(item: dict, field: str, path: Path, line: int) -> str:
    """A field CMI-Bench writes as a one-element list (`split`, `audio_path`), or a string."""
    value = item.get(field)
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str) or not value.strip():
        raise fail(path, line, f"field {field!r} is {value!r}, not one string (or a list of one)",
                   f"write {field!r} as in CMI-Bench's files, e.g. [\"test\"]")
    return value


def read_cmibench(annotations: str | Path | None, audio_root: str | Path | None, *,
                  split: str | None = None, name: str = "cmibench") -> DatasetRecords:
    """One Q&A record per line: instruction -> output, about the line's audio file."""
    path = require_file(annotations, "CMI-Bench jsonl")
    root = audio_root_path(audio_root, path.parent)
    locator = AudioLocator()
    records = []
    for line, item in _lines(path):
        question = text_field(item, "instruction", path, line, WHAT)
        answer = text_field(item, "output", path, line, WHAT)
        record_split = _one(item, "split", path, line)
        if record_split not in SPLITS:
            raise fail(path, line, f"split {record_split!r} is not one of {', '.join(SPLITS)}",
                       "use CMI-Bench's train/valid/test")
        if split is not None and record_split != split:
            continue
        relative = _one(item, "audio_path", path, line)
        clip_id = PurePosixPath(relative).name.split(".", 1)[0]
        if not clip_id:
            raise fail(path, line, f"audio_path {relative!r} names no file",
                       "give the audio file's path relative to the CMI-Bench folder")
        task = item.get("task_type") if isinstance(item.get("task_type"), dict) else {}
        meta = {"audio_path": relative, "task": (task.get("minor") or task.get("major") or [None])[0]}
        for field in ("audio_start", "audio_end", "source", "input"):
            if item.get(field) not in (None, ""):
                meta[field] = item[field]
        records.append(Record(clip_id=clip_id, audio_path=locator.find(root / relative),
                              split=record_split, texts={"question": question, "answer": answer},
                              source=f"{path}:{line}", meta=meta))
    return partition(name, records, locator, root)
