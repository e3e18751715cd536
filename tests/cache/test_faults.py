"""Fault injection: damage a real cache (and its neighbours) on purpose; every reader refuses with
one line, nothing is lost, and a repaired re-run ends bit-identical to an undamaged cache.

The cache is made by `musilingo extract` with the tiny encoder over a small synthetic music set,
in float32, two rows per shard, so that each fault touches one shard of several.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import zarr

from musilingo.cache import FeatureCache
from musilingo.cache.verify import verify_cache
from tests.helpers.exploit import Exploit
from tests.helpers.cli import run_cli
from tests.helpers.extraction import assert_same_cache
from musilingo.cli import main
from tests.helpers.models import build_model

EXTRACT = ["--encoder", "tiny", "--segment-seconds", "2", "--shard-rows", "2", "--storage-dtype",
           "float32", "--stride", "65", "--decode-workers", "0", "--threads", "1", "--no-progress"]


cli = run_cli


def one_line_error(err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from musilingo.synth import generate

    return generate(tmp_path_factory.mktemp("faults") / "set", n_train=6, n_test=0, seconds=2.0,
                    workers=1)


def extract_args(synth, out):
    return ["extract", "--dataset", "synth", "--annotations", str(synth), "--out", str(out),
            *EXTRACT]


@pytest.fixture(scope="module")
def pristine(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("pristine") / "c.zarr"
    main(extract_args(synth, out))
    return out


@pytest.fixture
def cache(pristine, tmp_path):
    path = tmp_path / "c.zarr"
    shutil.copytree(pristine, path)
    return path


same_cache = assert_same_cache  # arrays, attributes and commit records, bit for bit


def readers_refuse(capsys, cache, synth, tmp_path, *needles, clip=None):
    """train, caption --cache and cache export each stop with one line naming the damage
    (caption asks for `clip`: the damaged one, or any when opening the cache already fails)."""
    clip = clip or sorted(p.stem for p in (synth / "audio").rglob("*.wav"))[0]
    code, _, err = cli(capsys, "train", "--stage", "pretrain", "--dataset", "synth",
                       "--annotations", str(synth / "captions.csv"), "--cache", str(cache),
                       "--llm", "tiny-llama", "--t", "130", "--max-steps", "1", "--no-progress",
                       "dtype=fp32", "deepspeed=zero0", "num_workers=0",
                       f"out={tmp_path / 'run'}")
    assert code == 2, err
    one_line_error(err, str(cache), *needles)
    code, _, err = cli(capsys, "caption", "--run", str(adapter_run(tmp_path)), "--cache",
                       str(cache), str(clip))
    assert code == 2, err
    one_line_error(err, str(cache), *needles)
    code, _, err = cli(capsys, "cache", "export", str(cache), "--out", str(tmp_path / "x.h5"))
    assert code == 2, err
    one_line_error(err, str(cache))
    assert not (tmp_path / "x.h5").exists()


def adapter_run(tmp_path):
    """A run folder that fits the tiny encoder's features (random adapter)."""
    folder = tmp_path / "adapter"
    if not (folder / "adapter.safetensors").exists():
        from musilingo.models.prompts import get_template
        from musilingo.runs.adapter_file import save_adapter

        model = build_model("tiny-llama", encoder_dim=128, num_layers=3, stride=65, t=130,
                            template=get_template("caption"))
        save_adapter(folder, model.config, model.adapter.state_dict())
    return folder


def test_deleted_shard_file_is_an_error_not_zeros(cache, pristine, synth, tmp_path, capsys):
    lost = cache / "features" / "c.1.0.0.0"
    lost.unlink()
    with pytest.raises(Exception, match=r"features/c\.1\.0\.0\.0 is missing"):
        FeatureCache.open(cache)  # a local open lists the features folder
    readers_refuse(capsys, cache, synth, tmp_path, "features/c.1.0.0.0 is missing")
    problems = verify_cache(cache)
    assert {p.kind for p in problems} == {"missing file"} and {p.row for p in problems} == {2, 3}
    # Repair: mark the shard pending, re-run the same extract: bit-identical to the original.
    code, _, _ = cli(capsys, "cache", "verify", str(cache), "--reset-damaged", "--no-progress")
    assert code == 4
    assert cli(capsys, *extract_args(synth, cache))[0] == 0
    same_cache(cache, pristine)


