"""`cache info` and `cache verify`: what a cache holds, and whether every row is intact.

    musilingo cache info cache.zarr [--json] [--failures]
    musilingo cache verify cache.zarr      # exit 1 and the rows affected if anything is wrong

verify re-reads every row (whole shards at a time; row by row inside a shard that fails to
decode, to name the rows) and checks: the metadata against the arrays' shapes and dtypes, the
plan digest (which clip and segment each row is, and the metadata that gives rows their meaning),
the plan tables' consistency, that committed shards have all their files, completeness (no
pending rows), each row's blake2b checksum (which covers its identity), NaN/Inf, window counts,
and that failed rows carry a reason. A damaged shard file shows up as a crc32c or decoding error
(Zarr checks the shard index and every inner chunk) or a checksum mismatch. Every problem is of
one kind: metadata, plan, missing file, unreadable, checksum, pending, content.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr

from ..errors import UserError
from .layout import DONE, FAILED, PENDING, PLAN_ARRAYS
from .location import Location
from .store import disk_bytes, load_checked_plan, missing_files, open_group, read_rows, stored_checksum

REQUIRED_META = ("format", "format_version", "encoder", "layers", "dim", "stride", "windows",
                 "segment_seconds", "dtype", "rows", "clips", "shard_rows")


@dataclass
class Problem:
    row: int | None        # None: the whole cache (metadata)
    clip_id: str
    segment: int
    what: str
    kind: str = "content"  # metadata | plan | missing file | unreadable | checksum | pending | content

    def __str__(self):
        if self.row is None:
            return f"cache: [{self.kind}] {self.what}"
        return (f"row {self.row} (clip {self.clip_id!r} segment {self.segment}): [{self.kind}] "
                f"{self.what}")


def cache_info(path) -> dict:
    from .reader import FeatureCache

    cache = FeatureCache.open(path)
    m = cache.meta
    counts = cache.status_counts()
    size = disk_bytes(path)
    return {"path": str(path), "encoder": m["encoder"]["encoder"],
            "encoder_weights_sha256": m["encoder"]["weights_sha256"],
            "shape": [m["rows"], m["layers"], m["windows"], m["dim"]], "layers": m["layers"],
            "dim": m["dim"], "stride": m["stride"], "windows": m["windows"],
            "segment_seconds": m["segment_seconds"], "dtype": m["dtype"], "rows": m["rows"],
            "clips": m["clips"], "clips_with_features": len(cache.clip_ids), **counts,
            "shard_rows": m["shard_rows"], "bytes": size,
            "bytes_per_done_row": size / counts["done"] if counts["done"] else None,
            "dataset": m.get("dataset"), "musilingo_version": m.get("musilingo_version")}


def verify_cache(path, progress: bool = False) -> list[Problem]:
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

    tables = {}
    for name, fill in (("status", PENDING), ("counts", 0), ("seconds", 0.0), ("checksum", 0),
                       ("reason", "")):
        tables[name], bad = read_rows(group[name], shard_rows, fill=fill)
        for shard in bad:
            for row in range(shard * shard_rows, min(rows, (shard + 1) * shard_rows)):
                problem(row, f"{name} unreadable (damaged shard {shard})", "unreadable")
    status = tables["status"]
    lost_shards = set()
    for name in missing_files(path, group, status, shard_rows):
        shard = int(name.split("/")[2])
        lost_shards.add(shard)
        for row in range(shard * shard_rows, min(rows, (shard + 1) * shard_rows)):
            problem(row, f"{name} is missing (shard {shard} is committed)", "missing file")
    for row in np.flatnonzero(status == PENDING):
        problem(int(row), "pending: extraction did not finish (re-run the extract command)",
                "pending")
    shards = range(0, rows, shard_rows)
    if progress:
        from tqdm.auto import tqdm

        shards = tqdm(shards, unit="shard", desc="verify")
    features = group["features"]
    stride = int(meta["stride"])
    for start in shards:
        if start // shard_rows in lost_shards:
            continue  # already reported; its zeros would only add checksum mismatches
        stop = min(rows, start + shard_rows)
        block = _read_block(features, start, stop, problem)
        for i, row in enumerate(range(start, stop)):
            if block[i] is None or status[row] == PENDING:
                continue
            _check_row(row, block[i], tables, stride, problem, meta)
    return problems


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


def _check_row(row, feats, tables, stride, problem, meta):
    counts, status = tables["counts"][row], int(tables["status"][row])
    reason = str(tables["reason"][row])
    expect = stored_checksum(meta, row, feats, counts, tables["seconds"][row], status, reason)
    if expect != int(tables["checksum"][row]):
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
            "status": ((rows,), "uint8"), "checksum": ((rows,), "uint64"),
            "reason": ((rows,), None)}
    for name in PLAN_ARRAYS:
        want[name] = (((clips if name.startswith("clip") else rows),), None)
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
        if tuple(arr.shape) != tuple(int(x) for x in shape):
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
    """Mark every shard holding a damaged row pending, so that re-running extract redoes it."""
    group = zarr.open_group(store=Location(path).zarr_store(), mode="r+", zarr_format=3)
    shard_rows, rows = int(group.attrs["shard_rows"]), int(group.attrs["rows"])
    shards = sorted({p.row // shard_rows for p in problems if p.row is not None})
    for shard in shards:
        start, stop = shard * shard_rows, min(rows, (shard + 1) * shard_rows)
        group["status"][start:stop] = np.zeros(stop - start, dtype=np.uint8)
    return shards
