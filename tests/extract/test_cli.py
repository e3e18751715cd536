"""`musilingo extract` through the data-set readers: missing audio is counted and reported (not
fatal), malformed annotation rows stop with an error naming file and line, --split and --max-clips."""
from __future__ import annotations

import shutil

import pytest

from musilingo.cache import FeatureCache
from musilingo.cli import main
from musilingo.errors import UserError

from tests.helpers.extraction import REAL

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
        main(["extract", "--no-progress", "--segment-seconds", "5", "--decode-workers", "0", *args])
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
                       str(audio), "--out", str(out), "--split", "test", "--max-clips", "1")
    assert code == 0, err
    cache = FeatureCache.open(out)
    assert cache.plan.clip_id == ["aaa"] and cache.meta["dataset"]["split"] == "test"
    # another --max-clips is another clip list: refused, with the reason
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
                           (["--max-clips", "0"], "--max-clips must be positive"),
                           (["--shard-rows", "0"], "shard_rows=0 must be positive"),
                           (["shard_rows=0"], "shard_rows=0 must be positive"),
                           (["--segment-seconds", "nan"], "segment_seconds=nan must be a finite number"),
                           (["--encoder-dtype", "fp64"], "--encoder-dtype='fp64': use one of")):
        code, _, err = run(capsys, *args, *extra)
        assert code == 2 and message in err, err
    code, _, err = run(capsys, "--dataset", "folder", "--audio-root", str(root / "empty_dir_x"),
                       "--out", str(root / "z.zarr"))
    assert code == 2 and "not a folder" in err


def test_one_dtype_vocabulary_for_every_verb():
    """fp32/bf16/fp16 or torch's long names, in extract as in train; the cache records torch's."""
    from musilingo.extract.config import ExtractConfig
    from musilingo.train.config import TrainConfig

    for given, short, long in (("fp32", "fp32", "float32"), ("bf16", "bf16", "bfloat16"),
                               ("float16", "fp16", "float16"), ("BFloat16", "bf16", "bfloat16")):
        cfg = ExtractConfig(out="x.zarr", encoder_dtype=given).validate()
        assert (cfg.encoder_dtype, cfg.torch_dtype_name) == (short, long)
        train = TrainConfig(datasets=[{"name": "synth"}], dtype=given).validate()
        assert train.dtype == short
    with pytest.raises(UserError, match="--encoder-dtype='fp64': use one of fp32, bf16, fp16"):
        ExtractConfig(out="x.zarr", encoder_dtype="fp64").validate()


def test_extract_takes_a_recipe_flags_and_overrides(tmp_path, capsys, monkeypatch):
    """recipe < flags < key=value, as in every verb: the shipped recipe is read, a flag replaces
    one of its values, and an override replaces the flag's; an old key name still works, with
    one deprecation line; the flat recipe names of earlier releases still resolve."""
    from musilingo import options
    from musilingo.extract.config import ExtractConfig

    monkeypatch.setattr(options, "_warned", set())
    for recipe in ("msd", "extract_msd"):
        cfg = options.load_config(ExtractConfig, "extract", recipe,
                                  {"batch_size": 4, "stride": None, "out": str(tmp_path / "c")},
                                  ["batch_size=2", "limit=5"])
        assert (cfg.dataset, cfg.encoder, cfg.stride, cfg.batch_size, cfg.max_clips,
                cfg.storage_dtype) == ("msd", "mert-330m", 325, 2, 5, "float16")
    assert capsys.readouterr().err.count("`limit` is now called `max_clips`") == 1
    with pytest.raises(UserError, match="unknown config key.*batchsize.*musilingo extract --help"):
        ExtractConfig.from_dict({"batchsize": 3})
    with pytest.raises(UserError, match="max_clips='x' is not a int"):
        ExtractConfig.from_dict({"limit": "x"})
    with pytest.raises(UserError, match="no recipe 'pretrain_msd' for musilingo extract: .*msd, "
                                        "musiccaps"):
        options.load_recipe("pretrain_msd", "extract")