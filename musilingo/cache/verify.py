"""`cache info` and `cache verify`: what a cache holds, and whether every row is intact.

    musilingo cache info cache.zarr [--json] [--failures] [--deep]
    musilingo cache verify cache.zarr [--workers 4]   # exit 4 and the rows affected on damage

info reads the metadata, the plan and the row index (a handful of objects at any size; the sizes
on disk were recorded at commit); `--deep` also walks every file. verify re-reads every row
(whole shards at a time; row by row inside a shard that fails to decode, to name the rows), in
`workers` processes that divide the shards, and checks: the metadata against the arrays' shapes
and dtypes, the plan digest (which clip and segment each row is, and the metadata that gives rows
their meaning), the plan tables' consistency, that every commit record reads and that the row
index agrees with them, that committed shards have their features file, completeness (no pending
rows), each row's blake2b checksum (which covers its identity), NaN/Inf, window counts, and that
failed rows carry a reason. A damaged shard file shows up as a crc32c or decoding error (Zarr
checks the shard index and every inner chunk) or a checksum mismatch. Every problem is of one
kind: metadata, plan, index, missing file, unreadable, checksum, pending, content.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr

from ..errors import UserError
from .layout import DONE, FAILED, PENDING, PLAN_ARRAYS, STRING_ARRAYS
from .location import Location
from .rows import DamagedIndex, commit_key, committed_of, missing_features, row_tables
from .store import disk_bytes, load_checked_plan, open_group, stored_checksum

REQUIRED_META = ("format", "format_version", "encoder", "layers", "dim", "stride", "windows",
                 "segment_seconds", "dtype", "rows", "clips", "shard_rows")


@dataclass
class Problem:
    row: int | None        # None: the whole cache (metadata)
    clip_id: str
    segment: int
    what: str
    kind: str = "content"  # metadata|plan|index|missing file|unreadable|checksum|pending|content

    def __str__(self):
        if self.row is None:
            return f"cache: [{self.kind}] {self.what}"
        return (f"row {self.row} (clip {self.clip_id!r} segment {self.segment}): [{self.kind}] "
                f"{self.what}")


def cache_info(path, deep: bool = False) -> dict:
    """What `musilingo cache info` prints: from the metadata, plan and row index alone."""
    from .reader import FeatureCache

    cache = FeatureCache.open(path)
    m = cache.meta
    counts = cache.status_counts()
    recorded = cache.shard_bytes
    size = disk_bytes(path) if deep else int(recorded[recorded >= 0].sum())
    return {"path": str(path), "encoder": m["encoder"]["encoder"],
            "encoder_weights_sha256": m["encoder"]["weights_sha256"],
            "shape": [m["rows"], m["layers"], m["windows"], m["dim"]], "layers": m["layers"],
            "dim": m["dim"], "stride": m["stride"], "windows": m["windows"],
            "segment_seconds": m["segment_seconds"], "dtype": m["dtype"], "rows": m["rows"],
            "clips": m["clips"], "clips_with_features": cache.clip_count(), **counts,
            "shard_rows": m["shard_rows"], "bytes": size,
            "bytes_measured": "every file" if deep else "features files, recorded at commit",
            "bytes_per_done_row": size / counts["done"] if counts["done"] else None,
            "indexed": bool(m.get("index")),
            "dataset": m.get("dataset"), "musilingo_version": m.get("musilingo_version")}


def verify_cache(path, progress: bool = False, workers: int = 1) -> list[Problem]:
    group = open_group(path)
    meta = dict(group.attrs)
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        return [Problem(None, "", 0, f"lacks {', '.join(missing)}", "metadata")]
    problems = _check_layout(group, meta)
    if problems:
        return problems
    try:
        plan = load_checked_plan(group, meta, path)
    except UserError as exc:
        return [Problem(None, "", 0, str(exc), "plan")]
    rows, shard_rows = int(meta["rows"]), int(meta["shard_rows"])
    clip_id, row_clip, row_segment = plan.clip_id, plan.row_clip, plan.row_segment

    def problem(row, what, kind="content"):
        problems.append(Problem(row, clip_id[row_clip[row]], int(row_segment[row]), what, kind))

    def shard_rows_of(shard):
        return range(shard * shard_rows, min(rows, (shard + 1) * shard_rows))

    tables = row_tables(path, group, meta, use_index=False)  # the commit records: the truth
    skip = set()
    for shard, why in tables.bad_shards:
        skip.add(shard)
        for row in shard_rows_of(shard):
            problem(row, f"{commit_key(shard)} unreadable ({why})", "unreadable")
    if meta.get("index"):
        problems += _check_index(path, group, meta, tables, skip)
    status = tables.status
    committed = committed_of(status, shard_rows).tolist()
    for shard, name in missing_features(path, group["features"], committed):
        skip.add(shard)
        for row in shard_rows_of(shard):
            problem(row, f"{name} is missing (shard {shard} is committed)", "missing file")
    for row in np.flatnonzero(status == PENDING):
        if int(row) // shard_rows not in skip:
            problem(int(row), "pending: extraction did not finish (re-run the extract command)",
                    "pending")
    shards = [s for s in committed if s not in skip]
    found = _check_shards(path, shards, tables, meta, workers, progress)
    for row, what, kind in found:
        problem(row, what, kind)
    return sorted(problems, key=lambda p: (-1 if p.row is None else p.row))


def _check_shards(path, shards, tables, meta, workers, progress):
    """(row, what, kind) for every damaged row of `shards`; with `workers` > 1, processes take
    batches of shards in turn (each reads its own shards' files: no file is read twice)."""
    shard_rows = int(meta["shard_rows"])
    step = 1 if workers <= 1 else max(1, min(64, len(shards) // (8 * workers) or 1))
    batches = [shards[i:i + step] for i in range(0, len(shards), step)]
    jobs = [(str(path), b, meta, _slice_tables(tables, b, shard_rows)) for b in batches]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(shards), unit="shard", desc="verify", smoothing=0.1)
    out, pool = [], None
    try:
        if workers <= 1 or len(jobs) <= 1:
            results = (_verify_part(*job) for job in jobs)
        else:
            import multiprocessing as mp

            # fork starts a worker in milliseconds; an object-store client does not survive it
            method = "spawn" if Location(path).remote else "fork"
            pool = mp.get_context(method).Pool(min(workers, len(jobs)))
            results = pool.imap_unordered(_verify_star, jobs)
        for batch, found in results:
            out += found
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.terminate()
    return out


def _verify_star(job):
    return _verify_part(*job)


def _slice_tables(tables, shards, shard_rows) -> dict:
    """Only the rows a worker checks travel to it (not the whole index)."""
    out = {}
    for s in shards:
        a, b = s * shard_rows, (s + 1) * shard_rows
        out[s] = (tables.status[a:b], tables.counts[a:b], tables.seconds[a:b],
                  tables.checksum[a:b], tables.reason[a:b])
    return out


def _verify_part(path, shards, meta, tables):
    group = open_group(path)
    features, stride = group["features"], int(meta["stride"])
    rows, shard_rows = int(meta["rows"]), int(meta["shard_rows"])
    found = []

    def problem(row, what, kind="content"):
        found.append((row, what, kind))

    for shard in shards:
        start, stop = shard * shard_rows, min(rows, (shard + 1) * shard_rows)
        block = _read_block(features, start, stop, problem)
        status, counts, seconds, checksum, reason = tables[shard]
        for i, row in enumerate(range(start, stop)):
            if block[i] is None or status[i] == PENDING:
                continue
            _check_row(row, block[i], (counts[i], int(status[i]), seconds[i], int(checksum[i]),
                                       str(reason[i])), stride, problem, meta)
    return shards, found


def _check_index(path, group, meta, tables, skip) -> list[Problem]:
    """The row index must hold exactly the commit records' values."""
    try:
        index = row_tables(path, group, meta, use_index=True)
    except Exception as exc:
        why = exc.reason if isinstance(exc, DamagedIndex) else type(exc).__name__
        return [Problem(None, "", 0, f"the row index cannot be read ({why}); --reset-damaged "
                                     "rebuilds it on the next extract run", "index")]
    keep = np.ones(len(tables.status), dtype=bool)
    shard_rows = int(meta["shard_rows"])
    for s in skip:
        keep[s * shard_rows:(s + 1) * shard_rows] = False
    for name in ("status", "counts", "seconds", "checksum"):
        a, b = getattr(index, name), getattr(tables, name)
        if a.shape != b.shape or not np.array_equal(a[keep], b[keep]):
            return [Problem(None, "", 0, f"the row index's {name} disagrees with the commit "
                                         "records; --reset-damaged drops the index and the next "
                                         "extract run rewrites it", "index")]
    if list(index.reason) != list(tables.reason) and not skip:
        return [Problem(None, "", 0, "the row index's reasons disagree with the commit records",
                        "index")]
    return []


def _read_block(features, start, stop, problem):
    try:
        return list(features[start:stop])
    except Exception:
        out = []
        for row in range(start, stop):
            try:
                out.append(features[row])
            except Exception as exc:
                out.append(None)
                problem(row, f"features unreadable ({type(exc).__name__}: damaged shard file)",
                        "unreadable")
        return out


def _check_row(row, feats, values, stride, problem, meta):
    counts, status, seconds, checksum, reason = values
    expect = stored_checksum(meta, row, feats, counts, seconds, status, reason)
    if expect != checksum:
        problem(row, "checksum mismatch (the row's bytes, or which row it is, changed after it "
                     "was written)", "checksum")
    if status == FAILED:
        if not reason:
            problem(row, "failed without a reason")
        return
    if status != DONE:
        problem(row, f"unknown status {status}")
        return
    if not np.all(np.isfinite(feats)):
        problem(row, "NaN/Inf in features")
    w = int(np.count_nonzero(counts))
    if w == 0 or np.any(counts[:w] <= 0) or np.any(counts[w:] != 0):
        problem(row, f"window counts malformed: {counts.tolist()}")
    elif np.any(counts[:w - 1] != stride) or counts[w - 1] > stride:
        problem(row, f"window counts not {stride} except a shorter last: {counts.tolist()}")
    elif np.any(feats[:, w:] != 0):
        problem(row, "padding windows are not zero")


def _check_layout(group, meta) -> list[Problem]:
    rows, clips = int(meta["rows"]), int(meta["clips"])
    want = {"features": ((rows, meta["layers"], meta["windows"], meta["dim"]), meta["dtype"]),
            "counts": ((rows, meta["windows"]), "int32"), "seconds": ((rows,), "float64"),
            "status": ((rows,), "uint8"), "checksum": ((rows,), "uint64")}
    for name in PLAN_ARRAYS:
        n = clips if name.startswith("clip") else rows
        if name in STRING_ARRAYS:
            want[f"{name}_offsets"] = ((n + 1,), "int64")
            want[f"{name}_bytes"] = (None, "uint8")
        else:
            want[name] = ((n,), None)
    out = []
    enc = meta["encoder"]
    if (enc.get("num_hidden_states"), enc.get("hidden_size")) != (meta["layers"], meta["dim"]):
        out.append(Problem(None, "", 0, f"layers/dim {meta['layers']}/{meta['dim']} disagree with "
                                        f"the encoder's {enc.get('num_hidden_states')}/"
                                        f"{enc.get('hidden_size')}", "metadata"))
    for name, (shape, dtype) in want.items():
        if name not in group:
            out.append(Problem(None, "", 0, f"array {name!r} is missing", "metadata"))
            continue
        arr = group[name]
        if shape is not None and tuple(arr.shape) != tuple(int(x) for x in shape):
            out.append(Problem(None, "", 0, f"{name} has shape {arr.shape}, metadata says {shape}",
                               "metadata"))
        if dtype and str(arr.dtype) != dtype:
            out.append(Problem(None, "", 0, f"{name} has dtype {arr.dtype}, metadata says {dtype}",
                               "metadata"))
    if out:
        return out
    try:  # a damaged plan chunk is a finding of verify, not a crash
        first, num = group["clip_first_row"][:], group["clip_num_rows"][:]
        row_clip, row_segment = group["row_clip"][:], group["row_segment"][:]
    except Exception as exc:
        return [Problem(None, "", 0, f"the row plan cannot be read ({type(exc).__name__}: "
                                     f"{str(exc).strip().splitlines()[0][:120]}): the cache's "
                                     "metadata is damaged; re-extract into a new --out", "plan")]
    expect_first = np.concatenate([[0], np.cumsum(num)[:-1]]) if clips else first
    if int(num.sum()) != rows or np.any(first != expect_first) or np.any(num < 1):
        out.append(Problem(None, "", 0, "clip_first_row/clip_num_rows do not tile the rows", "plan"))
    elif np.any(row_clip != np.repeat(np.arange(clips), num)) or \
            np.any(row_segment != np.arange(rows) - np.repeat(first, num)):
        out.append(Problem(None, "", 0, "row_clip/row_segment disagree with the clip tables", "plan"))
    return out


def reset_shards(path, problems: list[Problem]) -> list[int]:
    """Make every shard holding a damaged row pending (its commit record removed, the row index
    dropped), so that re-running extract redoes it and writes a fresh index."""
    from .store import CacheStore

    store = CacheStore(path, zarr.open_group(store=Location(path).zarr_store(), mode="r+",
                                             zarr_format=3))
    shards = sorted({p.row // store.shard_rows for p in problems if p.row is not None})
    store.drop_index()
    Location(path).delete([commit_key(s) for s in shards])
    return shards
