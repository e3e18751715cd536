"""MusicInstruct in its known format (no real copy exists offline), and the record types."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from musilingo.data import AUDIO_EXTENSIONS, DATASETS, read_dataset
from musilingo.data.records import AudioLocator, DatasetRecords, Record


def _write_instruct(path: Path) -> list[dict]:
    items = [
        {"ytid": "clipA", "question": "What is the genre?", "answer": "Jazz.",
         "is_audioset_eval": True, "sampling_rate": 48000},
        {"ytid": "clipA", "question": "What instruments?", "answer": "Piano and bass.",
         "is_audioset_eval": True, "sampling_rate": 48000, "caption": "A jazz trio."},
        {"ytid": "clipB", "question": "Mood?", "answer": "Calm.",
         "is_audioset_eval": "False", "sampling_rate": 44100},
        {"ytid": "clipC", "question": "Tempo?", "answer": "Fast.",
         "is_audioset_eval": "false", "sampling_rate": 44100},
    ]
    path.write_text(json.dumps({"QA": items}, indent=2))
    return items


def test_musicinstruct_records_splits_and_meta(tmp_path):
    annotations = tmp_path / "music_instruct.json"
    items = _write_instruct(annotations)
    audio = tmp_path / "MusicCaps"
    audio.mkdir()
    (audio / "clipA.wav").write_bytes(b"x")
    (audio / "clipB.ogg").write_bytes(b"x")  # a non-wav download is found too
    data = read_dataset("musicinstruct", annotations, audio)
    assert [r.texts for r in data.records] == [
        {"question": i["question"], "answer": i["answer"]} for i in items[:3]]
    assert [r.split for r in data.records] == ["test", "test", "train"]
    assert data.records[2].audio_path == audio.absolute() / "clipB.ogg"
    assert [r.clip_id for r in data.missing] == ["clipC"]
    assert data.records[1].meta == {"ytid": "clipA", "sampling_rate": 48000,
                                    "caption": "A jazz trio."}
    assert [c.clip_id for c in data.clips()] == ["clipA", "clipB"]
    assert data.records[0].source == f"{annotations}:3"
    train = read_dataset("musicinstruct", annotations, audio, split="train")
    assert [r.clip_id for r in train.records + train.missing] == ["clipB", "clipC"]


def test_registry_names_and_extensions():
    assert list(DATASETS) == ["msd", "musiccaps", "musicinstruct", "musicqa", "songdescriber",
                              "muchomusic", "rul-muchomusic", "cmibench", "folder", "synth"]
    assert all(spec.kind in ("caption", "qa", "mcq", "rul", "audio")
               for spec in DATASETS.values())
    from musilingo.data import TEST_SETS, TRAIN_SETS

    assert "muchomusic" in TEST_SETS and "muchomusic" in TRAIN_SETS   # with a split column
    assert "songdescriber" in TEST_SETS and "songdescriber" not in TRAIN_SETS
    assert "rul-muchomusic" in TEST_SETS and "rul-muchomusic" not in TRAIN_SETS
    assert set(AUDIO_EXTENSIONS) == {".wav", ".flac", ".ogg", ".mp3",
                                     ".WAV", ".FLAC", ".OGG", ".MP3"}


def _record(clip_id: str, question: str) -> Record:
    return Record(clip_id=clip_id, audio_path=Path(f"/a/{clip_id}.wav"), split="train",
                  texts={"question": question, "answer": "x"}, source=f"f.json:{question}")


def test_clips_keeps_first_occurrence_in_order():
    data = DatasetRecords("t", [_record("b", "1"), _record("a", "2"), _record("b", "3"),
                                _record("c", "4"), _record("a", "5")], missing=[])
    assert [(c.clip_id, c.source) for c in data.clips()] == [
        ("b", "f.json:1"), ("a", "f.json:2"), ("c", "f.json:4")]
    assert Record("x", Path("x"), "test", {}, "s").meta == {}


def test_audio_locator_extension_fallback(tmp_path):
    (tmp_path / "one.FLAC").write_bytes(b"x")
    (tmp_path / "two.wav").write_bytes(b"x")
    (tmp_path / "two.mp3").write_bytes(b"x")
    locator = AudioLocator()
    assert locator.find(tmp_path / "one.wav") == tmp_path / "one.FLAC"
    assert locator.find(tmp_path / "two.wav") == tmp_path / "two.wav"  # the asked-for file wins
    assert locator.find(tmp_path / "three.wav") == tmp_path / "three.wav"
    assert not locator.exists(tmp_path / "three.wav")
    assert not locator.exists(tmp_path / "no_such_dir" / "x.wav")


@pytest.mark.parametrize("name", ["musiccaps", "musicinstruct", "musicqa", "songdescriber"])
def test_default_audio_root_is_the_annotation_folder(name, tmp_path, shared_data):
    if name == "musicinstruct":
        annotations = tmp_path / "mi.json"
        _write_instruct(annotations)
    else:
        annotations = {"musiccaps": "musiccaps/musiccaps-public.csv",
                       "musicqa": "musicqa/EvalMusicQA.json",
                       "songdescriber": "song_describer/song_describer.csv"}[name]
        annotations = shared_data / "annotations" / annotations
    data = read_dataset(name, annotations, None)
    first = (data.records + data.missing)[0]
    assert first.audio_path.is_relative_to(annotations.parent.absolute())


def test_confine_keeps_paths_under_the_root_and_nothing_beside_it(tmp_path):
    """A sibling folder sharing the root's name as a prefix is outside; `..` is normalised."""
    from musilingo.data.records import DatasetRecords, Record

    root = tmp_path / "audio"

    def rec(path):
        return Record(clip_id=str(path), audio_path=path, split="train", texts={}, source="a:1")

    inside = [rec(root / "x.wav"), rec(root / "d" / ".." / "y.wav"), rec(root / "d" / "z.wav")]
    outside = [rec(tmp_path / "audio2" / "x.wav"), rec(root / ".." / "s.wav"), rec(Path("/etc/passwd"))]
    data = DatasetRecords(name="t", records=inside + outside[:2], missing=outside[2:], root=root)
    data.confine()
    assert data.records == inside and data.missing == []
    assert [r for r, _ in data.refused] == outside


