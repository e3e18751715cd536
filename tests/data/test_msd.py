"""LP-MusicCaps-MSD from small real parquet / json / save_to_disk files with the real columns."""
from __future__ import annotations

from pathlib import Path

import datasets
import pytest

from musilingo.data import read_dataset
from musilingo.data.msd import MSD_COLUMNS
from musilingo.errors import UserError


def _rows(split: str, count: int) -> dict[str, list]:
    ids = [f"TR{split.upper()}{i:04d}" for i in range(count)]
    return {
        "track_id": ids,
        "title": [f"Song {i}" for i in range(count)],
        "artist_name": ["Artist"] * count,
        "release": ["Album"] * count,
        "year": [1990 + i for i in range(count)],
        "tag": [["rock", "guitar"]] * count,
        "caption_writing": [f"{split} writing {i}" for i in range(count)],
        "caption_summary": [f"{split} summary {i}" for i in range(count)],
        "caption_paraphrase": [f"{split} paraphrase {i}" for i in range(count)],
        "caption_attribute_prediction": [f"{split} attributes {i}" for i in range(count)],
        "path": [f"{i % 10}/{i % 7}/{track}.clip.mp3" for i, track in enumerate(ids)],
    }


SIZES = {"train": 6, "valid": 3, "test": 4}


@pytest.fixture()
def parquet_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "LP-MusicCaps-MSD" / "data"
    folder.mkdir(parents=True)
    for split, count in SIZES.items():
        datasets.Dataset.from_dict(_rows(split, count)).to_parquet(
            str(folder / f"{split}-00000-of-00001.parquet"))
    return folder.parent


def test_columns_are_the_real_ones():
    assert list(_rows("train", 1)) == list(MSD_COLUMNS)


def test_parquet_folder_all_splits(parquet_folder, tmp_path):
    audio = tmp_path / "msd_audio"
    data = read_dataset("msd", parquet_folder, audio)
    everything = data.records + data.missing
    assert data.records == [] and len(data.missing) == sum(SIZES.values())
    assert {split: sum(r.split == split for r in everything) for split in SIZES} == SIZES
    record = next(r for r in everything if r.clip_id == "TRVALID0001")
    assert record.split == "valid"
    assert record.texts["caption"] == "valid writing 1"
    assert record.texts["caption_summary"] == "valid summary 1"
    assert record.audio_path == audio.absolute() / "1/1/TRVALID0001.clip.mp3"
    assert record.meta["tag"] == ["rock", "guitar"] and record.meta["year"] == 1991
    assert record.source.endswith(":valid:2")


def test_split_caption_field_and_present_audio(parquet_folder, tmp_path):
    audio = tmp_path / "msd_audio"
    target = audio / "2/2/TRTEST0002.clip.mp3"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x")
    data = read_dataset("msd", parquet_folder, audio, split="test",
                        caption_field="caption_summary")
    assert [r.clip_id for r in data.records] == ["TRTEST0002"]
    assert len(data.missing) == SIZES["test"] - 1
    assert {r.split for r in data.records + data.missing} == {"test"}
    assert data.records[0].texts["caption"] == "test summary 2"
    assert data.records[0].texts["caption_writing"] == "test writing 2"


def test_single_json_file_and_save_to_disk(tmp_path):
    json_file = tmp_path / "msd_valid.json"
    datasets.Dataset.from_dict(_rows("valid", 3)).to_json(str(json_file))
    data = read_dataset("msd", json_file, tmp_path)
    assert [r.split for r in data.missing] == ["valid"] * 3  # split word in the file name

    saved = tmp_path / "saved"
    datasets.DatasetDict({split: datasets.Dataset.from_dict(_rows(split, count))
                          for split, count in SIZES.items()}).save_to_disk(str(saved))
    data = read_dataset("msd", saved, tmp_path, split="train")
    assert [r.clip_id for r in data.missing] == [f"TRTRAIN{i:04d}" for i in range(6)]


def test_missing_column_and_null_caption_are_user_errors(tmp_path):
    rows = _rows("train", 3)
    del rows["path"]
    no_path = tmp_path / "no_path" / "train.parquet"
    no_path.parent.mkdir()
    datasets.Dataset.from_dict(rows).to_parquet(str(no_path))
    with pytest.raises(UserError, match=r"missing column 'path'"):
        read_dataset("msd", no_path.parent, tmp_path)

    rows = _rows("train", 3)
    rows["caption_writing"][2] = None
    null = tmp_path / "null" / "train.parquet"
    null.parent.mkdir()
    datasets.Dataset.from_dict(rows).to_parquet(str(null))
    with pytest.raises(UserError, match=r":train:3: column 'caption_writing' is None"):
        read_dataset("msd", null.parent, tmp_path)


def test_unreadable_or_absent_sources(tmp_path):
    with pytest.raises(UserError, match="no parquet/arrow/json/csv files"):
        read_dataset("msd", tmp_path, tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        read_dataset("msd", tmp_path / "absent.parquet", tmp_path)
    broken = tmp_path / "broken" / "train.parquet"
    broken.parent.mkdir()
    broken.write_bytes(b"this is not parquet")
    with pytest.raises(UserError, match="could not read the annotation files"):
        read_dataset("msd", broken.parent, tmp_path)
