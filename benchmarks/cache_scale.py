"""How the feature cache's fixed costs grow with the clip count (issue 22's scale benchmark).

    .venv/bin/python benchmarks/cache_scale.py --clips 10000,100000 --json out.json
    .venv/bin/python benchmarks/cache_scale.py --clips 520000,5000000 --workdir /big/disk

Every step is the project's own code path on synthetic LP-MusicCaps-MSD-sized data: N clips of
one 30 s row each (all pointing at one short real WAV file, so planning reads a real header per
clip), an encoder that costs nothing (`FreeEncoder`: the row count matters here, not the bytes),
a small feature width (L=2, W=2, D=4) and 64-row shards. Each step runs in its own process, so
its peak RSS (ru_maxrss of that child) is its own:

  imports  importing the modules the steps use (a baseline to subtract)
  plan     clip list -> `build_plan` -> `CacheStore.create` (the start of `musilingo extract`)
  write    every shard through `CacheStore.write_shard` (what extraction commits; not a target)
  open     `FeatureCache.open` (what every train rank, `score`, export and DataLoader worker pays)
  info     `cache_info` (the `musilingo cache info` command)
  rerun    `CacheStore.open` + the pending-shard scan an extract re-run does on a finished cache
  verify   `verify_cache` (`--verify-workers N`: N processes)
  trainset a train rank's data set-up: MSD parquet annotations read, joined with the cache,
           the shard of every example (not in the default steps: add it to --steps)
  cli_first, cli_rerun  `musilingo extract --dataset msd`, then the same command re-run on its own finished cache, through the CLI
           (annotations read, clip list, open, pending scan, summary), each as the step's
           process. The audio files are absent (recorded as failed: the first run costs
           seconds, and a re-run does the same work whatever the rows' status); not in the
           default steps

Reported per step: wall s, CPU s (user+sys of the child), peak RSS MB; and the file count.
The `hasattr`/`getattr` branches let the same script run against the format-2 code (commit
3aad519, whose store had no index and no pending_shards): that is the "before" column.
Wall seconds on a shared box wander; CPU seconds and RSS are the steady figures.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARD_ROWS, L, W, D = 64, 2, 2, 4  # --shape 25,7,1024 gives MERT-330M rows (30 s, stride 325)


class FreeEncoder:
    """The attributes planning and the cache metadata need, and nothing to compute."""

    sample_rate, frame_rate, hidden_size, num_hidden_states = 24000, 75.0, D, L
    min_samples = 400

    def num_frames(self, samples: int) -> int:
        return max(0, (samples - 80) // 320)

    def identity(self) -> dict:
        return {"encoder": "free", "config_sha256": "0", "weights_sha256": "0",
                "sample_rate": self.sample_rate, "frame_rate": self.frame_rate,
                "hidden_size": D, "num_hidden_states": L, "normalize": True}


def meta_for(n_clips: int, encoder) -> dict:
    from musilingo.cache.layout import build_meta

    return build_meta(encoder_identity=encoder.identity(), encoder_dtype="float32",
                      stride=-(-2249 // W), windows=W, segment_seconds=30.0,
                      min_tail_seconds=1.0,
                      dtype="float16", rows=None, clips=n_clips, shard_rows=SHARD_ROWS,
                      dataset={"name": "msd-synthetic"}, clip_list_sha256="bench")


def step_plan(n: int, work: Path) -> None:
    from musilingo.cache.store import CacheStore
    from musilingo.extract.plan import ClipSource, build_plan

    wav = work / "clip.wav"
    clips = [ClipSource(f"TR{i:016d}", str(wav), False, f"msd.csv:{i + 2}") for i in range(n)]
    enc = FreeEncoder()
    plan = build_plan(clips, enc, 30.0, 1.0)
    meta = dict(meta_for(n, enc), rows=plan.num_rows)
    CacheStore.create(work / "cache.zarr", plan, meta)


def step_write(n: int, work: Path) -> None:
    """Every shard committed, then what the end of an extraction does (the row index, if any)."""
    import numpy as np

    from musilingo.cache.store import CacheStore

    store = CacheStore.open(work / "cache.zarr")
    w = int(store.meta["windows"])
    for s in range(store.num_shards):
        a, b = store.shard_range(s)
        k = b - a
        feats = np.random.default_rng(s).standard_normal((k, L, w, D)).astype(np.float16)
        stride = int(store.meta["stride"])
        counts = np.full((k, w), stride, np.int32)
        counts[:, -1] = 2249 - stride * (w - 1)
        store.write_shard(s, feats, counts, np.full(k, 30.0), np.ones(k, np.uint8), [""] * k)
    if hasattr(store, "build_index"):
        store.build_index()


def step_open(n: int, work: Path) -> None:
    from musilingo.cache import FeatureCache

    cache = FeatureCache.open(work / "cache.zarr")
    assert cache.clip_count() == n
    cache.read_row(n // 2)
    assert cache.has(f"TR{n - 1:016d}")  # the clip-id lookup, built on first use


def step_info(n: int, work: Path) -> None:
    from musilingo.cache.verify import cache_info

    assert cache_info(work / "cache.zarr")["done"] == n


def step_rerun(n: int, work: Path) -> None:
    from musilingo.cache.store import CacheStore

    store = CacheStore.open(work / "cache.zarr")
    pending = getattr(store, "pending_shards", None)
    todo = pending() if pending else [s for s in store.owned_shards() if not store.shard_committed(s)]
    assert not list(todo)
    if hasattr(store, "row_tables"):  # what the re-run's summary line reads
        assert int((store.row_tables().status == 1).sum()) == n


def step_verify(n: int, work: Path, workers: int = 1) -> None:
    from musilingo.cache.verify import verify_cache

    kw = {"workers": workers} if workers > 1 else {}
    assert verify_cache(work / "cache.zarr", **kw) == []


def step_imports(n: int, work: Path) -> None:
    """What importing the reader and the writer costs alone (subtract it from the others)."""
    import importlib

    for name in ("musilingo.cache.reader", "musilingo.cache.verify", "musilingo.extract.plan"):
        importlib.import_module(name)


def write_msd_annotations(n: int, path: Path) -> None:
    """LP-MusicCaps-MSD's columns, one row per cached clip, as one parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = [f"TR{i:016d}" for i in range(n)]
    text = [f"a calm piece number {i} with soft drums and a warm bass line" for i in range(n)]
    cols = {"track_id": ids, "title": ids, "artist_name": ["artist"] * n, "release": ["r"] * n,
            "year": [2000] * n, "tag": [["rock"]] * n, "caption_writing": text,
            "caption_summary": text, "caption_paraphrase": text,
            "caption_attribute_prediction": text,
            "path": [f"{i % 10}/{i}.clip.mp3" for i in range(n)]}
    pq.write_table(pa.table(cols), path)