def test_confine_refuses_symlinks_that_lead_outside_the_root(tmp_path):
    """A link inside --audio-root to a file or folder outside it is refused like `..`; a link
    to another file under the root is fine, and so is a root that is itself a link."""
    from musilingo.data.records import DatasetRecords, Record

    real_root, outside = tmp_path / "store", tmp_path / "private"
    (real_root / "d").mkdir(parents=True)
    outside.mkdir()
    for f in (real_root / "a.wav", real_root / "d" / "b.wav", outside / "s.wav"):
        f.write_bytes(b"RIFF")
    root = tmp_path / "audio"
    root.symlink_to(real_root)                                  # a linked root: allowed
    (real_root / "to_secret.wav").symlink_to(outside / "s.wav")
    (real_root / "to_b.wav").symlink_to(real_root / "d" / "b.wav")
    (real_root / "out").symlink_to(outside)

    def rec(name):
        return Record(clip_id=name, audio_path=root / name, split="train", texts={}, source="a:1")

    names = ["a.wav", "d/b.wav", "to_b.wav", "to_secret.wav", "out/s.wav"]
    data = DatasetRecords(name="t", records=[rec(n) for n in names], missing=[], root=root)
    data.confine()
    assert [r.clip_id for r in data.records] == ["a.wav", "d/b.wav", "to_b.wav"]
    assert [r.clip_id for r, _ in data.refused] == ["to_secret.wav", "out/s.wav"]
    assert all("is a symlink to" in why and str(outside) in why for _, why in data.refused)
    allowed = DatasetRecords(name="t", records=[rec(n) for n in names], missing=[], root=root)
    assert len(allowed.confine(allow_outside=True).records) == 5
