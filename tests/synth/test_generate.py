"""The synthetic music generator: files, determinism, reuse, reading back, balanced attributes."""
from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from musilingo.data import read_dataset
from musilingo.data.synth import load_attributes
from musilingo.data.items import LETTERS, mcq_reply, shuffled_options
from musilingo.evaluate.mcq import read_choice
from musilingo.synth import ATTRIBUTES, answer_is_correct, generate, mentioned_values
from musilingo.synth.language import MCQ_KINDS, mcq_option
from musilingo.errors import UserError

SMALL = {"n_train": 10, "n_test": 5, "seconds": 2.0, "sample_rate": 24000}
N_CLIPS = SMALL["n_train"] + SMALL["n_test"]


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("synth") / "set", seed=3, workers=2, **SMALL)


def test_files_and_formats(synth_folder):
    names = {p.name for p in synth_folder.iterdir()}
    assert names == {"audio", "captions.csv", "qa.json", "mcq.csv", "attributes.json",
                     "README.md", "manifest.json"}
    wavs = sorted((synth_folder / "audio").glob("*.wav"))
    assert len(wavs) == N_CLIPS
    info = sf.info(str(wavs[0]))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (24000, 1, 48000,
                                                                           "PCM_16")
    with (synth_folder / "captions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = ["ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption",
              "author_id", "is_balanced_subset", "is_audioset_eval"]
    assert list(rows[0]) == header
    assert Counter(r["is_audioset_eval"] for r in rows) == {"False": 10, "True": 5}
    qa = json.loads((synth_folder / "qa.json").read_text())["QA"]
    assert len(qa) == N_CLIPS * len(ATTRIBUTES)
    assert set(qa[0]) == {"ytid", "question", "answer", "is_audioset_eval", "sampling_rate",
                          "attribute", "value"}
    assert isinstance(qa[0]["is_audioset_eval"], bool)
    assert "manifest.json" in (synth_folder / "README.md").read_text()


def test_same_seed_is_byte_identical_and_other_seed_differs(synth_folder, tmp_path):
    again = generate(tmp_path / "again", seed=3, workers=1, **SMALL)
    assert _digests(again) == _digests(synth_folder)
    other = generate(tmp_path / "other", seed=4, workers=1, **SMALL)
    differing = {name for name, digest in _digests(other).items()
                 if _digests(synth_folder).get(name) != digest}
    assert "audio/train_0000.wav" in differing and "qa.json" in differing


def test_complete_folder_is_reused_and_changed_parameters_regenerate(tmp_path):
    folder = generate(tmp_path / "set", seed=1, workers=1, **SMALL)
    manifest = folder / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    wav = folder / "audio" / "train_0000.wav"
    wav_stamp = wav.stat().st_mtime_ns
    generate(folder, seed=1, workers=1, **SMALL)
    assert manifest.stat().st_mtime_ns == stamp and wav.stat().st_mtime_ns == wav_stamp

    wav.write_bytes(b"truncated")  # an incomplete or damaged folder is not reused
    generate(folder, seed=1, workers=1, **SMALL)
    assert sf.info(str(wav)).frames == 48000

    generate(folder, seed=1, workers=1, **{**SMALL, "n_train": 4})
    assert len(list((folder / "audio").glob("*.wav"))) == 4 + SMALL["n_test"]
    assert json.loads(manifest.read_text())["params"]["n_train"] == 4


def test_read_back_through_the_real_readers(synth_folder):
    data = read_dataset("synth", synth_folder, None)
    assert data.missing == [] and len(data.records) == N_CLIPS * len(ATTRIBUTES)
    assert len(data.clips()) == N_CLIPS
    attributes = load_attributes(synth_folder)
    for record in data.records:
        assert record.meta["value"] == attributes[record.clip_id][record.meta["attribute"]]
        assert record.meta["attributes"] == attributes[record.clip_id]
        assert answer_is_correct(record.texts["answer"], record.meta["attribute"],
                                 record.meta["value"])
        assert record.split == ("test" if record.clip_id.startswith("test_") else "train")
        assert record.audio_path == (synth_folder / "audio" / f"{record.clip_id}.wav").absolute()
    test = read_dataset("synth", synth_folder, None, split="test")
    assert len(test.clips()) == SMALL["n_test"]
    captions = read_dataset("synth", synth_folder / "captions.csv", None)
    assert len(captions.records) == N_CLIPS and set(captions.records[0].texts) == {"caption"}


