"""Malformed annotations give ONE-line UserErrors naming the file, the line and the field."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from musilingo.data import read_dataset
from musilingo.errors import UserError


def _item_starts(path: Path, opening: str) -> list[int]:
    """1-based numbers of the lines that open a JSON item (`opening` is its indented brace)."""
    return [number for number, line in enumerate(path.read_text().splitlines(), 1)
            if line == opening]


def _error(*args, **kwargs) -> str:
    with pytest.raises(UserError) as caught:
        read_dataset(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture()
def musiccaps_lines(shared_data: Path) -> list[str]:
    path = shared_data / "annotations" / "musiccaps" / "musiccaps-public.csv"
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_missing_annotation_file_is_named(tmp_path):
    absent = tmp_path / "nope.csv"
    for name in ("musiccaps", "musicinstruct", "musicqa", "songdescriber"):
        message = _error(name, absent, tmp_path)
        assert str(absent) in message and "does not exist" in message
    assert "no annotation file given" in _error("musiccaps", None, tmp_path)
    assert "is a directory" in _error("musicqa", tmp_path, tmp_path)


def test_unknown_name_split_and_caption_field(tmp_path):
    assert "use one of msd, musiccaps" in _error("musicnet", None, tmp_path)
    assert "unknown split 'validation'" in _error("folder", None, tmp_path, split="validation")
    assert "caption_writing" in _error("msd", tmp_path, tmp_path, caption_field="caption")


def test_musiccaps_missing_column(musiccaps_lines, tmp_path):
    broken = tmp_path / "captions.csv"
    # Rename the caption column: every row still parses, but the required column is absent.
    broken.write_text(musiccaps_lines[0].replace(",caption,", ",text,") +
                      "".join(musiccaps_lines[1:20]), encoding="utf-8")
    message = _error("musiccaps", broken, tmp_path)
    assert message.startswith(f"{broken}:1: missing column 'caption'")
    assert "use a MusicCaps CSV" in message


def test_musiccaps_bad_rows_name_their_line(musiccaps_lines, tmp_path):
    good = "".join(musiccaps_lines[:6])
    broken = tmp_path / "bad_bool.csv"
    broken.write_text(good + musiccaps_lines[6].replace(",False,True", ",False,maybe")
                      .replace(",False,False", ",False,maybe"), encoding="utf-8")
    assert _error("musiccaps", broken, tmp_path).startswith(
        f"{broken}:7: field 'is_audioset_eval' is 'maybe'")

    short = tmp_path / "short_row.csv"
    short.write_text(good + "abc,30,40\n", encoding="utf-8")
    assert _error("musiccaps", short, tmp_path).startswith(
        f"{short}:7: row has 3 fields but the header has 9")

    aspects = tmp_path / "aspects.csv"
    aspects.write_text(good + musiccaps_lines[6].replace("['", "[oops '", 1), encoding="utf-8")
    assert _error("musiccaps", aspects, tmp_path).startswith(
        f"{aspects}:7: column 'aspect_list' is not a list of strings")


def test_musicqa_broken_json_names_the_line(shared_data, tmp_path):
    items = json.loads((shared_data / "annotations" / "musicqa" / "EvalMusicQA.json").read_text())
    lines = json.dumps(items[:5], indent=2).splitlines()
    lines[20] = lines[20].rstrip(",")  # drop a comma between two fields: invalid JSON
    broken = tmp_path / "EvalMusicQA.json"
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(json.JSONDecodeError) as reference:
        json.loads(broken.read_text())
    message = _error("musicqa", broken, tmp_path)
    assert message.startswith(f"{broken}:{reference.value.lineno}: invalid JSON (Expecting")
    assert "fix the file or download it again" in message


def test_musicqa_wrong_turns_and_types(tmp_path):
    path = tmp_path / "qa.json"
    good = {"audio_name": "a.wav", "conversation": [{"from": "human", "value": "Q"},
                                                    {"from": "gpt", "value": "A"}]}
    swapped = {"audio_name": "b.wav", "conversation": [{"from": "gpt", "value": "A"},
                                                       {"from": "human", "value": "Q"}]}
    path.write_text(json.dumps([good, swapped], indent=1))
    second = _item_starts(path, " {")[1]
    assert second > 2
    message = _error("musicqa", path, tmp_path)
    assert message.startswith(
        f"{path}:{second}: conversation turn 1 is from 'gpt', expected 'human'")

    path.write_text(json.dumps([good, {"audio_name": 7, "conversation": []}], indent=1))
    assert _error("musicqa", path, tmp_path).startswith(
        f"{path}:{second}: field 'audio_name' is a int, not a string")

    path.write_text(json.dumps({"QA": [good]}))
    assert "expected a JSON list at the top level" in _error("musicqa", path, tmp_path)


def test_musicinstruct_missing_field_and_bad_json(tmp_path):
    path = tmp_path / "music_instruct.json"
    item = {"ytid": "abc", "question": "Q?", "answer": "A.", "is_audioset_eval": True,
            "sampling_rate": 48000}
    incomplete = {key: value for key, value in item.items() if key != "answer"}
    path.write_text(json.dumps({"QA": [item, item, incomplete]}, indent=1))
    third = _item_starts(path, "  {")[2]
    assert third > 3
    message = _error("musicinstruct", path, tmp_path)
    assert message.startswith(f"{path}:{third}: item has no 'answer' field")
    assert "add 'answer'" in message

    path.write_text(json.dumps({"QA": [item, {**item, "sampling_rate": "fast"}]}, indent=1))
    second = _item_starts(path, "  {")[1]
    assert _error("musicinstruct", path, tmp_path).startswith(
        f"{path}:{second}: field 'sampling_rate' is 'fast', not a number")

    path.write_text(json.dumps({"questions": [item]}))
    assert "field 'QA' (a list) not found" in _error("musicinstruct", path, tmp_path)

    path.write_text('{"QA": [\n' + json.dumps(item) + ",\n" + json.dumps(item)[:-1] + "\n]}")
    assert _error("musicinstruct", path, tmp_path).startswith(f"{path}:4: invalid JSON")


def test_songdescriber_bad_value(shared_data, tmp_path):
    lines = (shared_data / "annotations" / "song_describer" / "song_describer.csv"
             ).read_text(encoding="utf-8").splitlines(keepends=True)
    broken = tmp_path / "sdd.csv"
    broken.write_text("".join(lines[:3]) + lines[3].replace(",,0,7063", ",perhaps,0,7063"),
                      encoding="utf-8")
    assert _error("songdescriber", broken, tmp_path).startswith(
        f"{broken}:4: column 'is_valid_subset' is 'perhaps'")


def test_folder_errors(tmp_path):
    assert "no folder given" in _error("folder", None, None)
    assert "not a folder" in _error("folder", None, tmp_path / "absent")


def test_muchomusic_split_column(tmp_path):
    """A split column marks rows to train on; another word is refused naming its row; the
    benchmark's own CSV (no split column) is all test."""
    header = ("question,correct_answer,distractor_1_answer,distractor_2_answer,"
              "distractor_3_answer,audio_path")
    rows = ["Which?,soft,loud,quiet,gentle,a.wav", "Which?,fast,slow,medium,brisk,b.wav"]
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join([header, *rows]) + "\n")
    every = read_dataset("muchomusic", plain, tmp_path)
    assert [r.split for r in every.records + every.missing] == ["test", "test"]
    assert read_dataset("muchomusic", plain, tmp_path, split="train").missing == []
    marked = tmp_path / "marked.csv"
    marked.write_text("\n".join([header + ",split", rows[0] + ",train", rows[1] + ","]) + "\n")
    train = read_dataset("muchomusic", marked, tmp_path, split="train")
    assert [r.texts["answer"] for r in train.records + train.missing] == ["soft"]
    test = read_dataset("muchomusic", marked, tmp_path, split="test")
    assert [r.texts["answer"] for r in test.records + test.missing] == ["fast"]
    marked.write_text("\n".join([header + ",split", rows[0] + ",valid"]) + "\n")
    message = _error("muchomusic", marked, tmp_path)
    assert f"{marked}:2" in message and "'valid' is not train or test" in message