def test_changed_feature_value_fails_its_checksum(cache, synth, tmp_path, capsys):
    g = zarr.open_group(str(cache), mode="r+")
    row = g["features"][3]
    row[1, 0, 5] += 0.25                     # rewritten through zarr: its crc32c is valid
    g["features"][3] = row
    reader = FeatureCache.open(cache)        # opening is fine: the damage is in one row
    clip = reader.plan.clip_id[reader.plan.row_clip[3]]
    with pytest.raises(Exception, match=rf"row 3 \(clip '{clip}' segment \d\) does not match its "
                                        r"checksum.*cache verify"):
        reader.segments(clip)
    skipping = FeatureCache.open(cache, bad_rows="skip")
    n = len(skipping.rows(clip))
    assert len(skipping.segments(clip)) == n - 1 and skipping.skipped[0][0] == 3
    readers_refuse(capsys, cache, synth, tmp_path, "does not match its checksum", clip=clip)
    assert [p.kind for p in verify_cache(cache)] == ["checksum"]


@pytest.mark.parametrize("edit", ["stride", "windows", "dtype_of_encoder"])
def test_edited_metadata_is_caught_at_open(cache, edit, capsys):
    root = cache / "zarr.json"
    meta = json.loads(root.read_text())
    attrs = meta["attributes"]
    if edit == "stride":
        attrs["stride"] = 325
    elif edit == "windows":
        attrs["windows"] = attrs["windows"] + 1
    else:
        attrs["encoder_dtype"] = "bfloat16"
    root.write_text(json.dumps(meta))
    with pytest.raises(Exception, match="plan or the metadata changed after extraction"):
        FeatureCache.open(cache)
    kinds = {p.kind for p in verify_cache(cache)}
    assert kinds == ({"metadata"} if edit == "windows" else {"plan"})
    code, _, err = cli(capsys, "cache", "info", str(cache))
    assert code == 2
    one_line_error(err, "changed after extraction")


def test_swapped_clip_ids_are_caught(cache, capsys):
    from musilingo.cache.layout import StringColumn

    g = zarr.open_group(str(cache), mode="r+")
    ids = list(StringColumn(g["clip_id_offsets"][:], g["clip_id_bytes"][:]))
    ids[0], ids[1] = ids[1], ids[0]
    swapped = StringColumn.from_strings(ids)
    g["clip_id_offsets"][:], g["clip_id_bytes"][:] = swapped.offsets, swapped.data
    with pytest.raises(Exception, match="row plan or the metadata changed"):
        FeatureCache.open(cache)
    assert [p.kind for p in verify_cache(cache)] == ["plan"]
    code, out, _ = cli(capsys, "cache", "verify", str(cache), "--no-progress")
    assert code == 4 and "[plan]" in out


def test_moved_rows_fail_their_checksums(cache):
    """Two shard files swapped whole (data and checksums alike): each row's checksum covers its
    index, so the rows no longer match where they now sit."""
    a, b = cache / "features" / "c.0.0.0.0", cache / "features" / "c.1.0.0.0"
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    records = [json.loads((cache / "commits" / f"{s}.json").read_text()) for s in (0, 1)]
    for shard, record in zip((1, 0), records):  # each record moved along, relabelled to fit
        record["shard"], record["rows"] = shard, [2 * shard, 2 * shard + 2]
        (cache / "commits" / f"{shard}.json").write_text(json.dumps(record))
    problems = verify_cache(cache)
    assert {p.row for p in problems if p.row is not None} == {0, 1, 2, 3}
    assert {p.kind for p in problems} == {"checksum", "index"}  # the index still has the old


@pytest.mark.parametrize("damage", ["root-json", "plan-chunk", "row-plan-chunk", "index-chunk",
                                    "index-chunk-gone", "index-counts-gone"])
