"""The extraction job: audio -> frozen encoder -> window-pooled hidden states -> Zarr cache.

    musilingo extract --dataset folder --audio-root music/ --out cache.zarr --encoder tiny
    torchrun --nproc_per_node 2 -m musilingo extract ...        # several processes, one cache

Python: `run_extract(clip_list(read_dataset(...)), ExtractConfig(out="cache.zarr"))`.

Rank 0 plans every row from audio headers and creates the cache (or re-opens it and refuses if
it was made differently); then each process takes the shards it owns (rank r: r, r+N, ...) that
are not yet committed. DataLoader workers decode and resample segments while the main process
runs the encoder; segments of equal length are batched within a shard (never padded: padding
changes the result), pooled, buffered, and the whole shard is written at once, its commit
record last; the run that completes the cache writes its row index.
Because a shard's rows, batches and arithmetic depend only on the plan, a re-run after a crash,
kill -9 or Ctrl-C redoes exactly the uncommitted shards and ends with the same cache as an
uninterrupted run, and N processes produce the same cache as one, bit for bit, when each uses
the same number of CPU threads (`--threads`: on CPU, float rounding depends on the thread count;
torchrun gives each process 1 thread unless OMP_NUM_THREADS is set).
"""
from __future__ import annotations

import contextlib
import datetime
import functools
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..audio import AudioError, AudioInfo, read_segment
from ..cache.layout import DONE, FAILED, FP16_MAX, build_meta, check_compatible, max_windows
from ..cache.lock import writer_lock
from ..cache.location import Location
from ..cache.store import CacheStore
from ..errors import UserError
from ..features import encode_pooled
from ..processes import process_env
from ..vocabulary import rank_device, torch_dtype
from .config import ExtractConfig
from .plan import ClipSource, build_plan, check_unique, fingerprint

class _Segments(torch.utils.data.Dataset):
    """Decode + resample one row's segment (runs in DataLoader workers)."""

    def __init__(self, rows, paths, starts, seconds, infos, sample_rate):
        self.rows, self.paths, self.starts, self.seconds = rows, paths, starts, seconds
        self.infos, self.sample_rate = infos, sample_rate

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = int(self.rows[i])
        try:
            wave = read_segment(self.paths[i], float(self.starts[i]), float(self.seconds[i]),
                                self.sample_rate, self.infos[i])
            # As a tensor, a worker hands the wave over in shared memory; a numpy array would be
            # pickled through the worker's pipe (2.9 MB per 30 s segment, copied on both sides).
            return row, torch.from_numpy(wave), ""
        except AudioError as exc:
            return row, None, str(exc)
        except Exception as exc:  # a codec crash on one file must not stop the job
            text = str(exc).strip().splitlines()
            return row, None, f"{type(exc).__name__}: {text[-1] if text else ''}"


def _as_is(item):
    return item


