"""Feature caches over the network: a local folder vs an S3 API (moto's server on 127.0.0.1).

    .venv/bin/python benchmarks/bench_remote_cache.py --clips 256 --reads 400

In one run, on the same synthetic cache layout (MERT-330M shapes: 25 hidden states x 7 windows x
1024, float16, 64 rows per shard; random numbers, since cost depends on bytes, not values):
- writes: `CacheStore.write_shard` of every shard, rows/s and MB/s, local vs S3;
- single-row reads, the training workload (`FeatureCache.read_row`, checksum included), in a
  random order: rows/s and requests per epoch, local vs S3 through Zarr's ObjectStore over
  obstore (what musilingo uses) vs Zarr's FsspecStore over s3fs (when s3fs is installed);
- opening the cache (plan digest, row tables, one listing for the missing-file check);
- one training epoch's reads through `CacheSource`: uniform shuffle + row reads vs the
  shard-aware shuffle + shard reads (`shuffle: auto` on a remote cache), with the bytes fetched
  over the cache size and the feature requests issued;
- the same shard-aware epoch through a real DataLoader: one process, 2 workers sharing one order
  (each reads every shard), 2 workers each reading its own shards (`epoch_plan(lanes=2)`, what
  training does now). `--only-loader` runs just the writes and this.
A loopback S3 server has no network latency: these ratios are the software's cost, a floor on
what a real object store costs. Results go to benchmarks/README.md with the date and machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))


def synthetic_cache(location, clips: int, shard_rows: int = 64):
    from musilingo.cache.layout import build_meta
    from musilingo.cache.store import CachePlan, CacheStore

    L, W, D = 25, 7, 1024
    ident = {"encoder": "bench", "config_sha256": "0", "weights_sha256": "0", "hidden_size": D,
             "num_hidden_states": L, "sample_rate": 24000, "frame_rate": 75.0, "normalize": True}
    meta = build_meta(encoder_identity=ident, encoder_dtype="float32", stride=325, windows=W,
                      segment_seconds=30.0, min_tail_seconds=1.0, dtype="float16", rows=clips,
                      clips=clips, shard_rows=shard_rows, dataset={"name": "bench"},
                      clip_list_sha256="0")
    plan = CachePlan(clip_id=[f"c{i:06d}" for i in range(clips)],
                     clip_path=[f"/audio/{i}.mp3" for i in range(clips)], clip_error=[""] * clips,
                     clip_sample_rate=np.full(clips, 44100, np.int32),
                     clip_frames=np.full(clips, 44100 * 30, np.int64),
                     clip_channels=np.full(clips, 2, np.int32),
                     clip_first_row=np.arange(clips, dtype=np.int64),
                     clip_num_rows=np.ones(clips, np.int32), row_clip=np.arange(clips, dtype=np.int32),
                     row_segment=np.zeros(clips, np.int32), row_start=np.zeros(clips),
                     row_planned_seconds=np.full(clips, 30.0))
    store = CacheStore.create(location, plan, meta)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for shard in range(store.num_shards):
        a, b = store.shard_range(shard)
        n = b - a
        store.write_shard(shard, rng.standard_normal((n, L, W, D)).astype(np.float16),
                          np.full((n, W), 325, np.int32), np.full(n, 30.0), np.ones(n, np.uint8),
                          [""] * n)
    seconds = time.perf_counter() - t0
    mb = clips * L * W * D * 2 / 1e6
    return {"write_rows_per_s": clips / seconds, "write_MB_per_s": mb / seconds,
            "write_seconds": seconds, "features_MB": mb}


def read_rows(opener, clips: int, reads: int) -> dict:
    t0 = time.perf_counter()
    cache = opener()
    opened = time.perf_counter() - t0
    order = np.random.default_rng(1).permutation(clips)[:reads]
    t0 = time.perf_counter()
    for r in order:
        cache.read_row(int(r))
    seconds = time.perf_counter() - t0
    return {"open_seconds": opened, "read_rows_per_s": reads / seconds,
            "requests_per_epoch": clips}   # one GET (one inner chunk) per row read


def epoch_reads(url: str, clips: int, shards: bool, window: int = 4, readahead: int = 0,
                work_ms: float = 0.0) -> dict:
    """One training epoch's feature reads through `CacheSource`: the uniform shuffle with row
    reads, or the shard-aware shuffle with shard reads (what `shuffle: auto` picks remotely),
    optionally with `readahead` shards read in the background (`CacheSource.expect`, as the
    trainer's MicroBatches calls it) while each row's `work_ms` of other work (a sleep: the
    GPU's step, during which the CPU would wait) goes on."""
    from musilingo.cache import FeatureCache
    from musilingo.features.sources import CacheSource
    from musilingo.train.data import shard_aware_order

    cache = FeatureCache.open(url)
    src = CacheSource(cache, shard_reads=shards, keep_shards=window + 1, readahead=readahead)
    requests = {"n": 0}
    inner = cache.read_shard

    def counted(shard):
        requests["n"] += 1
        return inner(shard)

    cache.read_shard = counted
    rng = np.random.default_rng(2)
    groups = np.arange(clips) // cache.shard_rows
    order = shard_aware_order(rng, groups, window) if shards else rng.permutation(clips)
    keys = [cache.plan.clip_id[int(r)] for r in order]
    t0 = time.perf_counter()
    for i, key in enumerate(keys):
        src.expect(keys[i + 1:i + 33])
        src.segments(key)[0]
        if work_ms:
            time.sleep(work_ms / 1000)
    seconds = time.perf_counter() - t0
    size = sum(cache._features[r].nbytes for r in range(min(clips, 1))) * clips
    return {"rows_per_s": clips / seconds, "fetched_over_cache": cache.fetched_bytes / size,
            "feature_reads": requests["n"] if shards else clips}


class _PlanReads:
    """DataLoader items = the micro-batches of a training plan; each reads its rows' features
    through the worker's own CacheSource (re-opened in the worker, as in training)."""

    def __init__(self, url, plan, keys):
        from musilingo.cache import FeatureCache
        from musilingo.features.sources import CacheSource

        self.src = CacheSource(FeatureCache.open(url), shard_reads=True, keep_shards=5)
        self.plan, self.keys = plan, keys

    def __len__(self):
        return len(self.plan)

    def __getitem__(self, i):
        import torch

        for j in self.plan[i][1]:
            self.src.segments(self.keys[j])[0]
        info = torch.utils.data.get_worker_info()
        return (info.id if info else 0), self.src.cache.fetched_bytes, len(self.plan[i][1])


def loader_epoch(url: str, clips: int, workers: int, lanes: int, window: int = 4) -> dict:
    """One epoch of shard-aware reads through a real DataLoader with `workers` processes,
    the plan divided into `lanes` (1: the order before workers divided the shards)."""
    import torch

    from musilingo.cache import FeatureCache
    from musilingo.train.data import epoch_plan

    cache = FeatureCache.open(url)
    keys = [cache.plan.clip_id[i] for i in range(clips)]
    groups = [np.arange(clips) // cache.shard_rows]
    plan = epoch_plan([clips], np.array([1.0]), clips // 4, 4, seed=0, epoch=0, groups=groups,
                      window=window, lanes=lanes)
    data = _PlanReads(url, plan, keys)
    remote = url.startswith("s3://")
    t0 = time.perf_counter()
    loader = torch.utils.data.DataLoader(data, batch_size=None, sampler=range(len(plan)),
                                         num_workers=workers,
                                         multiprocessing_context="spawn" if workers and remote
                                         else None)
    fetched, rows, first = {}, 0, None
    for worker, nbytes, n in loader:
        first = first or time.perf_counter()
        fetched[worker] = nbytes
        rows += n
    seconds = time.perf_counter() - t0
    size = cache._features[0].nbytes * clips
    return {"rows_per_s": rows / seconds, "rows_per_s_after_first": rows / (time.perf_counter()
                                                                            - first),
            "fetched_over_cache": sum(fetched.values()) / size}


def fsspec_reader(url: str):
    """FeatureCache over Zarr's FsspecStore + s3fs instead of ObjectStore + obstore."""
    import zarr
    from zarr.storage import FsspecStore

    from musilingo.cache import FeatureCache

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    store = FsspecStore.from_url(url, storage_options={"endpoint_url": endpoint, "anon": False},
                                 read_only=True)
    group = zarr.open_group(store=store, mode="r")
    cache = object.__new__(FeatureCache)
    FeatureCache.__init__(cache, url, group)
    return cache


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--reads", type=int, default=400)
    ap.add_argument("--work-ms", type=float, default=5.0,
                    help="other work per row in the readahead comparison (a sleep)")
    ap.add_argument("--only-loader", action="store_true",
                    help="only the DataLoader comparison (1 process vs 2 workers)")
    args = ap.parse_args()
    from s3_server import BUCKET, s3_server

    from musilingo.cache import FeatureCache

    out = {"clips": args.clips, "reads": args.reads, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp, s3_server():
        local, remote = str(Path(tmp) / "bench.zarr"), f"s3://{BUCKET}/bench.zarr"
        out["local_write"] = synthetic_cache(local, args.clips)
        out["s3_write"] = synthetic_cache(remote, args.clips)
        for url, where in ((remote, "s3"), (local, "local")):  # shard-aware, a real DataLoader
            out[f"{where}_loader_1_process"] = loader_epoch(url, args.clips, 0, 1)
            out[f"{where}_loader_2_workers_shared_order"] = loader_epoch(url, args.clips, 2, 1)
            out[f"{where}_loader_2_workers_own_shards"] = loader_epoch(url, args.clips, 2, 2)
        if args.only_loader:
            print(json.dumps(out, indent=2))
            return
        out["local_read"] = read_rows(lambda: FeatureCache.open(local), args.clips, args.reads)
        out["s3_obstore_read"] = read_rows(lambda: FeatureCache.open(remote), args.clips,
                                           args.reads)
        out["s3_epoch_rows_shuffle"] = epoch_reads(remote, args.clips, shards=False)
        out["s3_epoch_shard_shuffle"] = epoch_reads(remote, args.clips, shards=True)
        out["local_epoch_shard_shuffle"] = epoch_reads(local, args.clips, shards=True)
        for work in (0.0, args.work_ms):  # background readahead, without and with other work
            for ahead in (0, 2):
                out[f"s3_epoch_shard_shuffle_readahead{ahead}_work{work:g}ms"] = epoch_reads(
                    remote, args.clips, shards=True, readahead=ahead, work_ms=work)
        import importlib.util

        if importlib.util.find_spec("s3fs"):  # FsspecStore's S3 backend; not a dependency
            out["s3_fsspec_read"] = read_rows(lambda: fsspec_reader(remote), args.clips,
                                              args.reads)
        else:
            out["s3_fsspec_read"] = "s3fs not installed"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