def test_damaged_metadata_files_give_one_line(cache, pristine, synth, tmp_path, capsys, damage):
    if damage == "root-json":
        (cache / "zarr.json").write_bytes(b"\xff\xfe not json")
        needles = ("zarr.json cannot be read",)
    elif damage == "plan-chunk":
        (cache / "clip_id_bytes" / "c" / "0").write_bytes(b"\x28\xb5\x2f\xfd garbage zstd frame")
        needles = ("the row plan cannot be read",)
    elif damage == "row-plan-chunk":  # a per-row plan table that verify checks first
        (cache / "row_clip" / "c" / "0").write_bytes(b"\x28\xb5\x2f\xfd garbage zstd frame")
        needles = ("the row plan cannot be read",)
    elif damage == "index-chunk":
        (cache / "status" / "c" / "0").write_bytes(b"\x00garbage")
        needles = ("the row index cannot be read",)
    else:  # before: zarr read the fill value, and `cache info` said every row was pending
        table = "status" if damage == "index-chunk-gone" else "counts"
        (cache / table / "c" / ("0" if table == "status" else "0/0")).unlink()
        needles = ("the row index has lost 1 of 1 chunks of " + table,)
    code, out, err = cli(capsys, "cache", "info", str(cache))
    assert code == 2, err
    one_line_error(err, *needles)
    code, out, err = cli(capsys, "cache", "verify", str(cache), "--no-progress")
    if damage == "root-json":  # not readable as a cache at all: an error line, like info
        assert code == 2
        one_line_error(err, *needles)
    else:                      # damage found and listed, with its own exit status
        listed = "the row index cannot be read" if damage.startswith("index") else \
            "the row plan cannot be read"
        assert code == 4 and "verify failed:" in err and listed in out, out
    readers_refuse(capsys, cache, synth, tmp_path, *needles)
    if damage.startswith("index"):  # the index is a copy: dropped, then rewritten by the re-run
        cli(capsys, "cache", "verify", str(cache), "--reset-damaged", "--no-progress")
        code, out, _ = cli(capsys, *extract_args(synth, cache))
        assert code == 0 and "done: 0 rows" in out
        same_cache(cache, pristine)


def test_disk_full_is_an_environment_fault_and_the_rerun_is_identical(synth, pristine, tmp_path,
                                                                       capsys):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = mnt / "c.zarr"
        code, _, err = cli(capsys, *extract_args(synth, out))
        assert code == 3, err
        one_line_error(err, "the disk is full", "run the same command again")
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        assert cli(capsys, *extract_args(synth, out))[0] == 0
        same_cache(out, pristine)
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_a_second_extract_on_the_same_cache_is_refused(synth, tmp_path, capsys):
    from musilingo.cache.lock import lock_path

    out = tmp_path / "c.zarr"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from musilingo.cache.lock import writer_lock\n"
                               "with writer_lock(sys.argv[1]):\n"
                               "    print('held', flush=True); time.sleep(120)", str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = cli(capsys, *extract_args(synth, out))
        assert code == 2
        one_line_error(err, "being extracted by another process", f"pid {holder.pid}")
        assert not out.exists()                     # nothing was planned or written
        holder.send_signal(signal.SIGKILL)          # a dead holder's lock is released by the kernel
        holder.wait(timeout=10)
        assert cli(capsys, *extract_args(synth, out))[0] == 0
        assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
    finally:
        holder.kill()


def test_annotation_paths_stay_inside_the_audio_root(tmp_path, capsys):
    import soundfile as sf

    root = tmp_path / "audio"
    root.mkdir()
    sf.write(root / "ok.wav", np.zeros(24000, np.float32) + 0.1, 24000)
    outside = tmp_path / "secret.wav"
    sf.write(outside, np.zeros(24000, np.float32) + 0.1, 24000)
    qa = [{"audio_name": name, "conversation": [{"from": "human", "value": "Q?"},
                                                {"from": "gpt", "value": "A."}]}
          for name in ("ok.wav", "../secret.wav", str(outside), "/etc/passwd")]
    (tmp_path / "qa.json").write_text(json.dumps(qa))
    args = ["extract", "--dataset", "musicqa", "--annotations", str(tmp_path / "qa.json"),
            "--audio-root", str(root), *EXTRACT]
    code, _, err = cli(capsys, *args, "--out", str(tmp_path / "in.zarr"))
    assert code == 0, err
    assert "point outside the audio root" in err
    confined = FeatureCache.open(tmp_path / "in.zarr")
    failures = {clip: reason for clip, _, reason in confined.failures()}
    assert confined.clip_ids == ["ok"]
    assert set(failures) == {"../secret", str(outside.with_suffix("")), "/etc/passwd"}
    assert all("outside --audio-root" in reason for reason in failures.values())
    code, _, err = cli(capsys, *args, "--out", str(tmp_path / "all.zarr"), "--allow-outside-root")
    assert code == 0, err
    allowed = FeatureCache.open(tmp_path / "all.zarr")
    assert set(allowed.clip_ids) == {"ok", "../secret", str(outside.with_suffix(""))}
    assert "outside" not in dict((c, r) for c, _, r in allowed.failures())["/etc/passwd"]


