"""`musilingo extract` through the data-set readers: missing audio is counted and reported (not
fatal), malformed annotation rows stop with an error naming file and line, --split and --limit."""
from __future__ import annotations

import shutil

import pytest

from musilingo.cache import FeatureCache
from musilingo.cli import main

from extract_helpers import REAL

HEADER = ("ytid,start_s,end_s,audioset_positive_labels,aspect_list,caption,author_id,"
          "is_balanced_subset,is_audioset_eval\n")


def row(ytid, test=True):
    return f"{ytid},0,10,/m/0,\"['piano']\",A caption for {ytid}.,1,False,{test}\n"


@pytest.fixture
def musiccaps(shared_data, tmp_path):
    audio = tmp_path / "wav"
    audio.mkdir()
    for ytid, name in (("aaa", REAL[0]), ("bbb", REAL[2])):
        shutil.copy(shared_data / "audio" / name, audio / f"{ytid}.ogg")
    return tmp_path, audio


def run(capsys, *args):
    code = 0
    try:
        main(["extract", "--no-progress", "--segment-seconds", "5", "--num-workers", "0", *args])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_missing_audio_is_reported_not_fatal(musiccaps, capsys):
    root, audio = musiccaps
    csv = root / "mc.csv"
    csv.write_text(HEADER + row("aaa") + row("ccc") + row("bbb") + row("ddd", test=False))
    out = root / "c.zarr"
    code, stdout, err = run(capsys, "--dataset", "musiccaps", "--annotations", str(csv),
                            "--audio-root", str(audio), "--out", str(out))
    assert code == 0, err
    assert "lack their audio file" in err  # the reader's count, before extraction
    assert "2 clips lack their audio file (recorded as failed)" in stdout
    cache = FeatureCache.open(out)
    assert cache.clip_ids == ["aaa", "bbb"]
    assert {c for c, _, r in cache.failures() if "not found" in r} == {"ccc", "ddd"}
    assert any("mc.csv:" in r for _, _, r in cache.failures())  # names the annotation row


def test_split_and_limit(musiccaps, capsys):
    root, audio = musiccaps
    csv = root / "mc.csv"
    csv.write_text(HEADER + row("aaa") + row("bbb", test=False) + row("ccc"))
    out = root / "t.zarr"
    code, _, err = run(capsys, "--dataset", "musiccaps", "--annotations", str(csv), "--audio-root",
                       str(audio), "--out", str(out), "--split", "test", "--limit", "1")
    assert code == 0, err
    cache = FeatureCache.open(out)
    assert cache.plan.clip_id == ["aaa"] and cache.meta["dataset"]["split"] == "test"
    # another --limit is another clip list: refused, with the reason
    code, _, err = run(capsys, "--dataset", "musiccaps", "--annotations", str(csv), "--audio-root",
                       str(audio), "--out", str(out), "--split", "test")
    assert code == 2 and "different clip list" in err


def test_malformed_annotation_row_names_file_and_line(musiccaps, capsys):
    root, audio = musiccaps
    csv = root / "bad.csv"
    csv.write_text(HEADER + row("aaa") + row("bbb").replace(",False,True", ",False,maybe"))
    code, _, err = run(capsys, "--dataset", "musiccaps", "--annotations", str(csv),
                       "--audio-root", str(audio), "--out", str(root / "x.zarr"))
    assert code == 2 and err.startswith("error: ") and f"{csv}:3" in err, err
    assert not (root / "x.zarr").exists()


def test_bad_options_are_user_errors(musiccaps, capsys):
    root, audio = musiccaps
    args = ["--dataset", "folder", "--audio-root", str(audio), "--out", str(root / "y.zarr")]
    for extra, message in ((["--stride", "100"], "does not divide 325"),
                           (["--limit", "0"], "--limit must be positive"),
                           (["--shard-rows", "0"], "--shard-rows must be positive")):
        code, _, err = run(capsys, *args, *extra)
        assert code == 2 and message in err, err
    code, _, err = run(capsys, "--dataset", "folder", "--audio-root", str(root / "empty_dir_x"),
                       "--out", str(root / "z.zarr"))
    assert code == 2 and "not a folder" in err


def test_encoder_dtype_takes_trains_vocabulary_too():
    from musilingo.extract.config import ExtractConfig, validate

    for short, long in (("fp32", "float32"), ("bf16", "bfloat16"), ("fp16", "float16"),
                        ("bfloat16", "bfloat16")):
        cfg = ExtractConfig(out="x.zarr", encoder_dtype=short)
        validate(cfg)
        assert cfg.encoder_dtype == long   # what the cache metadata records
