"""Extraction at MSD scale on one GPU: the bare encoder forward (the ceiling) vs the whole
`musilingo extract` job on MP3 files, in one run.

    python benchmarks/bench_extract_gpu.py --clips 1000 --json $OUT/bench_extract_gpu.json
    python benchmarks/bench_extract_gpu.py --dry-run          # tiny shapes on the CPU: checks it

1. Generates N MP3 clips like MSD previews (30 s, 44.1 kHz stereo: tones, a beat and noise,
   encoded by libsndfile), in parallel processes.
2. A random-weight MERT-v1-330M-layout encoder (cost depends on shapes, not weights), bf16.
3. (a) Bare forward: `FrozenEncoder.encode_pooled` on already decoded 24 kHz batches, after a
   warm-up; clips/s, and MFU from FLOPs counted by torch's FlopCounterMode on one batch.
   (b) The full job (`run_extract`: header planning, decode + resample workers, forward, pooling
   on the GPU, checksums, Zarr writes) on the files; clips/s, the GPU's busy fraction (nvidia-smi
   sampled every 0.2 s), decode workers' CPU seconds, peak GPU memory.
   (c) (b)/(a). (d) Hours for LP-MusicCaps-MSD's 520k clips at (b)'s rate.
Model load, warm-up and clip generation are timed separately and kept out of the rates.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MSD_CLIPS = 520_000


def make_clip(args) -> str:
    """One MSD-like MP3: a chord, a beat and noise, different for every index."""
    import soundfile as sf

    path, i, seconds, rate = args
    rng = np.random.default_rng(i)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 110.0 * 2 ** (rng.integers(0, 24) / 12)
    wave = sum(0.15 * np.sin(2 * np.pi * f0 * k * t) for k in (1, 1.25, 1.5))
    beat = (np.sin(2 * np.pi * (1.5 + rng.random()) * t) > 0.95) * rng.standard_normal(t.size)
    wave = wave + 0.2 * beat + 0.02 * rng.standard_normal(t.size)
    stereo = np.stack([wave, np.roll(wave, 40)], axis=1).astype(np.float32)
    sf.write(path, stereo, rate, format="MP3")
    return path


def make_clips(folder: Path, n: int, seconds: float, rate: int, workers: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / f"{i:06d}.mp3"), i, seconds, rate) for i in range(n)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [Path(p) for p in pool.map(make_clip, jobs, chunksize=8)]


class GpuMonitor:
    """nvidia-smi utilization every 0.2 s while running (None without nvidia-smi)."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                      "--format=csv,noheader,nounits"], capture_output=True,
                                     text=True, timeout=5).stdout.split()
                self.samples.append(float(out[0]))
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def busy(self) -> float | None:
        return round(float(np.mean(self.samples)) / 100, 3) if self.samples else None


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_forward(encoder, waves: list[np.ndarray], batch: int, device: str, repeats: int) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    batches = [waves[i:i + batch] for i in range(0, len(waves) - batch + 1, batch)]
    encoder.encode_pooled(batches[0], 325)                       # warm-up (kernels, allocator)
    sync(device)
    with FlopCounterMode(display=False) as counter:
        encoder.encode_pooled(batches[0], 325)
    flops_per_clip = counter.get_total_flops() / len(batches[0])
    t = time.perf_counter()
    done = 0
    for _ in range(repeats):
        for b in batches:
            encoder.encode_pooled(b, 325)
            done += len(b)
    sync(device)
    seconds = time.perf_counter() - t
    return {"clips": done, "seconds": round(seconds, 2), "clips_per_s": round(done / seconds, 2),
            "tflop_per_clip": round(flops_per_clip / 1e12, 3),
            "achieved_tflops": round(flops_per_clip * done / seconds / 1e12, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes, few clips, on the CPU")
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--layout", default="330m", help="330m or 95m (MERT-v1 shapes)")
    ap.add_argument("--dtype", default="bfloat16", help="encoder compute dtype")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 2),
                    help="decode workers of the extract job")
    ap.add_argument("--bare-clips", type=int, default=128, help="decoded clips for (a)")
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="the GPU's dense bf16 peak (H200: 989), for MFU")
    ap.add_argument("--work", default=None, help="folder for the clips and cache (default: tmp)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from musilingo.audio import probe, read_segment
    from musilingo.extract.job import ExtractConfig, run_extract
    from musilingo.extract.plan import clips_from_paths
    from musilingo.models.encoders.hubert import TINY_SIZES, FrozenEncoder, build_random_encoder

    device = "cpu" if args.dry_run or not torch.cuda.is_available() else "cuda"
    if args.dry_run:
        args.clips, args.seconds, args.bare_clips, args.batch_size = 6, 4.0, 4, 2
        args.dtype, args.workers = "float32", 1
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_extract_gpu_"))
    result: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
                    "torch": torch.__version__, "clips": args.clips, "seconds": args.seconds,
                    "layout": "tiny (dry run)" if args.dry_run else f"mert-v1-{args.layout}",
                    "dtype": args.dtype, "batch_size": args.batch_size, "workers": args.workers}
    t = time.perf_counter()
    paths = make_clips(work / "clips", args.clips, args.seconds, 44100, args.workers)
    result["generate_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    sizes = TINY_SIZES if args.dry_run else {}
    folder = build_random_encoder(work / "encoder", layout="95m" if args.dry_run else args.layout,
                                  seed=0, **sizes)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    encoder = FrozenEncoder.load(str(folder), device=device, dtype=dtype)
    encoder.identity()   # the weights hash (seconds for 330M): part of loading, not of the job
    result["model_load_s"] = round(time.perf_counter() - t, 1)
    print(json.dumps(result), flush=True)

    t = time.perf_counter()
    waves = []
    for p in paths[:args.bare_clips]:
        info = probe(p)
        waves.append(read_segment(p, 0.0, args.seconds, encoder.sample_rate, info))
    n = min(len(w) for w in waves)
    waves = [w[:n] for w in waves]
    result["decode_for_bare_s"] = round(time.perf_counter() - t, 1)
    bare = bare_forward(encoder, waves, args.batch_size, device, repeats=1 if args.dry_run else 2)
    bare["mfu"] = round(bare["achieved_tflops"] / args.peak_tflops, 3)
    result["bare_forward"] = bare
    print(json.dumps({"bare_forward": bare}), flush=True)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    cfg = ExtractConfig(out=str(work / "cache.zarr"), encoder=str(folder), device=device,
                        encoder_dtype=args.dtype, segment_seconds=args.seconds,
                        batch_size=args.batch_size, decode_workers=args.workers, progress=False)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with GpuMonitor() as monitor:
        t = time.perf_counter()
        stats = run_extract(clips_from_paths(paths, root=work / "clips"), cfg,
                            {"name": "bench"}, encoder=encoder, log=lambda *_: None)
        seconds = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)   # the decode workers, once they exit
    job = {"clips": args.clips, "rows_done": stats["done"], "seconds": round(seconds, 2),
           "clips_per_s": round(args.clips / seconds, 2), "gpu_busy": monitor.busy(),
           "decode_workers_cpu_s": round((after.ru_utime + after.ru_stime)
                                         - (before.ru_utime + before.ru_stime), 1),
           "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2)
           if device == "cuda" else None}
    job["decode_cpu_ms_per_clip"] = round(1000 * job["decode_workers_cpu_s"] / args.clips, 1)
    result["extract_job"] = job
    result["job_over_bare"] = round(job["clips_per_s"] / bare["clips_per_s"], 3)
    result["msd_hours_at_job_rate"] = round(MSD_CLIPS / job["clips_per_s"] / 3600, 2)
    print(json.dumps({k: result[k] for k in ("extract_job", "job_over_bare",
                                             "msd_hours_at_job_rate")}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
