"""`musilingo cache export --format hdf5`: the same arrays and metadata, written with h5py.

    musilingo cache export cache.zarr --format hdf5 --out cache.h5

For users whose tools read HDF5 rather than Zarr. Every array of the Zarr group becomes a dataset
of the same name, shape and dtype, the row tables (status, counts, seconds, checksum, reasons)
with the values the commit records hold (also for an unfinished cache, whose row index is not
written yet), and the clip ids, paths and reasons also as UTF-8 variable-length string datasets
(`clip_id`, `clip_path`, `clip_error`, `reason`); features keep one-row chunks so random access
stays cheap. Group attributes that are not plain scalars (the
encoder identity, the dataset description) are stored as JSON strings, and the whole attribute
dict is also in the `musilingo_attrs_json` attribute. Features are copied one shard at a time, so
memory stays bounded, and every row is checked on the way (plan digest at open, each row's
checksum): a damaged cache is never exported as if it were sound. Pending rows (an unfinished
extraction) are exported as they are, and counted for the caller to warn about.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError
from .layout import PENDING, STRING_ARRAYS
from .reader import FeatureCache
from .store import load_checked_plan


def export_hdf5(src, dst, progress: bool = False) -> tuple[Path, int]:
    """Write `dst`; returns (dst, number of pending rows exported as zeros)."""
    import h5py

    cache = FeatureCache.open(src)  # plan digest and commit records: checked here
    group, meta = cache.group, cache.meta
    dst = Path(dst)
    if dst.exists():
        raise UserError(f"{dst} exists: choose another --out (export never overwrites)")
    tmp = dst.with_name(dst.name + ".partial")
    shard_rows = int(meta["shard_rows"])
    with h5py.File(tmp, "w") as f:
        for key, value in meta.items():
            f.attrs[key] = value if isinstance(value, (int, float, str)) else json.dumps(value)
        f.attrs["musilingo_attrs_json"] = json.dumps(meta)
        truth = {"status": cache.status, "counts": cache.counts, "seconds": cache.seconds,
                 "checksum": cache.checksums, "reason_offsets": cache.reasons.offsets,
                 "reason_bytes": cache.reasons.data}
        for name in sorted(group.array_keys()):
            if name == "features":
                continue
            data = truth[name] if name in truth else group[name][:]
            f.create_dataset(name, data=np.asarray(data))
        plan = load_checked_plan(group, meta, src)  # all of it: paths and errors too
        strings = {"reason": cache.reasons, **{n: getattr(plan, n) for n in STRING_ARRAYS}}
        for name, column in strings.items():
            ds = f.create_dataset(name, shape=(len(column),), dtype=h5py.string_dtype("utf-8"))
            ds[:] = np.array(list(column), dtype=object)
        feats = group["features"]
        out = f.create_dataset("features", shape=feats.shape, dtype=np.dtype(str(feats.dtype)),
                               chunks=(1, *feats.shape[1:]))
        starts = range(0, feats.shape[0], shard_rows)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, unit="shard", desc="export")
        for start in starts:
            stop = min(feats.shape[0], start + shard_rows)
            try:
                block = feats[start:stop]
            except Exception as exc:
                raise UserError(f"{src}: rows {start}-{stop - 1} cannot be read "
                                f"({type(exc).__name__}): run `musilingo cache verify "
                                "--reset-damaged` on it, then the extract command again") from None
            for i, row in enumerate(range(start, stop)):
                if cache.status[row] != PENDING:
                    cache.check_row(row, block[i])
            out[start:stop] = block
    tmp.replace(dst)
    return dst, int((cache.status == PENDING).sum())
