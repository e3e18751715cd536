"""Benchmark the feature cache: extraction overhead, bytes per clip, random reads per second.

    .venv/bin/python benchmarks/bench_extract.py          # all three parts, ~3-5 min on 2 CPUs
    .venv/bin/python benchmarks/bench_extract.py --parts size,reads --json out.json

1. overhead: the whole `run_extract` pipeline (header planning, DataLoader decode + resample in
   worker processes, encoder, window pooling, checksums, Zarr writes) against the bare encoder
   forward (`FrozenEncoder.encode` on the same segments, already decoded, same batches).
   Encoders: `tiny` and a random model with MERT-95M's layout (no real weights exist offline; the
   cost of a forward depends on the shape only). Clips: real recordings from ../shared/data/audio.
   The bare forward runs before and after the pipeline; the ratios use their mean, because the
   machine may be shared, and CPU seconds (this process's threads plus the DataLoader worker
   processes) are reported beside wall seconds: on a shared machine they are the steadier number.
2. size: bytes on disk per 30 s clip for the MERT-330M layout (25 hidden states x 7 windows x
   1024, fp16), written through the real writer with synthetic values (running a 330M-shape model
   on 2 CPUs takes ~17 s per clip; the bytes do not depend on the values, nothing is compressed).
3. reads: random clip reads per second from that store, with `FeatureCache.segments` and with a
   `CacheDataset` in a DataLoader (2 workers). Files are in the page cache (written just before).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("MUSILINGO_SHARED_DATA", REPO.parent / "shared" / "data"))
CLIPS = ["lp-music-caps-samples/orchestra.wav", "lp-music-caps-samples/electronic.mp3",
         "librosa-data/Kevin_MacLeod_-_Vibe_Ace.hq.ogg"]


def overhead(name: str, encoder, clips, batch_size: int, workers: int, work: Path) -> dict:
    from musilingo.audio import read_segment
    from musilingo.extract.job import ExtractConfig, run_extract
    from musilingo.extract.plan import build_plan

    plan = build_plan(clips, encoder, 30.0)
    waves = [read_segment(clips[c].audio_path, s, d, encoder.sample_rate)
             for c, s, d in zip(plan.row_clip, plan.row_start, plan.row_planned_seconds)]
    groups: dict[int, list] = {}
    batches = []
    for w in waves:  # the job's batching: equal lengths, row order, batch_size at most
        g = groups.setdefault(len(w), [])
        g.append(w)
        if len(g) == batch_size:
            batches.append(groups.pop(len(w)))
    batches += list(groups.values())

    def bare() -> tuple[float, float]:
        t, c = time.perf_counter(), cpu_seconds()
        for b in batches:
            encoder.encode(b)
        return time.perf_counter() - t, cpu_seconds() - c

    encoder.encode([waves[0][: encoder.min_samples * 50]])  # warm-up (first-call allocations)
    (bare_before, cpu_before) = bare()
    out = work / f"{name}.zarr"
    shutil.rmtree(out, ignore_errors=True)
    cfg = ExtractConfig(out=str(out), batch_size=batch_size, decode_workers=workers, progress=False)
    t, c = time.perf_counter(), cpu_seconds()
    run_extract(clips, cfg, {"name": "bench"}, encoder=encoder, log=lambda *_: None)
    pipeline, pipeline_cpu = time.perf_counter() - t, cpu_seconds() - c
    (bare_after, cpu_after) = bare()
    t = time.perf_counter()
    encoder.identity()  # a fixed cost per run (weights hash), not per clip
    identity = time.perf_counter() - t
    bare_mean, cpu_mean = (bare_before + bare_after) / 2, (cpu_before + cpu_after) / 2
    return {"encoder": name, "clips": len(clips), "segments": len(waves),
            "audio_seconds": round(float(np.sum(plan.row_planned_seconds)), 1),
            "bare_s": [round(bare_before, 2), round(bare_after, 2)],
            "pipeline_s": round(pipeline, 2), "identity_hash_s": round(identity, 2),
            "ratio": round(pipeline / bare_mean, 3),
            "bare_cpu_s": [round(cpu_before, 2), round(cpu_after, 2)],
            "pipeline_cpu_s": round(pipeline_cpu, 2),
            "cpu_ratio": round(pipeline_cpu / cpu_mean, 3),
            "pipeline_clips_per_s": round(len(clips) / pipeline, 3)}


def cpu_seconds() -> float:
    """CPU time of this process (all threads) plus its reaped children (DataLoader workers)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class ZeroCostEncoder:
    """MERT's framing and a 330M-sized output, computed for free: what is left is the pipeline."""

    sample_rate, hidden_size, num_hidden_states, min_samples = 24000, 1024, 25, 400

    def num_frames(self, n):
        return max(0, (n - 400) // 320 + 1)

    def identity(self):
        return {"encoder": "zero-cost", "config_sha256": "-", "weights_sha256": "-",
                "sample_rate": 24000, "frame_rate": 75.0, "hidden_size": 1024,
                "num_hidden_states": 25}

    def encode(self, waves):
        t = self.num_frames(len(waves[0]))
        return torch.ones(len(waves), 25, t, 1024)

    def encode_pooled(self, waves, stride):
        """As FrozenEncoder.encode_pooled: each of the 25 states pooled as it is produced."""
        from musilingo.features.pooling import window_pool

        t = self.num_frames(len(waves[0]))
        pooled = [window_pool(torch.ones(len(waves), t, 1024), stride) for _ in range(25)]
        return torch.stack([m for m, _ in pooled], dim=1), pooled[0][1]


def pipeline_floor(clips, batch_size: int, workers: int, work: Path) -> dict:
    """The whole job with an encoder that costs nothing (330M-sized hidden states, 25 x T x 1024):
    planning, decode + resample, pooling 57M values per 30 s segment, checksums, writes."""
    from musilingo.extract.job import ExtractConfig, run_extract

    out = work / "zero.zarr"
    cfg = ExtractConfig(out=str(out), batch_size=batch_size, decode_workers=workers, progress=False)
    t = time.perf_counter()
    stats = run_extract(clips, cfg, {"name": "bench"}, encoder=ZeroCostEncoder(),
                        log=lambda *_: None)
    wall = time.perf_counter() - t
    rows = stats["done"]
    return {"encoder": "zero-cost (330M-shaped output)", "segments": rows,
            "pipeline_s": round(wall, 2), "ms_per_segment": round(1000 * wall / rows, 1)}


def synthetic_330m_store(path: Path, rows: int, dtype="float16") -> float:
    """A store of MERT-330M-layout rows through the real writer; returns bytes per row."""
    from musilingo.cache.layout import DONE, build_meta
    from musilingo.cache.store import CachePlan, CacheStore, disk_bytes

    L, W, D, shard = 25, 7, 1024, 64
    ident = {"encoder": "mert-330m-layout", "config_sha256": "-", "weights_sha256": "-",
             "sample_rate": 24000, "frame_rate": 75.0, "hidden_size": D, "num_hidden_states": L}
    n = rows
    plan = CachePlan([f"clip{i:06d}" for i in range(n)], [f"/audio/{i:06d}.mp3" for i in range(n)],
                     [""] * n, np.full(n, 22050, np.int32), np.full(n, 661500, np.int64),
                     np.full(n, 2, np.int32), np.arange(n, dtype=np.int64), np.ones(n, np.int32),
                     np.arange(n, dtype=np.int32), np.zeros(n, np.int32), np.zeros(n),
                     np.full(n, 30.0))
    meta = build_meta(encoder_identity=ident, encoder_dtype="float32", stride=325, windows=W,
                      segment_seconds=30.0, min_tail_seconds=1.0, dtype=dtype, rows=n, clips=n,
                      shard_rows=shard, dataset={"name": "synthetic"}, clip_list_sha256="-")
    store = CacheStore.create(path, plan, meta)
    rng = np.random.default_rng(0)
    counts = np.tile(np.array([325] * 6 + [299], np.int32), (shard, 1))
    for s in range(store.num_shards):
        a, b = store.shard_range(s)
        k = b - a
        feats = rng.standard_normal((k, L, W, D), dtype=np.float32) * 0.5
        store.write_shard(s, feats, counts[:k], np.full(k, 30.0), np.full(k, DONE, np.uint8),
                          [""] * k)
    return disk_bytes(path) / n


def reads(path: Path, n: int) -> dict:
    from musilingo.cache import CacheDataset, FeatureCache

    cache = FeatureCache.open(path)
    ids = cache.clip_ids
    rng = np.random.default_rng(1)
    order = rng.integers(0, len(ids), n)
    t = time.perf_counter()
    for i in order:
        cache.segments(ids[i])
    single = n / (time.perf_counter() - t)
    ds = CacheDataset(path)
    sampler = torch.utils.data.RandomSampler(ds, num_samples=n, replacement=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, sampler=sampler, num_workers=2,
                                         collate_fn=CacheDataset.collate)
    t = time.perf_counter()
    for _ in loader:
        pass
    loader_rate = n / (time.perf_counter() - t)
    t = time.perf_counter()
    FeatureCache.open(path)
    opened = time.perf_counter() - t
    # What checking costs: the same rows read raw (one zarr read) and through the checked reader
    # (the read plus the row's blake2b), alternating, best of 3 passes each.
    rows = [cache.rows(ids[i])[0] for i in order]
    raw, checked = [], []
    for _ in range(3):
        t = time.perf_counter()
        for r in rows:
            cache._features[r]
        raw.append(time.perf_counter() - t)
        t = time.perf_counter()
        for r in rows:
            cache.read_row(r)
        checked.append(time.perf_counter() - t)
    raw_ms, checked_ms = 1000 * min(raw) / n, 1000 * min(checked) / n
    return {"reads": n, "segments_per_s": round(single, 1),
            "dataloader_2_workers_per_s": round(loader_rate, 1),
            "open_s": round(opened, 3), "raw_read_ms_per_row": round(raw_ms, 3),
            "checked_read_ms_per_row": round(checked_ms, 3),
            "check_ms_per_row": round(checked_ms - raw_ms, 3),
            "checked_over_raw": round(checked_ms / raw_ms, 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="overhead,size,reads")
    ap.add_argument("--encoders", default="tiny,mert-95m-random")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rows", type=int, default=256, help="rows of the 330M-layout store")
    ap.add_argument("--reads", type=int, default=1000)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    results: dict = {"machine": f"{os.cpu_count()} CPUs, torch {torch.__version__}, "
                                f"{torch.get_num_threads()} threads"}
    work = Path(tempfile.mkdtemp(prefix="bench_extract_"))
    try:
        if "overhead" in parts:
            from musilingo.extract.plan import clips_from_paths
            from musilingo.models.encoders.hubert import FrozenEncoder, build_random_encoder

            clips = clips_from_paths([SHARED / "audio" / c for c in CLIPS])
            results["overhead"] = [pipeline_floor(clips, args.batch_size, args.workers, work)]
            print(json.dumps(results["overhead"][0]), flush=True)
            for name in args.encoders.split(","):
                if name == "mert-95m-random":
                    folder = build_random_encoder(work / "mert95m", layout="95m", seed=0)
                    encoder = FrozenEncoder.load(str(folder))
                else:
                    encoder = FrozenEncoder.load(name)
                r = overhead(name, encoder, clips, args.batch_size, args.workers, work)
                print(json.dumps(r), flush=True)
                results["overhead"].append(r)
        if "size" in parts or "reads" in parts:
            store = work / "mert330m.zarr"
            per_row = synthetic_330m_store(store, args.rows)
            results["size"] = {"rows": args.rows, "bytes_per_30s_clip": round(per_row),
                               "raw_fp16_bytes": 25 * 7 * 1024 * 2,
                               "mb_per_clip": round(per_row / 1e6, 4)}
            print(json.dumps(results["size"]), flush=True)
            if "reads" in parts:
                results["reads"] = reads(store, args.reads)
                print(json.dumps(results["reads"]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
