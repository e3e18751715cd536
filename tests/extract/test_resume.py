"""Resume and multi-process runs end with exactly the cache of one uninterrupted run.

The real CLI runs in subprocesses: Ctrl-C (SIGINT) after the first shard is committed, kill -9
a little later, then a run to the end; and `torchrun --nproc_per_node 2`. Every array and
attribute must equal the reference cache bit for bit, and committed shards are never rewritten.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from musilingo.cache import FeatureCache

from tests.helpers.extraction import REF_FLAGS, assert_same_cache, extract


def cli(real_folder, out, *extra):
    return [sys.executable, "-m", "musilingo", "extract", "--dataset", "folder", "--audio-root",
            str(real_folder), "--out", str(out), *REF_FLAGS, "--decode-workers", "1", *extra]


def run_until_committed(cmd, out, shard, sig):
    """Start the CLI, wait until `shard`'s commit record exists, send `sig`."""
    # Default Ctrl-C handling in the child whatever the suite inherited: a shell's background
    # job (`cmd &` in a script) starts with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt, so the run would ignore the Ctrl-C under test.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    marker = out / "commits" / f"{shard}.json"
    deadline = time.time() + 180
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"extract ended before shard {shard} was committed: {proc.communicate()}")
        if time.time() > deadline:
            proc.kill()
            pytest.fail("extract made no progress")
        time.sleep(0.005)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stdout, stderr


def interrupted_twice(real_folder, out, total):
    """Ctrl-C after shard 0 is committed, then kill -9 after shard 3: (status after the Ctrl-C,
    after the kill, shard 0's mtime), or None when the second run ended before the kill landed.

    Ctrl-C comes first, while 5 of the 6 shards are still to do, because the run only stops
    after the shard in flight. The tiny encoder extracts the last shards in well under a
    second: on a loaded machine the polling test process could wake up after the run ended."""
    rc, _, err = run_until_committed(cli(real_folder, out, "--no-progress"), out, 0, signal.SIGINT)
    assert rc == 130 and "interrupted" in err and "resume" in err
    after_int = FeatureCache.open(out).status_counts()
    assert 2 <= after_int["done"] < total and after_int["pending"] > 0
    stamp = (out / "features" / "c.0.0.0.0").stat().st_mtime_ns

    rc, _, _ = run_until_committed(cli(real_folder, out), out, 3, signal.SIGKILL)
    if rc == 0 and FeatureCache.open(out).status_counts()["done"] == total:
        return None
    assert rc == -signal.SIGKILL
    return after_int, FeatureCache.open(out).status_counts(), stamp


@pytest.mark.slow
def test_ctrl_c_and_kill9_then_resume(real_folder, ref_cache, tiny_encoder, tmp_path):
    total = FeatureCache.open(ref_cache).num_rows
    assert total == 12  # 6 shards of 2 rows
    for attempt in range(3):  # a kill that arrives after the end is retried
        out = tmp_path / f"resumed{attempt}.zarr"
        states = interrupted_twice(real_folder, out, total)
        if states is not None:
            break
    else:
        pytest.fail("three runs finished before kill -9 landed: a machine too loaded for this test")
    after_int, after_kill, stamp = states
    shard0 = out / "features" / "c.0.0.0.0"
    assert after_int["done"] < after_kill["done"] < total

    done = subprocess.run(cli(real_folder, out), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "clip/s" in done.stderr  # the tqdm bar, rate in clips per second
    skipped = after_kill["done"] + after_kill["failed"]
    assert f"skipped (finished earlier): {skipped}" in done.stdout, done.stdout
    assert f"cache now {total} done / 0 failed / 0 pending rows" in done.stdout
    assert shard0.stat().st_mtime_ns == stamp  # a committed shard is never rewritten
    assert_same_cache(out, ref_cache)

    # once complete, the same run (in-process here: same code, no start-up cost) does nothing
    stats = extract(folder_clips_as_cli(real_folder), out, tiny_encoder)
    assert (stats["done"], stats["failed"], stats["skipped"]) == (0, 0, total)
    assert shard0.stat().st_mtime_ns == stamp


def folder_clips_as_cli(folder):
    from musilingo.data import read_dataset
    from musilingo.extract.plan import clip_list

    return clip_list(read_dataset("folder", None, folder))


@pytest.mark.slow
def test_torchrun_two_processes_match_one(real_folder, ref_cache, tmp_path):
    out = tmp_path / "two.zarr"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "musilingo", "extract", "--dataset", "folder", "--audio-root", str(real_folder),
           "--out", str(out), *REF_FLAGS, "--decode-workers", "1", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 processes" in proc.stdout and "done: 12 rows" in proc.stdout, proc.stdout
    assert_same_cache(out, ref_cache)
    status = FeatureCache.open(out).status
    assert np.all(status == 1)


@pytest.mark.slow
def test_two_nodes_extract_one_cache_like_one_process(real_folder, ref_cache, tmp_path):
    """torchrun --nnodes 2 (c10d rendezvous on loopback): the cache equals the 1-process one."""
    from tests.helpers.multinode import two_nodes

    out = tmp_path / "nodes.zarr"
    results = two_nodes(["-m", "musilingo", "extract", "--dataset", "folder", "--audio-root",
                         str(real_folder), "--out", str(out), *REF_FLAGS, "--decode-workers", "1",
                         "--no-progress"])
    for r in results:
        assert r.returncode == 0, r.stderr[-3000:]
    stdout = "".join(r.stdout for r in results)
    assert "2 processes" in stdout and stdout.count("done: 12 rows") == 1, stdout
    assert_same_cache(out, ref_cache)
