"""Reader for MuChoMusic's multiple-choice questions (`muchomusic.csv`, the benchmark's release).

Columns used: `question`, `correct_answer`, `distractor_1_answer`, `distractor_2_answer`,
`distractor_3_answer` (the three distractors: incorrect but related, correct but unrelated,
incorrect and unrelated), `dataset` (`musiccaps` or `sdd`) and `dataset_identifier` (a MusicCaps
ytid with a `_N.json` suffix, or a Song Describer track id with `.json`); `genre`,
`music_knowledge` and `music_reasoning` (category lists, the benchmark's Python list literals)
are kept in meta, as is `kind` (what musilingo's synthetic set asks about). An `audio_path` column, when present, names each clip's file
relative to the audio root (handy for one's own questions); otherwise the file is found as
MusicCaps `<ytid>.wav` (musilingo's MusicCaps convention, or the benchmark's
`[ytid]-[start-end].wav`) or Song Describer `<track_id>.2min.mp3`, at any depth of one folder
level (`sdd/`, `musiccaps/`) under the audio root.

One record per question, with texts {"question", "answer"} and meta["distractors"] (three
strings). The benchmark is an evaluation set, so every row is split "test" unless a `split`
column says `train` or `test` (one's own four-option questions can then train too: musilingo's
synthetic set writes them so). Rows without three distinct distractors, or with another split
word, are refused with a line naming the row.
"""
from __future__ import annotations

import re
from pathlib import Path

from musilingo.data.annotations import fail, read_csv_rows, require_file, text_field
from musilingo.data.records import (AudioLocator, DatasetRecords, Record, audio_root_path,
                                    partition)

REQUIRED = ("question", "correct_answer", "distractor_1_answer", "distractor_2_answer",
            "distractor_3_answer")
DISTRACTORS = REQUIRED[2:]
SPLITS = ("train", "test")
CATEGORY_COLUMNS = ("music_knowledge", "music_reasoning")


def categories(cell: str, path, line, column: str) -> list[str]:
    """A category cell as a list: the benchmark writes Python list literals
    ("['Melody', 'Genre']"), empty for none; a plain name or a comma list is read too."""
    import ast

    text = (cell or "").strip()
    if not text:
        return []
    if not text.startswith("["):
        return [c.strip() for c in text.split(",") if c.strip()]
    try:
        value = ast.literal_eval(text) if len(text) < 10_000 else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(path, line, f"column {column!r} is not a list of category names",
                   "write it as ['name', ...] or leave it empty")
    return [v.strip() for v in value if v.strip()]


def _clip(row: dict, path: Path, line: int) -> tuple[str, list[str]]:
    """(clip id, candidate audio paths relative to the root) of one row."""
    if row.get("audio_path", "").strip():
        relative = row["audio_path"].strip()
        return Path(relative).stem, [relative]
    dataset = row.get("dataset", "").strip().lower()
    ident = row.get("dataset_identifier", "").strip().removesuffix(".json")
    if not ident or dataset not in ("musiccaps", "sdd"):
        raise fail(path, line, "neither an audio_path column nor dataset (musiccaps or sdd) + "
                               "dataset_identifier", "add an audio_path column naming the file")
    if dataset == "musiccaps":
        ytid = re.sub(r"_\d+$", "", ident)  # "<ytid>_<question number>"
        names = [f"{ytid}.wav", f"musiccaps/{ytid}.wav", f"musiccaps/audio/{ytid}.wav"]
        return ytid, names
    return ident, [f"{ident}.2min.mp3", f"sdd/{ident}.2min.mp3", f"{ident}.mp3"]


def read_muchomusic(annotations: str | Path | None, audio_root: str | Path | None, *,
                    split: str | None = None, name: str = "muchomusic") -> DatasetRecords:
    """One multiple-choice record per CSV row, all in split "test"."""
    path = require_file(annotations, "MuChoMusic CSV")
    root = audio_root_path(audio_root, path.parent)
    locator = AudioLocator()
    records: list[Record] = []
    for line, row in read_csv_rows(path, REQUIRED, "MuChoMusic"):
        row_split = row.get("split", "").strip().lower() or "test"
        if row_split not in SPLITS:
            raise fail(path, line, f"split {row['split']!r} is not train or test",
                       "write train or test in the split column, or leave it empty (test)")
        if split is not None and row_split != split:
            continue
        question = text_field(row, "question", path, line, "MuChoMusic")
        answer = text_field(row, "correct_answer", path, line, "MuChoMusic")
        distractors = [text_field(row, c, path, line, "MuChoMusic") for c in DISTRACTORS]
        if len({answer.strip().lower(), *(d.strip().lower() for d in distractors)}) != 4:
            raise fail(path, line, "the answer and its three distractors are not four different "
                                   "options", "give four different options")
        clip_id, candidates = _clip(row, path, line)
        audio_path = root / candidates[0]
        for relative in candidates:
            found = locator.find(root / relative)
            if locator.exists(found):
                audio_path = found
                break
        meta = {"distractors": distractors}
        for column in ("genre", "dataset", "kind"):
            if row.get(column, "").strip():
                meta[column] = row[column].strip()
        for column in CATEGORY_COLUMNS:
            meta[column] = categories(row.get(column, ""), path, line, column)
        records.append(Record(clip_id=clip_id, audio_path=audio_path, split=row_split,
                              texts={"question": question, "answer": answer},
                              source=f"{path}:{line}", meta=meta))
    return partition(name, records, locator, root)