def _worker_init(_worker_id, parent_pid=None):
    """Die with the main process: after a kill -9 an orphaned DataLoader worker would block
    forever writing into a pipe that nobody reads (Linux: PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: workers still stop when their queue closes
        return
    if parent_pid is not None and os.getppid() != parent_pid:  # the parent died before prctl
        os._exit(1)


class _Shard:
    """One shard's rows in memory until they are all computed, then one write."""

    def __init__(self, job, shard):
        self.job, self.shard = job, shard
        self.start, self.stop = job.store.shard_range(shard)
        n, meta = self.stop - self.start, job.store.meta
        self.features = np.zeros((n, meta["layers"], meta["windows"], meta["dim"]),
                                 dtype=meta["dtype"])
        self.counts = np.zeros((n, meta["windows"]), dtype=np.int32)
        self.seconds = np.zeros(n, dtype=np.float64)
        self.status = np.zeros(n, dtype=np.uint8)
        self.reason = [""] * n
        self.groups: dict[int, list] = {}  # wave length -> [(row, wave)], in row order
        for row in range(self.start, self.stop):
            error = job.plan.clip_error[job.plan.row_clip[row]]
            if error:
                self.fail(row, error)

    def fail(self, row, reason):
        i = row - self.start
        self.status[i], self.reason[i] = FAILED, reason
        self.features[i], self.counts[i], self.seconds[i] = 0, 0, 0.0
        self.job.stats["failed"] += 1
        self.job.advance(row)
        if self.job.cfg.strict:
            plan = self.job.plan
            ci = plan.row_clip[row]
            raise UserError(f"clip {plan.clip_id[ci]!r} segment {plan.row_segment[row]} "
                            f"({plan.clip_path[ci]}): {reason}; stopped by --strict (committed "
                            "shards are kept; re-run without --strict to record failures instead)")

    def add(self, row, wave, error):
        enc = self.job.encoder
        if isinstance(wave, torch.Tensor):
            wave = wave.numpy()
        if error:
            return self.fail(row, error)
        if len(wave) < enc.min_samples:
            return self.fail(row, f"decoded segment shorter than one encoder frame "
                                  f"({len(wave)} < {enc.min_samples} samples)")
        if math.ceil(enc.num_frames(len(wave)) / self.job.cfg.stride) > self.features.shape[2]:
            return self.fail(row, f"decoded segment longer than planned ({len(wave)} samples)")
        group = self.groups.setdefault(len(wave), [])
        group.append((row, wave))
        if len(group) == self.job.cfg.batch_size:
            self.encode(self.groups.pop(len(wave)))

    def encode(self, group):
        job = self.job
        # [B, L+1, W, D] window means, each hidden state pooled as its layer produced it
        means, counts = encode_pooled(job.encoder, [w for _, w in group], job.cfg.stride)
        means = means.cpu().numpy()
        w = len(counts)
        for b, (row, wave) in enumerate(group):
            m = means[b]
            if not np.all(np.isfinite(m)):
                self.fail(row, "encoder output has NaN/Inf values")
                continue
            peak = float(np.abs(m).max())
            if job.cfg.storage_dtype == "float16" and peak > FP16_MAX:
                self.fail(row, f"features exceed the float16 range (max |x| = {peak:.3g}); "
                               "re-extract with --storage-dtype float32")
                continue
            i = row - self.start
            self.features[i, :, :w] = m
            self.counts[i, :w] = counts.numpy()
            self.seconds[i] = len(wave) / job.encoder.sample_rate
            self.status[i] = DONE
            job.stats["done"] += 1
            job.advance(row)

    def finish(self):
        """Encode the leftovers (smaller batches, in the same order every run)."""
        for length in list(self.groups):
            self.encode(self.groups.pop(length))

    def commit(self):
        self.job.store.write_shard(self.shard, self.features, self.counts, self.seconds,
                                   self.status, self.reason)


