"""Reader for LP-MusicCaps-MSD (pre-training captions for 30 s Million Song Dataset previews).

Columns: `track_id, title, artist_name, release, year, tag, caption_writing, caption_summary,
caption_paraphrase, caption_attribute_prediction, path`; splits train / valid / test; audio =
audio_root/`path` (like `8/1/8134074.clip.mp3`). MusiLingo's stage 1 trains on
`caption_writing` only, so that is the default `caption_field`; all four are kept in texts.

`annotations` may be, read with HF `datasets`:
- a folder written by `save_to_disk` (what MusiLingo's loader caches): `load_from_disk`;
- a folder of parquet / arrow / json / jsonl / csv files (the hub repository's layout, e.g.
  `data/train-00000-of-00001.parquet`), or one such file: `load_dataset(<format>, data_files=...)`
  with each file's split taken from a train / valid|validation|val|dev / test word in its path;
- a hub id (`seungheondoh/LP-MusicCaps-MSD`), which needs a network or a warm HF cache.
Files whose path names no split, and a saved single Dataset, are labelled `split` if given,
else "train". The hub's "validation" split name is mapped to "valid".

`msd_columns` is training's lean view of the same data: only `track_id`, `path` and the chosen
caption, as the Arrow columns `datasets` memory-maps, checked column by column, never a Python
object per row (520k rows of Records cost ~1.3 GB; these cost next to nothing).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from musilingo.data.annotations import fail
from musilingo.data.records import (AudioLocator, DatasetRecords, Record, RootGuard,
                                    audio_root_path, check_split, partition, summary_line)
from musilingo.errors import UserError

CAPTION_FIELDS = ("caption_writing", "caption_summary", "caption_paraphrase",
                  "caption_attribute_prediction")
MSD_COLUMNS = ("track_id", "title", "artist_name", "release", "year", "tag", *CAPTION_FIELDS,
               "path")
_META_COLUMNS = ("title", "artist_name", "release", "year", "tag")
_FORMATS = {".parquet": "parquet", ".arrow": "arrow", ".json": "json", ".jsonl": "json",
            ".csv": "csv"}
_SPLIT_WORDS = {"train": "train", "training": "train", "valid": "valid", "validation": "valid",
                "val": "valid", "dev": "valid", "test": "test", "testing": "test"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _split_word(relative: str) -> str | None:
    for word in re.split(r"[^a-z]+", relative.lower()):
        if word in _SPLIT_WORDS:
            return _SPLIT_WORDS[word]
    return None


def _load_files(files: list[Path], base: Path, default_split: str) -> dict:
    """{split: Dataset} for annotation files, grouping them by split word and format."""
    import datasets

    formats = {_FORMATS[f.suffix.lower()] for f in files}
    if len(formats) > 1:
        raise UserError(f"{base}: holds annotation files of several formats "
                        f"({', '.join(sorted(formats))}); keep one format per folder")
    data_files: dict[str, list[str]] = {}
    for file in files:
        relative = file.relative_to(base).as_posix() if file != base else file.name
        data_files.setdefault(_split_word(relative) or default_split, []).append(str(file))
    try:
        return dict(datasets.load_dataset(formats.pop(), data_files=data_files))
    except Exception as error:  # datasets raises many types for unreadable files
        raise UserError(f"{base}: could not read the annotation files "
                        f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
                        "check they are LP-MusicCaps-MSD parquet/arrow/json files") from None


def load_msd_splits(annotations: str | Path, split: str | None) -> dict:
    """{split name ("train"/"valid"/"test"): datasets.Dataset} from any supported source."""
    import datasets

    default_split = split or "train"
    path = Path(annotations).expanduser()
    saved = path.is_dir() and any((path / name).is_file()
                                  for name in ("dataset_dict.json", "state.json"))
    if saved:
        loaded = datasets.load_from_disk(str(path))
        splits = dict(loaded) if isinstance(loaded, datasets.DatasetDict) \
            else {default_split: loaded}
    elif path.is_dir() and (path / "annotation.json").is_file() \
            and (path / "track_split.json").is_file():
        raise UserError(f"{path}: this is LP-MusicCaps' MusicCaps layout (annotation.json keyed "
                        "[ytid]-[start-end], track_split.json), not LP-MusicCaps-MSD; read it "
                        "with --dataset musiccaps")
    elif path.is_dir():
        files = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in _FORMATS
                       and not any(part.startswith(".") for part in f.relative_to(path).parts))
        if not files:
            raise UserError(f"{path}: no parquet/arrow/json/csv files in this folder; pass the "
                            "LP-MusicCaps-MSD folder (or a save_to_disk folder)")
        splits = _load_files(files, path, default_split)
    elif path.is_file():
        if path.suffix.lower() not in _FORMATS:
            raise UserError(f"{path}: not a parquet/arrow/json/jsonl/csv file; pass the "
                            "LP-MusicCaps-MSD annotations")
        splits = _load_files([path], path, default_split)
    elif _HUB_ID.match(str(annotations)):
        try:
            splits = dict(datasets.load_dataset(str(annotations)))
        except Exception as error:
            raise UserError(f"{annotations}: could not load this hub data set "
                            f"({type(error).__name__}: {str(error).splitlines()[0][:200]}); "
                            "without a network, download it elsewhere and pass the local "
                            "folder") from None
    else:
        raise UserError(f"{path}: annotation file or folder does not exist; pass the "
                        "LP-MusicCaps-MSD folder, file or hub id")
    return {_SPLIT_WORDS.get(name, name): dataset for name, dataset in splits.items()}


def _checked_root(annotations, audio_root, caption_field: str) -> Path:
    """The audio root, once the annotations and the caption field are known to be usable."""
    if annotations is None:
        raise UserError("msd: no annotations given; pass the LP-MusicCaps-MSD folder, file or "
                        "hub id")
    if caption_field not in CAPTION_FIELDS:
        raise UserError(f"msd: caption field {caption_field!r} is not one of "
                        f"{', '.join(CAPTION_FIELDS)}; pick one of those")
    local = Path(annotations).expanduser()
    return audio_root_path(audio_root, local if local.is_dir() else local.parent)


def read_msd(annotations: str | Path | None, audio_root: str | Path | None, *,
             split: str | None = None, caption_field: str = "caption_writing",
             name: str = "msd") -> DatasetRecords:
    """One caption record per row; clip_id = track_id; texts["caption"] = row[caption_field]."""
    root = _checked_root(annotations, audio_root, caption_field)
    locator = AudioLocator()
    records = []
    for split_name, dataset in load_msd_splits(annotations, split).items():
        if split is not None and split_name != split:
            continue
        where = f"{annotations}:{split_name}"
        absent = [c for c in ("track_id", "path", caption_field) if c not in dataset.column_names]
        if absent:
            raise fail(where, None, f"missing column {absent[0]!r} (columns: "
                       f"{', '.join(dataset.column_names)})",
                       "use LP-MusicCaps-MSD annotations with their original columns")
        wanted = [c for c in MSD_COLUMNS if c in dataset.column_names]
        # One Arrow -> Python conversion per column is ~50x faster than indexing row by row.
        table = dataset.select_columns(wanted).with_format("arrow")[:]
        columns = {c: table.column(c).to_pylist() for c in wanted}
        for required in ("track_id", "path", caption_field):
            for row, value in enumerate(columns[required]):
                if not isinstance(value, str) or not value.strip():
                    raise fail(where, row + 1, f"column {required!r} is {value!r}, not a "
                               "non-empty string", "fix or drop that row")
        captions = [c for c in CAPTION_FIELDS if c in columns]
        metas = [c for c in _META_COLUMNS if c in columns]
        chosen = columns[caption_field]
        # Column by column and zipped, not a dict per row: 520k rows in seconds.
        for row, (track, rel) in enumerate(zip(columns["track_id"], columns["path"])):
            texts = {"caption": chosen[row]}
            for c in captions:
                value = columns[c][row]
                if isinstance(value, str):
                    texts[c] = value
            meta = {c: columns[c][row] for c in metas}
            meta["path"] = rel
            records.append(Record(clip_id=track, audio_path=root / rel, split=split_name,
                                  texts=texts, source=f"{where}:{row + 1}", meta=meta))
    return partition(name, records, locator, root)


@dataclass
class MsdColumns:
    """One split's training columns (Arrow arrays) and the 0-based annotation rows they keep."""

    where: str           # "<annotations>:<split>", the prefix of every row's source
    track_id: object     # pyarrow (Chunked)Array of str
    caption: object
    path: object
    rows: object         # numpy int64: kept row -> its annotation row
    root: Path
    refused: int         # rows whose audio path leaves the audio root