def test_muchomusic_categories_are_read_as_lists_and_bad_ones_named(tmp_path):
    """The benchmark writes its category columns as Python list literals; empty means none; a
    cell that is neither a list of names nor a plain name is refused naming row and column."""
    path = tmp_path / "m.csv"
    header = ("question,correct_answer,distractor_1_answer,distractor_2_answer,"
              "distractor_3_answer,audio_path,music_knowledge,music_reasoning,genre")
    rows = ['Which?,soft,loud,quiet,gentle,a.wav,"[\'Melody\', \'Instrumentation\']",,Pop',
            'Which?,fast,slow,medium,brisk,b.wav,[],Mood,Rock']
    path.write_text("\n".join([header, *rows]) + "\n")
    read = read_dataset("muchomusic", path, tmp_path)
    meta = [r.meta for r in read.records + read.missing]
    assert meta[0]["music_knowledge"] == ["Melody", "Instrumentation"]
    assert meta[0]["music_reasoning"] == [] and meta[1]["music_knowledge"] == []
    assert meta[1]["music_reasoning"] == ["Mood"] and meta[1]["genre"] == "Rock"
    path.write_text("\n".join([header, rows[0].replace("'Instrumentation'", "3")]) + "\n")
    message = _error("muchomusic", path, tmp_path)
    assert f"{path}:2" in message and "'music_knowledge' is not a list" in message