class _Job:
    def __init__(self, cfg, store, encoder, clips, rank, world):
        self.cfg, self.store, self.encoder = cfg, store, encoder
        self.plan = store.load_plan()
        self.clips, self.rank, self.world = clips, rank, world
        self.stats = {"done": 0, "failed": 0, "skipped": 0, "clips": 0.0}
        self.bar = None

    def advance(self, row):
        step = 1.0 / float(self.plan.clip_num_rows[self.plan.row_clip[row]])
        self.stats["clips"] += step
        if self.bar is not None:
            self.bar.update(step)

    def run(self):
        cfg, store, plan = self.cfg, self.store, self.plan
        pending = store.pending_shards(self.rank, self.world)  # one listing of commit records
        todo = set(pending)
        for s in range(self.rank, store.num_shards, self.world):
            if s not in todo:
                a, b = store.shard_range(s)
                self.stats["skipped"] += b - a
        rows = [r for s in pending for r in range(*store.shard_range(s))
                if not plan.clip_error[plan.row_clip[r]]]
        ci = plan.row_clip[rows] if rows else np.zeros(0, dtype=np.int32)
        infos = [AudioInfo(self.clips[c].audio_path, int(plan.clip_sample_rate[c]),
                           int(plan.clip_frames[c]), int(plan.clip_channels[c])) for c in ci]
        source = _Segments(rows, [i.path for i in infos], plan.row_start[rows] if rows else [],
                           plan.row_planned_seconds[rows] if rows else [], infos,
                           self.encoder.sample_rate)
        workers = _default_workers() if cfg.decode_workers is None else cfg.decode_workers
        loader = torch.utils.data.DataLoader(
            source, batch_size=None, shuffle=False, num_workers=workers, collate_fn=_as_is,
            worker_init_fn=functools.partial(_worker_init, parent_pid=os.getpid()),
            prefetch_factor=max(2, -(-2 * cfg.batch_size // max(workers, 1))) if workers else None)
        todo = sum(1.0 / plan.clip_num_rows[plan.row_clip[r]]
                   for s in pending for r in range(*store.shard_range(s)))
        if cfg.progress and self.rank == 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=todo, unit="clip", dynamic_ncols=True, smoothing=0.1,
                            desc="extract" if self.world == 1 else f"extract (rank 0/{self.world})",
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} [{elapsed}<{remaining}, "
                                       "{rate_fmt}]")
        it = iter(loader)
        nxt = next(it, None)
        # One writer thread commits shard k (checksums, Zarr writes: they release the GIL) while
        # the encoder works on shard k+1; at most one shard waits, so memory stays two shards.
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shard-writer")
        writing = None
        try:
            for s in pending:
                shard = _Shard(self, s)
                while nxt is not None and nxt[0] < shard.stop:
                    shard.add(*nxt)
                    nxt = next(it, None)
                shard.finish()
                if writing is not None:
                    writing.result()
                writing = writer.submit(shard.commit)
            if writing is not None:
                writing.result()
        finally:
            writer.shutdown(wait=True)  # an interrupted run still finishes its started commit
            if self.bar is not None:
                self.bar.close()
            del it  # stops the DataLoader workers now, also on Ctrl-C


def _default_workers() -> int:
    local_world = process_env().local_world
    return min(8, max(1, (os.cpu_count() or 2) // local_world))


def _open_or_create(cfg, clips, encoder, wanted, dataset_info) -> tuple[CacheStore, bool]:
    out = Location(cfg.out)
    if out.is_file("zarr.json"):
        store = CacheStore.open(out)
        check_compatible(store.meta, wanted, out)
        out.sweep_temporaries()  # files a killed run had not yet renamed into place
        return store, False
    if out.holds_anything():
        raise UserError(f"--out {out} exists and is not a feature cache: choose a new folder")
    check_unique(clips)
    plan = build_plan(clips, encoder, cfg.segment_seconds, cfg.min_tail_seconds)
    if cfg.strict:
        for ci, error in enumerate(plan.clip_error):
            if error:
                raise UserError(f"clip {clips[ci].clip_id!r} ({clips[ci].audio_path}): {error}; "
                                "stopped by --strict")
    meta = dict(wanted, rows=plan.num_rows, dataset=dataset_info)
    if not out.remote:
        out.path.parent.mkdir(parents=True, exist_ok=True)
    return CacheStore.create(out, plan, meta), True


def run_extract(clips: list[ClipSource], cfg: ExtractConfig, dataset_info: dict | None = None,
                encoder=None, log=print) -> dict:
    """Extract (or resume) into `cfg.out`; returns the summary numbers (all ranks summed)."""
    from ..models.encoders import load_encoder

    cfg.validate()
    if not clips:
        raise UserError("no clips to extract: the data set (after --split/--max-clips) is empty")
    rank, world, local_rank, local_world = process_env()
    if world > 1 and not torch.distributed.is_initialized():
        # gloo only coordinates (a barrier, a sum); planning many headers can take a while
        torch.distributed.init_process_group("gloo", timeout=datetime.timedelta(hours=6))
    device = rank_device(cfg.device, local_rank)
    threads_before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif world > 1 and device == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // local_world))
    t0 = time.time()
    held = contextlib.ExitStack()
    try:
        if rank == 0:  # one extraction per cache; torchrun's other ranks are part of this one
            held.enter_context(writer_lock(cfg.out))
        if encoder is None:
            encoder = load_encoder(cfg.encoder, trust_remote_code=cfg.trust_remote_code,
                                   device=device, dtype=torch_dtype(cfg.encoder_dtype),
                                   normalize=cfg.normalize)
        identity = dict(encoder.identity(), encoder=cfg.encoder)
        missing = sum(c.missing for c in clips)
        wanted = build_meta(encoder_identity=identity, encoder_dtype=cfg.torch_dtype_name,
                            stride=cfg.stride, segment_seconds=float(cfg.segment_seconds),
                            windows=max_windows(encoder, cfg.segment_seconds, cfg.stride),
                            min_tail_seconds=float(cfg.min_tail_seconds), dtype=cfg.storage_dtype,
                            rows=None, clips=len(clips), shard_rows=cfg.shard_rows,
                            dataset=dict(dataset_info or {}, missing_clips=missing),
                            clip_list_sha256=fingerprint(clips))
        if rank == 0:
            store, created = _open_or_create(cfg, clips, encoder, wanted, wanted["dataset"])
        _barrier(world)
        if rank != 0:
            store = CacheStore.open(cfg.out)
            check_compatible(store.meta, wanted, cfg.out)
        job = _Job(cfg, store, encoder, clips, rank, world)
        if rank == 0:
            log(f"extract: {len(clips)} clips ({missing} without audio) -> {store.num_rows} rows "
                f"in {store.num_shards} shards of {store.shard_rows} "
                f"({'new' if created else 'resumed'} cache {cfg.out}); encoder {cfg.encoder} "
                f"({identity['num_hidden_states']} hidden states x {identity['hidden_size']}) on "
                f"{device}, stride {cfg.stride}, {cfg.storage_dtype}"
                + (f", {world} processes" if world > 1 else ""))
        try:
            job.run()
        except KeyboardInterrupt:
            import sys

            print(f"interrupted: committed shards are kept in {cfg.out}; run the same command "
                  "again to resume", file=sys.stderr, flush=True)
            raise
        stats = _sum_over_ranks(job.stats, world)
        stats["seconds"] = time.time() - t0
        if rank == 0:  # every rank has committed its shards (the sum above waited for them)
            tables = store.row_tables()
            status = tables.status
            if not store.meta.get("index") and not tables.bad_shards and \
                    not np.any(status == 0):
                store.build_index(tables)  # the finished cache opens from a few objects
            stats.update(total_done=int(np.sum(status == DONE)),
                         total_failed=int(np.sum(status == FAILED)),
                         pending=int(np.sum(status == 0)), missing_clips=missing,
                         bytes=store.disk_bytes(), out=str(cfg.out))
            log(summary_line(stats))
        return stats
    finally:
        held.close()
        torch.set_num_threads(threads_before)
        if world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _barrier(world):
    if world > 1:
        try:
            torch.distributed.barrier()
        except Exception:  # a peer died (rank 0 refused the run, or was killed): say so briefly
            raise UserError(f"rank {process_env().rank}: stopping because another process stopped "
                            "first (its error is above)") from None


def _sum_over_ranks(stats: dict, world: int) -> dict:
    keys = sorted(stats)
    if world > 1:
        t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        stats = dict(zip(keys, t.tolist()))
    return {k: (int(v) if k != "clips" else float(v)) for k, v in stats.items()}


def summary_line(s: dict) -> str:
    rate = s["clips"] / s["seconds"] if s["seconds"] > 0 else 0.0
    mb = s["bytes"] / 1e6
    line = (f"done: {s['done']} rows, failed: {s['failed']}, skipped (finished earlier): "
            f"{s['skipped']}; cache now {s['total_done']} done / {s['total_failed']} failed / "
            f"{s['pending']} pending rows, {mb:.1f} MB on disk; {rate:.2f} clips/s over "
            f"{s['seconds']:.1f} s -> {s['out']}")
    if s.get("missing_clips"):
        line += f"; {s['missing_clips']} clips lack their audio file (recorded as failed)"
    if s["total_failed"]:
        line += f"; see `musilingo cache info {s['out']} --failures`"
    return line
