"""A feature cache in an object store, against a real S3 API (moto's server on 127.0.0.1).

Everything that works on a local cache works on `s3://bucket/prefix`: extraction with two
torchrun processes, kill -9 and resume (bit-identical to the uninterrupted local run), verify
finding a damaged and a deleted object, training from the remote cache (the losses of the same
run from a local cache) and captioning from it. Credentials come only from the environment.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from musilingo.cache import FeatureCache
from musilingo.cache.location import Location

from tests.helpers.extraction import REF_FLAGS, assert_same_cache


@pytest.fixture(scope="module")
def s3():
    from tests.helpers.s3_server import BUCKET, s3_server

    with s3_server():
        yield f"s3://{BUCKET}"


def cli(real_folder, out, *extra):
    return [sys.executable, "-m", "musilingo", "extract", "--dataset", "folder", "--audio-root",
            str(real_folder), "--out", str(out), *REF_FLAGS, "--decode-workers", "1", *extra]


@pytest.mark.slow
def test_two_processes_extract_into_s3_like_one_local(real_folder, ref_cache, s3):
    url = f"{s3}/two.zarr"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *cli(real_folder, url, "--no-progress")[1:]]
    cmd[cmd.index("-m", 4):cmd.index("-m", 4) + 2] = ["-m", "musilingo"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes" in proc.stdout and "done: 12 rows" in proc.stdout, proc.stdout
    assert_same_cache(url, ref_cache)
    assert not Location(url + ".creating").keys()          # the creation prefix is gone
    info = subprocess.run([sys.executable, "-m", "musilingo", "cache", "info", url],
                          capture_output=True, text=True, timeout=120)
    assert info.returncode == 0 and "testing" not in info.stdout + info.stderr   # no credential


@pytest.mark.slow
def test_kill9_then_resume_on_s3_is_bit_identical(real_folder, ref_cache, s3):
    url = f"{s3}/resumed.zarr"
    loc = Location(url)
    proc = subprocess.Popen(cli(real_folder, url, "--no-progress"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not (loc.is_file("zarr.json") and loc.is_file("commits/1.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no shard committed in 3 minutes"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    counts = FeatureCache.open(url).status_counts()
    done = subprocess.run(cli(real_folder, url, "--no-progress"), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    if counts["done"] + counts["failed"] < 12:                  # the kill landed mid-run
        assert f"skipped (finished earlier): {counts['done'] + counts['failed']}" in done.stdout
    assert_same_cache(url, ref_cache)


@pytest.mark.slow
def test_verify_finds_a_damaged_and_a_missing_object(real_folder, ref_cache, s3):
    import obstore

    url = f"{s3}/damaged.zarr"
    ok = subprocess.run(cli(real_folder, url, "--no-progress"), capture_output=True, text=True,
                        timeout=300)
    assert ok.returncode == 0, ok.stderr[-3000:]
    loc = Location(url)
    key = "features/c.1.0.0.0"
    data = bytearray(obstore.get(loc.objects, key).bytes())
    data[len(data) // 2] ^= 0xFF
    obstore.put(loc.objects, key, bytes(data))
    obstore.delete(loc.objects, "features/c.2.0.0.0")
    out = subprocess.run([sys.executable, "-m", "musilingo", "cache", "verify", url,
                          "--workers", "2"], capture_output=True, text=True, timeout=120)
    report = out.stdout + out.stderr
    assert out.returncode == 4
    assert "features/c.2.0.0.0 is missing" in report, report
    # the flipped byte sits in the shard's second row: row 3
    assert "row 3 " in report and ("checksum" in report or "unreadable" in report), report
    cache = FeatureCache.open(url)  # a remote open lists nothing: the rows read refuse instead
    with pytest.raises(Exception, match=r"features/c\.2\.0\.0\.0 is missing.*cache verify"):
        cache.read_row(4)
    with pytest.raises(Exception, match=r"row 3 .*cache verify"):
        cache.read_row(3)


@pytest.mark.slow
def test_train_and_caption_from_an_s3_cache(s3, tmp_path):
    """The same training run (shard-aware shuffle, shard reads) from the S3 cache and from a local
    copy: the same losses; then captions from the remote cache."""
    from musilingo.data import read_dataset
    from musilingo.synth import generate
    from musilingo.extract.job import ExtractConfig, run_extract
    from musilingo.extract.plan import clip_list
    from musilingo.infer import GenerationConfig, Predictor
    from musilingo.train import run
    from musilingo.train.config import TrainConfig

    synth = generate(tmp_path / "synth", n_train=8, n_test=0, seconds=3.0, workers=1)
    clips = clip_list(read_dataset("synth", synth, None))
    caches = {"s3": f"{s3}/synth.zarr", "local": str(tmp_path / "synth.zarr")}
    for out in caches.values():
        run_extract(clips, ExtractConfig(out=out, stride=65, segment_seconds=3.0, decode_workers=0,
                                         progress=False, threads=1), {"name": "synth"},
                    log=lambda *_: None)
    losses = {}
    for name, cache in caches.items():
        cfg = TrainConfig.from_dict(dict(
            stage="pretrain", datasets=[{"name": "synth", "annotations": str(synth / "captions.csv")}],
            cache=cache, llm="tiny-llama", t=130, batch_size=4, max_steps=3, lr=3e-2,
            min_lr=3e-3, warmup_steps=1, dtype="fp32", deepspeed="zero0",
            out=str(tmp_path / f"run-{name}"), num_workers=1, progress=False,
            shuffle="shards"))   # auto would pick shards for S3 only
        said = []
        losses[name] = run(cfg, log=said.append).losses
        assert any("shard-aware shuffle" in str(m) for m in said)
    assert losses["s3"] == losses["local"] and len(losses["s3"]) == 3
    p = Predictor.load(tmp_path / "run-s3", cache=caches["s3"],
                       generation=GenerationConfig(max_new_tokens=4))
    rows = p.caption([clips[0].clip_id])
    assert len(rows) == 1 and rows[0]["clip"] == clips[0].clip_id and "caption" in rows[0]
    with pytest.raises(Exception, match="no feature cache at s3://"):
        FeatureCache.open(f"{s3}/nothing-here.zarr")


@pytest.mark.slow
def test_two_nodes_extract_into_one_s3_cache(real_folder, ref_cache, s3):
    """torchrun --nnodes 2 (c10d on loopback) into s3://: what two hosts sharing a bucket run."""
    from tests.helpers.multinode import two_nodes

    url = f"{s3}/nodes.zarr"
    results = two_nodes(cli(real_folder, url, "--no-progress")[1:])
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    assert "".join(r.stdout for r in results).count("done: 12 rows") == 1
    assert_same_cache(url, ref_cache)
