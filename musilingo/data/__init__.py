"""Data-set readers: every supported annotation format becomes a list of `Record`s.

One entry point, `read_dataset(name, annotations, audio_root, split=..., caption_field=...)`,
so that extraction, training and scoring take a data-set NAME and never know a file format.
Readers resolve audio paths and sort records into `records` (audio present) and `missing`
(audio absent: counted, not fatal); malformed annotations raise `UserError` naming the file,
line and field.

| name | annotations | audio_root default | records |
|---|---|---|---|
| msd | LP-MusicCaps-MSD folder / file / hub id | the annotation folder | captions |
| musiccaps | musiccaps-public.csv, or LP-MusicCaps' annotation.json (or its folder) | the file's folder | captions |
| musicinstruct | music_instruct*.json | the JSON's folder | Q&A |
| musicqa | *MusicQA.json | the JSON's folder | Q&A |
| songdescriber | song_describer.csv | the CSV's folder | captions |
| muchomusic | muchomusic.csv | the CSV's folder | four-option questions |
| rul-muchomusic | RUL-MuchoMusic.json | the JSON's folder (`<question id>.mp3`) | five-option questions (evaluation only) |
| cmibench | CMI-Bench *.jsonl (instruction, output, audio_path) | the file's folder | Q&A |
| folder | unused (or the folder) | required | no texts |
| synth | generated folder (or its captions.csv / qa.json) | <folder>/audio | Q&A (captions) |
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from musilingo.data.cmibench import read_cmibench
from musilingo.data.folder import read_folder
from musilingo.data.msd import CAPTION_FIELDS, read_msd
from musilingo.data.muchomusic import read_muchomusic
from musilingo.data.musiccaps import read_musiccaps, read_musicinstruct
from musilingo.data.musicqa import read_musicqa
from musilingo.data.rul_muchomusic import read_rul_muchomusic
from musilingo.data.records import (AUDIO_EXTENSIONS, SPLITS, DatasetRecords, Item, Record,
                                    check_split)
from musilingo.data.songdescriber import read_songdescriber
from musilingo.data.synth import read_synth
from musilingo.errors import UserError

__all__ = ["AUDIO_EXTENSIONS", "CAPTION_FIELDS", "DATASETS", "DatasetRecords", "DatasetSpec",
           "Item", "Record", "SPLITS", "TEST_SETS", "read_dataset"]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    reader: Callable[..., DatasetRecords]
    kind: str          # "caption", "qa", "mcq" or "audio": which texts its records carry
    description: str   # one line, for CLI help


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("msd", read_msd, "caption",
                "LP-MusicCaps-MSD captions (parquet/arrow/json folder, file, or hub id)"),
    DatasetSpec("musiccaps", read_musiccaps, "caption",
                "MusicCaps CSV or LP-MusicCaps annotation.json; audio_root holds <ytid>.wav"),
    DatasetSpec("musicinstruct", read_musicinstruct, "qa",
                'MusicInstruct JSON {"QA": [...]}; audio_root holds the MusicCaps <ytid>.wav'),
    DatasetSpec("musicqa", read_musicqa, "qa",
                "MusicQA JSON list of conversations; audio_root holds the audio_name files"),
    DatasetSpec("songdescriber", read_songdescriber, "caption",
                "Song Describer CSV; audio_root holds the path column's files (evaluation only)"),
    DatasetSpec("muchomusic", read_muchomusic, "mcq",
                "MuChoMusic CSV of four-option questions (a split column marks rows "
                "to train on)"),
    DatasetSpec("rul-muchomusic", read_rul_muchomusic, "rul",
                "RUL-MuChoMusic JSON of five-option questions (leave-one-out passes; "
                "evaluation only); audio_root holds <question id>.mp3"),
    DatasetSpec("cmibench", read_cmibench, "qa",
                "CMI-Bench jsonl (instruction -> output); audio_root is the CMI-Bench folder"),
    DatasetSpec("folder", read_folder, "audio",
                "every audio file under audio_root, without annotations"),
    DatasetSpec("synth", read_synth, "qa",
                "a folder written by the synthetic music generator (Q&A; or its captions.csv)"),
)}


# The data sets `musilingo score --dataset` generates on (their test split), by reader name, with
# the texts they score: captions or answers.
TEST_SETS: dict[str, tuple[str, str]] = {
    "musiccaps": ("musiccaps", "caption"),
    "musicinstruct": ("musicinstruct", "qa"),
    "musicqa": ("musicqa", "qa"),
    "songdescriber": ("songdescriber", "caption"),
    "muchomusic": ("muchomusic", "mcq"),
    "rul-muchomusic": ("rul-muchomusic", "rul"),
    "cmibench": ("cmibench", "qa"),
}
# muchomusic trains only where a `split` column marks rows train (one's own four-option
# questions, as the synthetic set writes them); the benchmark's own rows are all test.
TRAIN_SETS = tuple(name for name, spec in DATASETS.items()
                   if spec.kind in ("caption", "qa", "mcq")
                   and name != "songdescriber")  # songdescriber is evaluation only


def read_dataset(name: str, annotations: str | Path | None, audio_root: str | Path | None, *,
                 split: str | None = None, caption_field: str = "caption_writing",
                 allow_outside_root: bool = False) -> DatasetRecords:
    """Read data set `name`; keep only `split` ("train"/"valid"/"test") if given.

    `caption_field` picks the MSD caption that becomes texts["caption"] (other sets ignore it).
    Audio paths that leave the audio root (absolute, or `..` climbing out) are refused per record
    (`DatasetRecords.refused`) unless `allow_outside_root`.
    """
    spec = DATASETS.get(name)
    if spec is None:
        raise UserError(f"unknown data set {name!r}; use one of {', '.join(DATASETS)}")
    check_split(split)
    if name == "msd":
        result = read_msd(annotations, audio_root, split=split, caption_field=caption_field)
    else:
        result = spec.reader(annotations, audio_root, split=split)
    if split is not None:  # readers filter already; this keeps the promise for any reader
        result.records = [r for r in result.records if r.split == split]
        result.missing = [r for r in result.missing if r.split == split]
    return result.confine(allow_outside_root)