def _bad_string_row(column) -> int | None:
    """The first row that is null or blank, or None; chunk by chunk, so that the trimmed copy
    it compares never holds more than one chunk of the column."""
    import numpy as np
    import pyarrow.compute as pc

    start = 0
    for chunk in column.chunks:
        bad = pc.or_kleene(pc.is_null(chunk), pc.equal(pc.utf8_trim_whitespace(chunk), ""))
        rows = np.flatnonzero(np.asarray(bad.to_numpy(zero_copy_only=False), dtype=bool))
        if len(rows):
            return start + int(rows[0])
        start += len(chunk)
    return None


def _checked_splits(annotations, split: str | None, caption_field: str):
    """(where, {"track_id", "path", caption_field: Arrow column}) per kept split, checked as
    `read_msd` checks them (present, strings, none null or blank), never a Python object per
    row: the columns are the memory-mapped Arrow table's."""
    import pyarrow as pa

    for split_name, dataset in load_msd_splits(annotations, split).items():
        if split is not None and split_name != split:
            continue
        where = f"{annotations}:{split_name}"
        table = dataset.data  # the memory-mapped Arrow table: no copy
        columns = {}
        for name in ("track_id", "path", caption_field):
            if name not in table.column_names:
                raise fail(where, None, f"missing column {name!r} (columns: "
                           f"{', '.join(table.column_names)})",
                           "use LP-MusicCaps-MSD annotations with their original columns")
            column = table.column(name)
            if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
                raise fail(where, 1, f"column {name!r} holds {column.type}, not strings",
                           "use LP-MusicCaps-MSD annotations with their original columns")
            row = _bad_string_row(column)
            if row is not None:
                raise fail(where, row + 1, f"column {name!r} is {column[row].as_py()!r}, not a "
                           "non-empty string", "fix or drop that row")
            columns[name] = column
        yield where, columns