def step_annotations(n: int, work: Path) -> None:
    (work / "annotations").mkdir(exist_ok=True)
    (work / "audio").mkdir(exist_ok=True)
    write_msd_annotations(n, work / "annotations" / "train.parquet")


def step_trainset(n: int, work: Path) -> None:
    """A training rank's data set-up: annotations read and joined with the cache (`has` per
    row), and the shard of every example for the shard-aware shuffle."""
    import numpy as np

    from musilingo.cache import FeatureCache
    from musilingo.features.sources import CacheSource
    from musilingo.train.config import DataSpec
    from musilingo.train.data import build_trainset

    os.environ.setdefault("HF_DATASETS_CACHE", str(work / "hf"))  # not the user's cache
    ann = work / "annotations" / "train.parquet"
    src = CacheSource(FeatureCache.open(work / "cache.zarr"))
    spec = DataSpec(name="msd", annotations=str(ann.parent), audio_root=str(work / "audio"),
                    split="train")
    ts = build_trainset(spec, "pretrain", src, 0.0)
    groups = getattr(ts.examples, "groups", None)  # as train/setup.py's shuffle_groups
    if groups is None:
        groups = np.array([src.group(e.clip_id) for e in ts.examples])
    assert len(ts.examples) == n and groups.max() == (n - 1) // SHARD_ROWS


