"""The readers on the real third-party annotation files (shared_data; skipped when absent)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from musilingo.data import AUDIO_EXTENSIONS, read_dataset


@pytest.fixture(scope="module")
def musiccaps_csv(shared_data: Path) -> Path:
    return shared_data / "annotations" / "musiccaps" / "musiccaps-public.csv"


@pytest.fixture(scope="module")
def musicqa_json(shared_data: Path) -> Path:
    return shared_data / "annotations" / "musicqa" / "EvalMusicQA.json"


@pytest.fixture(scope="module")
def sdd_csv(shared_data: Path) -> Path:
    return shared_data / "annotations" / "song_describer" / "song_describer.csv"


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not really audio; the readers only check existence")


def test_musiccaps_counts_and_splits(musiccaps_csv, tmp_path):
    data = read_dataset("musiccaps", musiccaps_csv, tmp_path)
    everything = data.records + data.missing
    assert len(everything) == 5521
    assert data.records == [] and len(data.missing) == 5521  # no audio in tmp_path
    assert sum(r.split == "test" for r in everything) == 2858
    assert {r.split for r in everything} == {"train", "test"}
    assert len({r.clip_id for r in everything}) == 5521
    test = read_dataset("musiccaps", musiccaps_csv, tmp_path, split="test")
    assert len(test.missing) == 2858 and all(r.split == "test" for r in test.missing)


def test_musiccaps_record_fields_match_the_csv(musiccaps_csv, tmp_path):
    with musiccaps_csv.open(newline="") as handle:
        first = next(csv.DictReader(handle))
    record = read_dataset("musiccaps", musiccaps_csv, tmp_path).missing[0]
    assert record.clip_id == first["ytid"]
    assert record.texts == {"caption": first["caption"]}
    assert record.audio_path == tmp_path.absolute() / f"{first['ytid']}.wav"
    assert record.source == f"{musiccaps_csv}:2"
    assert record.meta["aspect_list"][0] == "low quality"  # parsed from the list literal
    assert record.meta["start_s"] == int(first["start_s"])
    assert record.split == ("test" if first["is_audioset_eval"] == "True" else "train")


def test_musiccaps_missing_audio_counted_and_other_extensions_found(musiccaps_csv, tmp_path):
    all_ids = [r.clip_id for r in read_dataset("musiccaps", musiccaps_csv, tmp_path).missing]
    _touch(tmp_path / f"{all_ids[0]}.wav")
    _touch(tmp_path / f"{all_ids[1]}.flac")
    _touch(tmp_path / f"{all_ids[2]}.MP3")
    _touch(tmp_path / f"{all_ids[3]}.txt")  # not audio: stays missing
    data = read_dataset("musiccaps", musiccaps_csv, tmp_path)
    assert [r.clip_id for r in data.records] == all_ids[:3]
    assert [r.audio_path.name for r in data.records] == [
        f"{all_ids[0]}.wav", f"{all_ids[1]}.flac", f"{all_ids[2]}.MP3"]
    assert len(data.missing) == 5521 - 3
    assert data.missing[0].audio_path.name == f"{all_ids[3]}.wav"
    assert "3 records over 3 clips" in data.summary() and "5518 records" in data.summary()


def test_musicqa_eval_pairs_and_clips(musicqa_json, tmp_path):
    data = read_dataset("musicqa", musicqa_json, tmp_path)
    everything = data.missing
    assert len(everything) == 5040 and data.records == []
    assert len({r.clip_id for r in everything}) == 560
    assert {r.split for r in everything} == {"test"}  # an "Eval" file is the test split
    raw = json.loads(musicqa_json.read_text())
    assert everything[0].texts == {"question": raw[0]["conversation"][0]["value"],
                                   "answer": raw[0]["conversation"][1]["value"]}
    assert everything[0].clip_id == raw[0]["audio_name"].rsplit(".", 1)[0]
    assert everything[0].source == f"{musicqa_json}:2"
    assert everything[1].source == f"{musicqa_json}:15"  # the line where item 2 starts
    assert musicqa_json.read_text().splitlines()[14].strip() == "{"


def test_musicqa_clips_with_audio_and_split_label(musicqa_json, tmp_path):
    names = sorted({r.meta["audio_name"] for r in
                    read_dataset("musicqa", musicqa_json, tmp_path).missing})[:3]
    for name in names:
        _touch(tmp_path / name)
    data = read_dataset("musicqa", musicqa_json, tmp_path, split="train")
    assert len(data.records) == 27  # 9 questions per track
    assert [c.meta["audio_name"] for c in data.clips()] == names
    assert {r.split for r in data.records + data.missing} == {"train"}


def test_songdescriber_counts_split_and_two_minute_variant(sdd_csv, tmp_path):
    data = read_dataset("songdescriber", sdd_csv, tmp_path)
    assert len(data.missing) == 1106 and data.records == []
    assert len({r.clip_id for r in data.missing}) == 706
    assert {r.split for r in data.missing} == {"test"}
    assert sum(r.meta["is_valid_subset"] is True for r in data.missing) == 746
    assert sum(r.meta["is_valid_subset"] is None for r in data.missing) == 332
    first = data.missing[0]
    assert first.meta["path"] == "34/1004034.mp3"
    _touch(tmp_path / "34" / "1004034.2min.mp3")
    again = read_dataset("songdescriber", sdd_csv, tmp_path)
    present = [r for r in again.records if r.clip_id == "1004034"]
    assert present and present[0].audio_path == tmp_path.absolute() / "34" / "1004034.2min.mp3"
    assert read_dataset("songdescriber", sdd_csv, tmp_path, split="train").missing == []


def test_folder_reader_on_real_audio(shared_data):
    root = shared_data / "audio"
    expected = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                      if p.suffix in AUDIO_EXTENSIONS)
    data = read_dataset("folder", None, root)
    assert len(expected) > 20
    assert [r.meta["relative_path"] for r in data.records] == expected
    assert len({r.clip_id for r in data.records}) == len(expected)
    ids = {r.clip_id for r in data.records}
    assert "lp-music-caps-samples/orchestra" in ids
    assert {"librosa-data/Kevin_MacLeod_-_Vibe_Ace",
            "librosa-data/Kevin_MacLeod_-_Vibe_Ace.hq"} <= ids
    assert all(r.audio_path.is_file() and r.split == "test" and r.texts == {}
               for r in data.records)
    assert data.missing == []
    assert read_dataset("folder", None, root, split="train").records == []


@pytest.fixture(scope="module")
def lpmc_folder(shared_data: Path) -> Path:
    return shared_data / "annotations" / "lp-music-caps" / "musiccaps_sample20"


def test_lp_musiccaps_annotation_json_reads_like_the_csv(lpmc_folder, musiccaps_csv, tmp_path):
    """Before: LP-MusicCaps' own annotation.json failed (msd: a vague DatasetGenerationError;
    musiccaps: "missing column 'ytid'")."""
    data = read_dataset("musiccaps", lpmc_folder, tmp_path)        # the folder, or the file
    same = read_dataset("musiccaps", lpmc_folder / "annotation.json", tmp_path)
    everything = data.missing
    assert len(everything) == 20 and [r.clip_id for r in same.missing] == [r.clip_id for r in everything]
    # track_split.json puts all 20 in train, whatever is_audioset_eval says (10 are True)
    assert {r.split for r in everything} == {"train"}
    assert sum(r.meta["is_audioset_eval"] for r in everything) == 10
    first = everything[0]
    assert first.clip_id == "rOOBAGxxjBk" and first.meta["start_s"] == 10
    assert "tuba" in first.meta["aspect_list"] and first.texts["caption"].startswith("This music")
    # The same clip, the same caption and id as in the official CSV: one cache serves both.
    csv_rows = {r.clip_id: r for r in read_dataset("musiccaps", musiccaps_csv, tmp_path).missing}
    for record in everything:
        assert csv_rows[record.clip_id].texts == record.texts
        assert csv_rows[record.clip_id].meta["aspect_list"] == record.meta["aspect_list"]
    assert read_dataset("musiccaps", lpmc_folder, tmp_path, split="test").missing == []


def test_lp_musiccaps_folder_given_to_msd_names_the_right_reader(lpmc_folder, tmp_path):
    from musilingo.errors import UserError

    with pytest.raises(UserError, match="LP-MusicCaps' MusicCaps layout.*--dataset musiccaps"):
        read_dataset("msd", lpmc_folder, tmp_path)


def test_lp_musiccaps_json_without_split_file_uses_is_audioset_eval(lpmc_folder, tmp_path):
    (tmp_path / "annotation.json").write_bytes((lpmc_folder / "annotation.json").read_bytes())
    data = read_dataset("musiccaps", tmp_path / "annotation.json", tmp_path)
    assert sum(r.split == "test" for r in data.missing) == 10


@pytest.mark.parametrize("name,lines,tests,clips", [("CMI_MusicCaps", 5451, 2813, 5451),
                                                    ("CMI_SDD", 1106, 1106, 706)])
def test_cmi_bench_jsonl(shared_data, tmp_path, name, lines, tests, clips):
    path = shared_data / "annotations" / "cmi-bench" / f"{name}.jsonl"
    data = read_dataset("cmibench", path, tmp_path)
    everything = data.records + data.missing
    assert len(everything) == lines and sum(r.split == "test" for r in everything) == tests
    assert len({r.clip_id for r in everything}) == clips
    first = json.loads(path.read_text().splitlines()[0])
    record = everything[0]
    assert record.texts == {"question": first["instruction"], "answer": first["output"]}
    assert record.meta["audio_path"] == first["audio_path"][0]
    _touch(tmp_path / first["audio_path"][0])                  # audio under the CMI-Bench root
    again = read_dataset("cmibench", path, tmp_path, split=first["split"][0])
    assert [r.clip_id for r in again.records] == [record.clip_id]


def test_cmi_bench_clip_ids_match_the_musiccaps_and_sdd_readers(shared_data, musiccaps_csv,
                                                                sdd_csv, tmp_path):
    cmi = shared_data / "annotations" / "cmi-bench"
    mc = {r.clip_id for r in read_dataset("musiccaps", musiccaps_csv, tmp_path).missing}
    sdd = {r.clip_id for r in read_dataset("songdescriber", sdd_csv, tmp_path).missing}
    cmi_mc = {r.clip_id for r in read_dataset("cmibench", cmi / "CMI_MusicCaps.jsonl",
                                              tmp_path).missing}
    cmi_sdd = {r.clip_id for r in read_dataset("cmibench", cmi / "CMI_SDD.jsonl",
                                               tmp_path).missing}
    assert cmi_mc <= mc and cmi_sdd == sdd


def test_cmi_bench_bad_lines_name_the_line(tmp_path):
    from musilingo.errors import UserError

    good = {"instruction": "Describe.", "input": "", "output": "A song.", "split": ["test"],
            "audio_path": ["a/x.wav"]}
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(dict(good, split="nope")) + "\n")
    with pytest.raises(UserError, match=r"c.jsonl:3: split 'nope'"):
        read_dataset("cmibench", path, tmp_path)
    path.write_text(json.dumps(good) + "\n{oops\n")
    with pytest.raises(UserError, match=r"c.jsonl:2: not a JSON object"):
        read_dataset("cmibench", path, tmp_path)
    path.write_text(json.dumps(dict(good, audio_path=["../../etc/passwd.wav"])) + "\n")
    (tmp_path / "a").mkdir()
    data = read_dataset("cmibench", path, tmp_path / "a")
    assert data.records == [] and len(data.refused) == 1       # outside the root: refused


def test_an_inconsistent_or_malformed_track_split_is_refused(lpmc_folder, tmp_path):
    """A clip in two splits, or a split file that is not LP-MusicCaps' layout, was ignored (the
    clip landed in whichever list came last); now it is refused naming the file and the clip."""
    import json
    import re
    import shutil

    from musilingo.errors import UserError

    folder = tmp_path / "lpmc"
    shutil.copytree(lpmc_folder, folder)
    table = json.loads((folder / "track_split.json").read_text())
    clip = table["train_track"][0]
    table["test_track"] = [*table.get("test_track", []), clip]
    (folder / "track_split.json").write_text(json.dumps(table))
    with pytest.raises(UserError, match=rf"track_split.json: clip {re.escape(clip)} is in both "
                                        r"train_track and test_track"):
        read_dataset("musiccaps", folder, tmp_path)
    (folder / "track_split.json").write_text(json.dumps(["a", "b"]))
    with pytest.raises(UserError, match="track_split.json: expected an object of clip lists"):
        read_dataset("musiccaps", folder, tmp_path)
