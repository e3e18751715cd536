"""Extraction's lean LP-MusicCaps-MSD clip list (`msd_clips`) is the clip list the Record path
gives (`clip_list(read_dataset("msd", ...))`), clip for clip and in order, with the same note,
so that a cache made by either resumes under the other (the clip list's digest is part of the
cache's identity). The lean path exists because the Record path holds every caption of every
row: +265 MB for a re-run with nothing to do at 100k clips (benchmarks/README.md)."""
from __future__ import annotations

import os
from pathlib import Path

import datasets
import pytest

from musilingo.data import read_dataset
from musilingo.data import msd as msd_module
from musilingo.data.msd import msd_clips
from musilingo.errors import UserError
from musilingo.extract.config import ExtractConfig
from musilingo.extract.plan import ClipSource, clip_list, dataset_clips

from .test_msd import _rows


def _annotations(tmp_path: Path) -> tuple[Path, Path]:
    """Three splits; audio present for some rows; a clip repeated across splits and within one
    (present in one place, missing in another); an absolute path, a `..` escape and a symlink
    that leads outside the root."""
    folder, audio = tmp_path / "msd" / "data", tmp_path / "audio"
    folder.mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.mp3").write_bytes(b"x")
    for split, count in {"train": 9, "valid": 4, "test": 5}.items():
        rows = _rows(split, count)
        rows["track_id"][3] = "TRSHARED"  # the same clip in every split
        rows["path"][3] = f"shared/{split}.mp3"
        if split == "train":
            rows["track_id"][5] = "TRTRAIN0001"  # a repeat within the split, other file
            rows["path"][6] = "/etc/passwd"
            rows["path"][7] = "../../x.mp3"
            rows["path"][8] = "links/secret.mp3"
        datasets.Dataset.from_dict(rows).to_parquet(str(folder / f"{split}-0.parquet"))
        for i, rel in enumerate(rows["path"]):
            if i % 2 == 0 and not rel.startswith(("/", "..", "links")):
                (audio / rel).parent.mkdir(parents=True, exist_ok=True)
                (audio / rel).write_bytes(b"")
    (audio / "shared").mkdir(parents=True, exist_ok=True)
    (audio / "shared" / "valid.mp3").write_bytes(b"")  # present in valid only
    (audio / "links").mkdir()
    os.symlink(outside / "secret.mp3", audio / "links" / "secret.mp3")
    return folder.parent, audio


@pytest.mark.parametrize("split, allow_outside", [(None, False), (None, True), ("train", False),
                                                  ("valid", False)])
def test_lean_clip_list_equals_the_record_path(tmp_path, split, allow_outside):
    ann, audio = _annotations(tmp_path)
    records = read_dataset("msd", ann, audio, split=split, allow_outside_root=allow_outside)
    expected = clip_list(records)
    clips, line, worth = msd_clips(ann, audio, split=split, allow_outside_root=allow_outside,
                                   make=ClipSource)
    assert clips == expected
    assert line == records.summary()
    assert worth == bool(records.missing or records.refused)
    if split is None:  # the case is not trivial: every kind of clip is there
        assert {c.missing for c in clips} == {True, False}
        assert any(c.error for c in clips) != allow_outside
        assert len(clips) < len(records.records) + len(records.missing) + len(records.refused)


def test_extract_reads_msd_without_records(tmp_path, monkeypatch):
    """The CLI's path for msd never builds a Record per row (read_msd is not called), and
    --max-clips keeps the first clips of the same order."""
    ann, audio = _annotations(tmp_path)
    expected = clip_list(read_dataset("msd", ann, audio), 5)
    monkeypatch.setattr(msd_module, "Record", None)  # any Record(...) would now fail
    cfg = ExtractConfig(out=str(tmp_path / "c.zarr"), dataset="msd", annotations=str(ann),
                        audio_root=str(audio), max_clips=5)
    clips, note = dataset_clips(cfg)
    assert clips == expected and note.startswith("msd: ")


def test_lean_path_checks_as_the_record_path(tmp_path):
    ann, audio = _annotations(tmp_path)
    with pytest.raises(UserError, match="unknown split 'dev'"):
        msd_clips(ann, audio, split="dev")
    with pytest.raises(UserError, match="caption field 'caption'"):
        msd_clips(ann, audio, caption_field="caption")
    rows = _rows("train", 3)
    rows["track_id"][1] = " "
    bad = tmp_path / "bad"
    bad.mkdir()
    datasets.Dataset.from_dict(rows).to_parquet(str(bad / "train.parquet"))
    with pytest.raises(UserError, match=r"train:2.*'track_id'"):
        msd_clips(bad, audio)
