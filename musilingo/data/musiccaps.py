"""Readers for MusicCaps (captions, CSV) and MusicInstruct (Q&A about MusicCaps clips, JSON).

Both describe the same 10 s YouTube clips, which users download themselves as `<ytid>.wav`
(any other audio extension is accepted when the .wav is absent, because download scripts differ).
The test split is the AudioSet-eval half (`is_audioset_eval` True), as in MusiLingo's loaders.

MusicCaps CSV: `ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,
is_balanced_subset,is_audioset_eval`, booleans as the strings True/False, `aspect_list` a Python
list literal (parsed with ast.literal_eval, never eval).
LP-MusicCaps' copy (`annotation.json`, or its folder): one JSON object keyed `[ytid]-[start-end]`,
each value a MusicCaps row with real JSON lists and booleans; `track_split.json` beside it
(`train_track`, `valid_track`, `test_track`: lists of those keys) gives the split LP-MusicCaps
used, and a key it does not list falls back to `is_audioset_eval`. Clip ids are the ytid either
way, so one cache serves both layouts.
MusicInstruct JSON: `{"QA": [{"ytid","question","answer","is_audioset_eval","sampling_rate",...}]}`
with booleans as JSON booleans or as strings; fields beyond the required ones go to `meta`
(that is how the synthetic set's `attribute`/`value` reach the demo's scorer).
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

from musilingo.data.annotations import (bool_field, fail, read_csv_rows, read_json_items,
                                        require_file, text_field)
from musilingo.data.records import (SPLITS, AudioLocator, DatasetRecords, Record,
                                    audio_root_path, partition)
from musilingo.errors import UserError

MUSICCAPS_REQUIRED = ("ytid", "caption", "is_audioset_eval")
MUSICCAPS_COLUMNS = ("ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list",
                     "caption", "author_id", "is_balanced_subset", "is_audioset_eval")


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


def _musiccaps_file(annotations: str | Path | None) -> Path:
    """The CSV or LP-MusicCaps' annotation.json; a folder holding either stands for it."""
    if annotations is not None and Path(annotations).expanduser().is_dir():
        folder = Path(annotations).expanduser()
        for name in ("annotation.json", "musiccaps-public.csv"):
            if (folder / name).is_file():
                return folder / name
        raise UserError(f"{folder}: holds neither musiccaps-public.csv nor LP-MusicCaps' "
                        "annotation.json; pass the MusicCaps CSV or annotation.json")
    return require_file(annotations, "MusicCaps CSV (or LP-MusicCaps annotation.json)")


def _lpmc_rows(path: Path) -> list[tuple[str, dict, str | None]]:
    """(key, row, split or None) of LP-MusicCaps' annotation.json, with track_split.json's split."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except RecursionError:
        raise fail(path, None, "JSON nested too deeply",
                   "pass LP-MusicCaps' annotation.json as downloaded") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise fail(path, None, f"not valid JSON ({type(exc).__name__}: {str(exc)[:80]})",
                   "pass LP-MusicCaps' annotation.json as downloaded") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise fail(path, None, "expected one JSON object of MusicCaps rows keyed "
                   "[ytid]-[start-end]", "pass LP-MusicCaps' annotation.json, or the CSV")
    splits: dict[str, str] = {}
    split_file = path.with_name("track_split.json")
    if split_file.is_file():
        try:
            table = json.loads(split_file.read_text(encoding="utf-8-sig"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise fail(split_file, None, f"not valid JSON ({type(exc).__name__})",
                       "pass LP-MusicCaps' track_split.json as downloaded, or remove it") from None
        lists = {f: k for f, k in table.items() if f.removesuffix("_track") in SPLITS} \
            if isinstance(table, dict) else {}
        if not lists or not all(isinstance(k, list) for k in lists.values()):
            raise fail(split_file, None, "expected an object of clip lists (train_track, "
                       "valid_track, test_track)",
                       "pass LP-MusicCaps' track_split.json as downloaded, or remove it")
        for field, keys in lists.items():
            word = field.removesuffix("_track")
            for k in map(str, keys):
                if splits.get(k, word) != word:
                    raise fail(split_file, None, f"clip {k} is in both {splits[k]}_track and "
                               f"{field}", "keep each clip in one split")
                splits[k] = word
    return [(key, row, splits.get(key)) for key, row in data.items()]


def read_musiccaps(annotations: str | Path | None, audio_root: str | Path | None, *,
                   split: str | None = None, name: str = "musiccaps") -> DatasetRecords:
    """One caption record per CSV row; clip_id = ytid; audio = audio_root/<ytid>.wav."""
    path = _musiccaps_file(annotations)
    root = audio_root_path(audio_root, path.parent)
    if path.suffix.lower() == ".json":
        return _read_lpmc(path, root, split, name)
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


def _read_lpmc(path: Path, root: Path, split: str | None, name: str) -> DatasetRecords:
    locator = AudioLocator()
    records = []
    for key, row, listed in _lpmc_rows(path):
        where = f"[{key}]"
        ytid = text_field(row, "ytid", path, where, "MusicCaps")
        caption = text_field(row, "caption", path, where, "MusicCaps")
        record_split = listed or _split_of(bool_field(row, "is_audioset_eval", path, where,
                                                      "MusicCaps"))
        if split is not None and record_split != split:
            continue
        aspects = row.get("aspect_list", [])
        if not isinstance(aspects, list) or not all(isinstance(a, str) for a in aspects):
            raise fail(path, where, "field 'aspect_list' is not a list of strings",
                       "write it as a JSON list, e.g. [\"piano\", \"slow tempo\"]")
        meta: dict = {"ytid": ytid, "aspect_list": aspects, "key": key}
        for field in ("start_s", "end_s", "author_id", "is_balanced_subset", "is_audioset_eval"):
            if row.get(field) is not None:
                meta[field] = row[field]
        labels = row.get("audioset_positive_labels")
        if isinstance(labels, str) and labels.strip():
            meta["audioset_positive_labels"] = labels.split(",")
        records.append(Record(clip_id=ytid, audio_path=locator.find(root / f"{ytid}.wav"),
                              split=record_split, texts={"caption": caption},
                              source=f"{path}:{where}", meta=meta))
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
