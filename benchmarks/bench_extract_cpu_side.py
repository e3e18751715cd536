"""The CPU cost of extraction outside the encoder, with an encoder that costs nothing.

    python benchmarks/bench_extract_cpu_side.py --clips 64 --json out.json      # ~2 min, 2 cores

What a GPU extraction leaves to the CPU is everything but the forward: decoding and resampling
(DataLoader workers), normalisation (the feature extractor, main process), copying the pooled
features back, the float16 conversion and range check, row checksums, Zarr writes, bookkeeping.
This benchmark measures exactly that: `FreeEncoder` has MERT-v1-330M's interface and output
shape (24 kHz, 25 hidden states x 1024, 75 frames/s) and the real feature extractor's
normalisation, but returns its pooled windows [B, 25, W, 1024] without computing anything (on
a GPU the pooling happens on the device, so the CPU never sees the full hidden states).

1. Generates N MSD-like MP3s (30 s, 44.1 kHz stereo; bench_extract_gpu.make_clip).
2. Decode alone: `read_segment` of every file in this process (libsndfile MP3 decode, channel
   average, soxr resample to 24 kHz): CPU ms per clip.
3. The whole `run_extract` job with 1 and then 2 decode workers: wall clips/s, and CPU ms per
   clip split into the main process (normalise, copy, convert, checksum, write) and the
   workers (decode + resample), from getrusage (workers are counted once they exit). Each job
   runs twice, on the first quarter of the clips and on all of them, so that the marginal cost
   per clip ((all - quarter) / the clips between) leaves out what a job pays once (worker start,
   planning, cache creation), which 520k clips amortise.
Target (issue 12): at most 60 ms of CPU per clip outside the encoder, so that 16 cores feed
>= 250 clips/s. Results: benchmarks/README.md ("Extraction").
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from musilingo.models.encoders.base import Encoder  # noqa: E402


class FreeEncoder(Encoder):
    """MERT-v1-330M's interface and output shape at no compute cost (see the module docstring)."""

    architecture = "free (benchmark)"

    def __init__(self, layers: int = 25, dim: int = 1024):
        from transformers import Wav2Vec2FeatureExtractor

        super().__init__()
        torch.manual_seed(0)
        self.model = torch.nn.Linear(1, 1)  # device, dtype and identity need parameters
        self.feature_extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=24000,
                                                          do_normalize=True)
        self.name, self.loader, self.normalize = "free-330m", "native", True
        self.sample_rate, self.frame_rate = 24000, 75.0
        self.hidden_size, self.num_hidden_states = dim, layers
        self._base = {}

    @property
    def min_samples(self) -> int:
        return 400

    def num_frames(self, num_samples: int) -> int:
        return max((num_samples - 400) // 320 + 1, 0)

    def _inputs(self, waves) -> torch.Tensor:
        waves = self._check_waves(waves)
        return self.feature_extractor(waves, sampling_rate=self.sample_rate,
                                      return_tensors="pt")["input_values"]

    def config_dict(self) -> dict:
        return {"layers": self.num_hidden_states, "dim": self.hidden_size}

    @torch.inference_mode()
    def encode_pooled(self, waves, stride: int):
        x = self._inputs(waves)                      # the real normalisation, on the CPU
        frames = self.num_frames(x.shape[1])
        w = math.ceil(frames / stride)
        if w not in self._base:
            self._base[w] = torch.linspace(-1, 1, self.num_hidden_states * w * self.hidden_size
                                           ).reshape(self.num_hidden_states, w, self.hidden_size)
        means = self._base[w].unsqueeze(0) + x[:, :1, None, None]   # differs per row: checksums
        counts = torch.full((w,), stride, dtype=torch.int32)
        counts[-1] = frames - (w - 1) * stride
        return means, counts


def cpu_now() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--workers", default="1,2", help="decode worker counts to run")
    ap.add_argument("--work", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from bench_extract_gpu import make_clips

    from musilingo.audio import probe, read_segment
    from musilingo.extract.job import ExtractConfig, run_extract
    from musilingo.extract.plan import clips_from_paths

    torch.set_num_threads(1)  # the main process's share; the workers are separate processes
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_cpu_side_"))
    t = time.perf_counter()
    paths = sorted((work / "clips").glob("*.mp3"))[:args.clips]
    if len(paths) < args.clips:  # --work with clips already there reuses them
        paths = make_clips(work / "clips", args.clips, args.seconds, 44100, 2)
    result = {"clips": args.clips, "seconds": args.seconds, "batch_size": args.batch_size,
              "generate_s": round(time.perf_counter() - t, 1),
              "mp3_kb_per_clip": round(sum(p.stat().st_size for p in paths) / len(paths) / 1e3)}
    enc = FreeEncoder()

    c = time.process_time()
    for p in paths:
        read_segment(p, 0.0, args.seconds, enc.sample_rate, probe(p))
    result["decode_resample_cpu_ms_per_clip"] = round(1000 * (time.process_time() - c)
                                                       / len(paths), 1)
    print(json.dumps(result), flush=True)

    def job(workers: int, subset: list[Path], tag: str) -> dict:
        shutil.rmtree(work / f"cache_{tag}_w{workers}.zarr", ignore_errors=True)  # a fresh job
        cfg = ExtractConfig(out=str(work / f"cache_{tag}_w{workers}.zarr"), encoder="free-330m",
                            device="cpu", segment_seconds=args.seconds, batch_size=args.batch_size,
                            decode_workers=workers, progress=False, threads=1)
        (me0, kids0), t = cpu_now(), time.perf_counter()
        stats = run_extract(clips_from_paths(subset, root=work / "clips"), cfg, {"name": "bench"},
                            encoder=enc, log=lambda *_: None)
        wall = time.perf_counter() - t
        me1, kids1 = cpu_now()
        return {"rows": stats["done"], "wall": wall, "main": me1 - me0, "workers": kids1 - kids0}

    quarter = max(1, len(paths) // 4)
    for workers in [int(w) for w in args.workers.split(",")]:
        small, full = job(workers, paths[:quarter], "quarter"), job(workers, paths, "all")
        n, between = full["rows"], full["rows"] - small["rows"]
        row = {"workers": workers, "rows_done": n, "wall_s": round(full["wall"], 2),
               "clips_per_s": round(n / full["wall"], 2),
               "main_cpu_ms_per_clip": round(1000 * full["main"] / n, 1),
               "worker_cpu_ms_per_clip": round(1000 * full["workers"] / n, 1),
               "marginal_main_cpu_ms_per_clip": round(1000 * (full["main"] - small["main"])
                                                      / between, 1),
               "marginal_worker_cpu_ms_per_clip": round(1000 * (full["workers"]
                                                                - small["workers"]) / between, 1),
               "marginal_clips_per_s": round(between / (full["wall"] - small["wall"]), 2)}
        row["marginal_total_cpu_ms_per_clip"] = round(row["marginal_main_cpu_ms_per_clip"]
                                                      + row["marginal_worker_cpu_ms_per_clip"], 1)
        row["clips_per_s_per_16_cores"] = round(16000 / row["marginal_total_cpu_ms_per_clip"], 1)
        result[f"job_{workers}_workers"] = row
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
