"""Readers for MusicCaps (captions, CSV) and MusicInstruct (Q&A about MusicCaps clips, JSON).

Both describe the same 10 s YouTube clips, which users download themselves as `<ytid>.wav`
(any other audio extension is accepted when the .wav is absent, because download scripts differ).
The test split is the AudioSet-eval half (`is_audioset_eval` True), as in MusiLingo's loaders.

MusicCaps CSV: `ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,
is_balanced_subset,is_audioset_eval`, booleans as the strings True/False, `aspect_list` a Python
list literal (parsed with ast.literal_eval, never eval).
MusicInstruct JSON: `{"QA": [{"ytid","question","answer","is_audioset_eval","sampling_rate",...}]}`
with booleans as JSON booleans or as strings; fields beyond the required ones go to `meta`
(that is how the synthetic set's `attribute`/`value` reach the demo's scorer).
"""
from __future__ import annotations

import ast
from pathlib import Path

from musilingo.data.annotations import (bool_field, fail, read_csv_rows, read_json_items,
                                        require_file, text_field)
from musilingo.data.records import (AudioLocator, DatasetRecords, Record, audio_root_path,
                                    partition)

MUSICCAPS_REQUIRED = ("ytid", "caption", "is_audioset_eval")
MUSICCAPS_COLUMNS = ("ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list",
                     "caption", "author_id", "is_balanced_subset", "is_audioset_eval")
MUSICINSTRUCT_REQUIRED = ("ytid", "question", "answer", "is_audioset_eval")


def _split_of(is_audioset_eval: bool) -> str:
    return "test" if is_audioset_eval else "train"


def _number(value: str, column: str, path: Path, line: int) -> int | float:
    try:
        number = float(value)
    except ValueError:
        raise fail(path, line, f"column {column!r} is {value!r}, not a number",
                   f"write {column!r} in seconds") from None
    return int(number) if number.is_integer() else number


def _aspect_list(value: str, path: Path, line: int) -> list[str]:
    try:
        aspects = ast.literal_eval(value) if value.strip() else []
    except (ValueError, SyntaxError):
        aspects = None
    if not isinstance(aspects, list) or not all(isinstance(a, str) for a in aspects):
        raise fail(path, line, f"column 'aspect_list' is not a list of strings ({value[:40]!r})",
                   "write it as a Python list literal, e.g. ['piano', 'slow tempo']")
    return aspects


def read_musiccaps(annotations: str | Path | None, audio_root: str | Path | None, *,
                   split: str | None = None, name: str = "musiccaps") -> DatasetRecords:
    """One caption record per CSV row; clip_id = ytid; audio = audio_root/<ytid>.wav."""
    path = require_file(annotations, "MusicCaps CSV")
    root = audio_root_path(audio_root, path.parent)
    locator = AudioLocator()
    records = []
    for line, row in read_csv_rows(path, MUSICCAPS_REQUIRED, "MusicCaps"):
        ytid = text_field(row, "ytid", path, line, "MusicCaps")
        caption = text_field(row, "caption", path, line, "MusicCaps")
        record_split = _split_of(bool_field(row, "is_audioset_eval", path, line, "MusicCaps"))
        if split is not None and record_split != split:
            continue
        meta: dict = {"ytid": ytid}
        for column in ("start_s", "end_s"):
            if row.get(column, "").strip():
                meta[column] = _number(row[column], column, path, line)
        if "aspect_list" in row:
            meta["aspect_list"] = _aspect_list(row["aspect_list"], path, line)
        if row.get("audioset_positive_labels", "").strip():
            meta["audioset_positive_labels"] = row["audioset_positive_labels"].split(",")
        if row.get("author_id", "").strip():
            meta["author_id"] = row["author_id"]
        if row.get("is_balanced_subset", "").strip():
            meta["is_balanced_subset"] = bool_field(row, "is_balanced_subset", path, line,
                                                    "MusicCaps")
        records.append(Record(clip_id=ytid, audio_path=locator.find(root / f"{ytid}.wav"),
                              split=record_split, texts={"caption": caption},
                              source=f"{path}:{line}", meta=meta))
    return partition(name, records, locator, root)


def read_musicinstruct(annotations: str | Path | None, audio_root: str | Path | None, *,
                       split: str | None = None, name: str = "musicinstruct") -> DatasetRecords:
    """One Q&A record per item of `QA`; clip_id = ytid; audio = MusicCaps clip <ytid>.wav."""
    path = require_file(annotations, "MusicInstruct JSON")
    root = audio_root_path(audio_root, path.parent)
    locator = AudioLocator()
    records = []
    for line, item in read_json_items(path, "MusicInstruct", under_key="QA"):
        ytid = text_field(item, "ytid", path, line, "MusicInstruct")
        question = text_field(item, "question", path, line, "MusicInstruct")
        answer = text_field(item, "answer", path, line, "MusicInstruct")
        record_split = _split_of(bool_field(item, "is_audioset_eval", path, line,
                                            "MusicInstruct"))
        if split is not None and record_split != split:
            continue
        sampling_rate = item.get("sampling_rate")
        if sampling_rate is not None and (isinstance(sampling_rate, bool)
                                          or not isinstance(sampling_rate, (int, float))):
            raise fail(path, line, f"field 'sampling_rate' is {sampling_rate!r}, not a number",
                       "write the clip's sampling rate in Hz, or leave the field out")
        meta = {key: value for key, value in item.items()
                if key not in ("question", "answer", "is_audioset_eval")}
        records.append(Record(clip_id=ytid, audio_path=locator.find(root / f"{ytid}.wav"),
                              split=record_split, texts={"question": question, "answer": answer},
                              source=f"{path}:{line}", meta=meta))
    return partition(name, records, locator, root)