def _cli_extract(work: Path) -> None:
    """`musilingo extract` through the CLI, replacing this process (its rusage is the step's)."""
    cmd = [sys.executable, "-m", "musilingo", "extract", "--dataset", "msd", "--split", "train",
           "--annotations", str(work / "annotations"), "--audio-root", str(work / "audio"),
           "--out", str(work / "cli.zarr"), "--encoder", "tiny"]
    env = dict(os.environ, HF_DATASETS_CACHE=str(work / "hf"), HF_HUB_OFFLINE="1")
    os.execvpe(cmd[0], cmd, env)


def step_cli_first(n: int, work: Path) -> None:
    import shutil

    shutil.rmtree(work / "cli.zarr", ignore_errors=True)
    _cli_extract(work)


def step_cli_rerun(n: int, work: Path) -> None:
    _cli_extract(work)


def step_wav(n: int, work: Path) -> None:
    """The one 30 s file every planned clip points at (its header is read per clip)."""
    import numpy as np
    import soundfile as sf

    sf.write(work / "clip.wav", np.zeros(24000 * 30, np.float32), 24000)


STEPS = {"imports": step_imports, "plan": step_plan, "write": step_write, "open": step_open, "info": step_info,
         "rerun": step_rerun, "verify": step_verify,
         "trainset": step_trainset, "annotations": step_annotations,
         "cli_first": step_cli_first, "cli_rerun": step_cli_rerun,
         "wav": step_wav}


def run_step(name: str, n: int, work: Path, extra: list[str]) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--step", name, "--clips", str(n),
                             "--workdir", str(work), *extra])
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"step {name} at {n} clips failed (status {status})")
    return {"wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def file_count(path: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


def main() -> None:
    global L, W, D
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="10000,100000")
    ap.add_argument("--workdir", default=None, help="where the caches go (default: a temp dir)")
    ap.add_argument("--steps", default="imports,plan,write,open,info,rerun,verify")
    ap.add_argument("--verify-workers", type=int, default=1)
    ap.add_argument("--shape", default=f"{L},{W},{D}",
                    help="hidden states, windows, width of a row (25,7,1024: MERT-330M)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--step", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    L, W, D = (int(x) for x in args.shape.split(","))
    FreeEncoder.hidden_size, FreeEncoder.num_hidden_states = D, L
    if args.step:
        extra = {"workers": args.verify_workers} if args.step == "verify" else {}
        STEPS[args.step](int(args.clips), Path(args.workdir), **extra)
        return
    base = Path(args.workdir or tempfile.mkdtemp(prefix="cache_scale_"))
    results = []
    for n in (int(x) for x in args.clips.split(",")):
        work = base / f"n{n}"
        work.mkdir(parents=True, exist_ok=True)
        if not (work / "clip.wav").exists():
            subprocess.run([sys.executable, __file__, "--step", "wav", "--clips", str(n),
                            "--workdir", str(work)], check=True)
        if ("trainset" in args.steps or "cli_rerun" in args.steps) and not (work / "annotations").exists():
            # in a child: a parent grown by it would pass its RSS on to every forked step
            subprocess.run([sys.executable, __file__, "--step", "annotations", "--clips", str(n),
                            "--workdir", str(work)], check=True)
        row = {"clips": n}
        for name in args.steps.split(","):
            if name == "plan" and (work / "cache.zarr").exists():
                import shutil

                shutil.rmtree(work / "cache.zarr")
            extra = ["--shape", args.shape]
            extra += ["--verify-workers", str(args.verify_workers)] if name == "verify" else []
            row[name] = run_step(name, n, work, extra)
            print(n, name, row[name], flush=True)
        if (work / "cache.zarr").exists():
            row["files"] = file_count(work / "cache.zarr")
            row["files_per_shard"] = round(row["files"] / -(-n // SHARD_ROWS), 2)
        print(json.dumps(row), flush=True)
        results.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "host": os.uname().nodename,
                                               "cpus": os.cpu_count(),
                                               "date": time.strftime("%Y-%m-%d")}, indent=1))


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