def msd_columns(annotations, audio_root, *, split: str | None = None,
                caption_field: str = "caption_writing") -> list[MsdColumns]:
    """The splits' (track_id, caption, path) columns for training from a cache, with the same
    checks as `read_msd` (missing columns, empty values, paths leaving the audio root)."""
    import numpy as np
    import pyarrow.compute as pc

    root = _checked_root(annotations, audio_root, caption_field)
    out = []
    for where, columns in _checked_splits(annotations, split, caption_field):
        # An audio path may not leave the root: absolute, or `..` climbing out (read_dataset's
        # rule; symlinks are not followed here, since training from a cache opens no audio).
        path = columns["path"]
        suspect = pc.match_substring_regex(path, r"^/|(^|/)\.\.(/|$)|\\").to_numpy(
            zero_copy_only=False).astype(bool)
        keep = np.ones(len(path), dtype=bool)
        for i in np.flatnonzero(suspect):
            rel = path[int(i)].as_py()
            normal = os.path.normpath(rel.replace("\\", "/"))
            keep[i] = not (os.path.isabs(rel) or normal == ".." or normal.startswith("../"))
        out.append(MsdColumns(where, columns["track_id"], columns[caption_field], path,
                              np.flatnonzero(keep), root, int((~keep).sum())))
    return out


def msd_clips(annotations, audio_root, *, split: str | None = None,
              caption_field: str = "caption_writing", allow_outside_root: bool = False,
              make=tuple) -> tuple[list, str, bool]:
    """What extraction needs of LP-MusicCaps-MSD, without a `Record` per row (520k Records with
    their captions cost ~1.1 GB, and a re-run with nothing to do would pay it every time).

    Returns (clips, summary, note): `make(clip_id, audio_path, missing, source, error)` per
    distinct clip in the order `extract.plan.clip_list(read_dataset("msd", ...))` gives (present
    clips, then missing ones, then refused ones, each in row order, first occurrence wins), the
    line `DatasetRecords.summary()` would print, and whether it is worth printing (some audio
    missing or refused). The same checks as `read_dataset` (columns, empty values, paths leaving
    the audio root, symlinks included); tests hold the two paths equal.
    """
    import numpy as np

    check_split(split)
    root = _checked_root(annotations, audio_root, caption_field)
    locator = AudioLocator()
    guard = None if allow_outside_root else RootGuard(root)
    ids: list[str] = []
    paths: list[str] = []
    sources: list[tuple[str, int]] = []  # (where, first global row) per split
    present: list[bool] = []
    refusals: dict[int, str] = {}
    for where, columns in _checked_splits(annotations, split, caption_field):
        sources.append((where, len(ids)))
        for rel in columns["path"].to_pylist():
            path = root / rel
            present.append(locator.exists(path))
            if guard is not None and (reason := guard.refusal(path, "")) is not None:
                refusals[len(paths)] = reason
            paths.append(str(path))
        ids.extend(columns["track_id"].to_pylist())
    starts = [start for _, start in sources]

    def source(i: int) -> str:
        where, start = sources[int(np.searchsorted(starts, i, side="right")) - 1]
        return f"{where}:{i - start + 1}"

    exists = np.array(present, dtype=bool)
    refused = np.zeros(len(ids), dtype=bool)
    refused[list(refusals)] = True
    clips, seen = [], set()
    counts = []
    # clip_list's order: present, then missing, then refused (those with audio first, as
    # DatasetRecords.confine moves them out of its present list before its missing one)
    for rows in (exists & ~refused, ~exists & ~refused, exists & refused, ~exists & refused):
        rows = np.flatnonzero(rows)
        counts.append((len(rows), len({ids[i] for i in rows})))
        for i in rows:
            i = int(i)
            if ids[i] not in seen:
                seen.add(ids[i])
                error = source(i) + refusals[i] if i in refusals else ""
                clips.append(make(ids[i], paths[i], not exists[i] or i in refusals, source(i),
                                  error))
    first = next((i for rows in (exists & refused, ~exists & refused)
                  for i in np.flatnonzero(rows)), None)
    n_refused = counts[2][0] + counts[3][0]
    line = summary_line("msd", counts[0][0], counts[0][1], counts[1][0], counts[1][1],
                        n_refused, source(first) + refusals[int(first)] if first is not None
                        else "")
    return clips, line, bool(counts[1][0] or n_refused)