@pytest.mark.parametrize("args, needle", [
    (["extract", "--dataset", "folder", "--audio-root", ".", "--out", "x.zarr",
      "--segment-seconds", "nan"], "segment_seconds=nan must be a finite number"),
    (["train", "--config", "pretrain_msd", "lr=nan"], "lr='nan' must be a finite number"),
    (["train", "--config", "pretrain_msd", "max_steps=2.5"], "max_steps=2.5 is not a whole number"),
    (["extract", "--dataset", "folder", "--audio-root", "nowhere", "--out", "x.zarr",
      "--threads", "-1"], "threads=-1: give 1 to 1024"),
    (["extract", "--dataset", "folder", "--audio-root", "nowhere", "--out", "x.zarr",
      "--decode-workers", "100000"], "decode_workers=100000: give 0 to 256"),
    (["train", "--config", "pretrain_msd", "num_workers=-3"], "num_workers=-3: give 0 to 64"),
])
def test_bad_numbers_are_refused(args, needle, capsys):
    code, _, err = cli(capsys, *args)
    assert code == 2
    one_line_error(err, needle)


def test_deeply_nested_json_is_one_line(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text('{"QA": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, _, err = cli(capsys, "extract", "--dataset", "musicinstruct", "--annotations", str(deep),
                       "--audio-root", str(tmp_path), "--out", str(tmp_path / "x.zarr"))
    assert code == 2
    one_line_error(err, "nested too deeply")


def test_damaged_adapter_and_pickled_llm_weights(tmp_path, capsys):
    run = adapter_run(tmp_path)
    weights = run / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    code, _, err = cli(capsys, "ask", "--run", str(run), "--encoder", "tiny", "x.wav", "Q?")
    assert code == 2
    one_line_error(err, "adapter.safetensors cannot be read as safetensors")

    import torch
    from safetensors.torch import load_file

    from musilingo.models.llm import load_llm, tiny_llama_folder

    llm = tmp_path / "pickled-llm"
    shutil.copytree(tiny_llama_folder(), llm)
    state = load_file(str(llm / "model.safetensors"))
    (llm / "model.safetensors").unlink()
    marker = tmp_path / "PWNED"
    state["x"] = Exploit(marker)
    torch.save(state, llm / "pytorch_model.bin")
    with pytest.raises(Exception, match="refused"):
        load_llm(str(llm))
    assert not marker.exists()


def test_unexpected_errors_are_one_line_unless_debug(capsys, monkeypatch):
    from musilingo import cli as cli_module

    def boom(*_a, **_k):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(cli_module.cli, "main", boom)
    code, _, err = cli(capsys, "cache", "info", "x")
    assert code == 1
    one_line_error(err, "unexpected RuntimeError: something broke", "--debug")
    monkeypatch.setenv("MUSILINGO_DEBUG", "1")  # the traceback too, the same exit status
    code, _, err = cli(capsys, "cache", "info", "x")
    assert code == 1 and "Traceback" in err and 'raise RuntimeError("something broke' in err


def test_debug_keeps_the_exit_status_of_a_user_error(capsys, monkeypatch, tmp_path):
    """--debug adds the traceback; scripts that test `$? -eq 2` see the same status."""
    monkeypatch.setenv("MUSILINGO_DEBUG", "0")  # --debug sets it: restored after the test
    args = ["extract", "--dataset", "folder", "--audio-root", str(tmp_path / "nowhere"), "--out",
            str(tmp_path / "x.zarr")]
    code, _, err = cli(capsys, "--debug", *args)
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("error: ")


def test_an_out_where_nothing_can_be_created_is_a_user_error(capsys, tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "a.wav", np.zeros(24000, np.float32) + 0.1, 24000)
    code, _, err = cli(capsys, "extract", "--dataset", "folder", "--audio-root", str(tmp_path),
                       "--out", "/proc/musilingo-test.zarr")
    assert code == 2
    one_line_error(err, "--out /proc/musilingo-test.zarr: cannot create files in /proc",
                   "choose an --out")