def test_four_option_questions_read_back_through_the_muchomusic_reader(synth_folder):
    """mcq.csv is MuChoMusic's format: four distinct options per question, the right one names
    the clip's values, and its text is a reply the benchmark's rule reads as that option."""
    attributes = load_attributes(synth_folder)
    train = read_dataset("muchomusic", synth_folder / "mcq.csv", None, split="train")
    test = read_dataset("muchomusic", synth_folder / "mcq.csv", None, split="test")
    assert train.missing == [] and test.missing == []
    assert len(train.records) == SMALL["n_train"] * len(MCQ_KINDS)
    assert len(test.records) == SMALL["n_test"] * len(MCQ_KINDS)
    assert {r.split for r in test.records} == {"test"}
    assert all(r.clip_id.startswith("test_") for r in test.records)
    for record in train.records + test.records:
        kind = record.meta["kind"]
        names = MCQ_KINDS[kind][0]
        clip = attributes[record.clip_id]
        assert record.texts["answer"] == mcq_option(names, tuple(clip[a] for a in names))
        options = [record.texts["answer"], *record.meta["distractors"]]
        assert len(set(options)) == 4
        # no capital A-D (the rule's letter clause would fire) and no option inside another
        assert not set("".join(options)) & set(LETTERS), options
        assert not any(a != b and a in b for a in options for b in options), options
        shuffled, right = shuffled_options(options[0], options[1:], 0, key=record.clip_id)
        assert read_choice(mcq_reply(shuffled, right), shuffled) == right
        assert read_choice("A piano.", shuffled) == 0        # the rule's letter clause, unchanged
    kinds = Counter(r.meta["kind"] for r in test.records)
    assert kinds == {kind: SMALL["n_test"] for kind in MCQ_KINDS}


def test_the_right_option_sits_anywhere_after_the_shuffle(tmp_path):
    """Across many questions every position holds the answer about equally often, so a model
    that always says one letter scores chance (0.25)."""
    folder = generate(tmp_path / "set", seed=5, workers=1, n_train=60, n_test=0, seconds=0.5,
                      sample_rate=8000)
    records = read_dataset("muchomusic", folder / "mcq.csv", None, split="train").records
    where = Counter(shuffled_options(r.texts["answer"], r.meta["distractors"], 0,
                                     key=f"{r.clip_id}:{i}")[1] for i, r in enumerate(records))
    assert set(where) == {0, 1, 2, 3} and min(where.values()) > len(records) / 4 * 0.6, where


def test_captions_name_every_attribute_value(synth_folder):
    data = read_dataset("synth", synth_folder / "captions.csv", None)
    attributes = load_attributes(synth_folder)
    for record in data.records:
        for attribute, value in attributes[record.clip_id].items():
            assert mentioned_values(record.texts["caption"], attribute) == {value}, (
                attribute, value, record.texts["caption"])
    assert len({r.texts["caption"] for r in data.records}) == N_CLIPS


def test_attribute_values_are_balanced_within_each_split(tmp_path):
    from musilingo.synth import plan_clips
    plans = plan_clips("train", 60, seed=0)
    for attribute, values in ATTRIBUTES.items():
        counts = Counter(getattr(plan, attribute) for _, plan in plans)
        assert set(counts) == set(values)
        assert max(counts.values()) - min(counts.values()) <= 1, (attribute, counts)
    combos = {tuple(getattr(plan, a) for a in ("instrument", "tempo", "register"))
              for _, plan in plans}
    assert len(combos) > 30  # shuffled per attribute, not locked together


def test_a_folder_that_is_not_a_generation_is_refused(tmp_path):
    with pytest.raises(UserError, match="no manifest.json"):
        read_dataset("synth", tmp_path, None)
    with pytest.raises(UserError, match="absent: does not exist"):
        read_dataset("synth", tmp_path / "absent", None)
    with pytest.raises(UserError, match="at least one clip"):
        generate(tmp_path / "x", n_train=0, n_test=0)


def test_loud_clips_peak_near_full_scale_and_soft_clips_stay_quiet(synth_folder):
    attributes = load_attributes(synth_folder)
    for clip_id, values in attributes.items():
        audio, _ = sf.read(str(synth_folder / "audio" / f"{clip_id}.wav"))
        peak = np.abs(audio).max()
        assert (0.8 < peak < 0.95) if values["loudness"] == "loud" else (0.05 < peak < 0.15)
