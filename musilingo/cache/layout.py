"""The feature cache's on-disk contract: array names, metadata, row checksums, compatibility.

A cache (format 3) is one Zarr v3 group of plain numeric arrays, flat group attributes, and one
small JSON commit record per shard, so a user without musilingo can read it with zarr-python (or
any Zarr v3 reader: no array uses a Zarr extension type):

    import zarr, numpy as np
    g = zarr.open_group("cache.zarr", mode="r")
    g.attrs["stride"], g.attrs["encoder"]                  # metadata (see `build_meta`)
    row = 0
    feats = g["features"][row]                             # [L+1, W, D] window means, fp16
    counts = g["counts"][row]                              # [W] frames per window, 0 = padding
    done = g["status"][:] == 1                             # 0 pending, 1 done, 2 failed
    off = g["clip_id_offsets"][:]                          # strings: UTF-8 bytes + offsets
    i = int(g["row_clip"][row])
    clip = g["clip_id_bytes"][off[i]:off[i + 1]].tobytes().decode()

Rows are segments (consecutive `segment_seconds` pieces of a clip), fixed before extraction
starts (the plan arrays, `PLAN_ARRAYS`). During extraction each shard of `shard_rows` rows has
exactly one writer, which writes two files: the shard's features (one Zarr shard file) and then
its commit record `commits/<shard>.json` (status, counts, seconds, checksum and failure reason of
every row; `COMMIT_FIELDS`), written atomically and last, so that a shard is either committed or
pending after a crash, and a resume learns which shards are done from one listing of `commits/`.

When every shard is committed, the extraction writes the row index (`INDEX_ARRAYS`: the same
per-row values as the commit records, in large chunks) and records it in the group attribute
`index`; opening a finished cache then reads a handful of objects whatever its row count. The
root `status` array is the index's: before the index is written it is all 0 (pending), and
musilingo itself reads the commit records until then (`store.row_tables`).
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from .. import __version__
from ..errors import UserError

FORMAT = "musilingo-feature-cache"
# 2: row checksums also cover the row's identity (its index and the plan digest), and the group
# attributes carry `plan_sha256`. 3: strings as UTF-8 bytes + offsets, per-shard commit records,
# the row index in large chunks (an open reads a handful of objects, not one per shard).
# `musilingo cache upgrade` turns a format-2 cache into format 3 without touching its features.
FORMAT_VERSION = 3
READABLE_VERSIONS = (3,)
UPGRADABLE_VERSIONS = (2,)
PENDING, DONE, FAILED = 0, 1, 2
STATUS_NAMES = {PENDING: "pending", DONE: "done", FAILED: "failed"}
STORE_DTYPES = ("float16", "float32")
FP16_MAX = float(np.finfo(np.float16).max)

# Written by a shard's owner during extraction: its features, then its commit record.
ROW_ARRAYS = {
    "features": "[rows, L+1, W, D] per-hidden-state means over windows of `stride` frames; "
                "one Zarr shard file per cache shard",
}
COMMIT_FIELDS = {
    "status": "per row: 1 done, 2 failed (a shard without a record is pending)",
    "counts": "per row: [W] frames in each window; 0 marks a padding window (zeros)",
    "seconds": "per row: decoded segment length in seconds (0 for failed rows)",
    "checksum": "per row: 16 hex digits, blake2b-64 of the row's index, the plan digest, and its "
                "features, counts, seconds, status, reason",
    "reason": "per row: why it failed ('' otherwise)",
    "features_bytes": "size of the shard's features file when it was committed",
}
# The row index: the commit records' values in large chunks, written once every shard is done.
INDEX_ARRAYS = {
    "status": "[rows] uint8 0 pending, 1 done, 2 failed",
    "counts": "[rows, W] int32 frames in each window; 0 marks a padding window (zeros)",
    "seconds": "[rows] float64 decoded segment length in seconds (0 for failed rows)",
    "checksum": "[rows] uint64 the rows' checksums (see the commit record)",
    "reason_offsets": "[rows + 1] int64 offsets into reason_bytes",
    "reason_bytes": "[n] uint8 the failure reasons, UTF-8, concatenated",
    "shard_bytes": "[shards] int64 size of each shard's features file at commit",
}
# Written once when the cache is created: the row plan, fixed before any audio is decoded.
PLAN_ARRAYS = {
    "row_clip": "[rows] int32 index into the clip_* arrays",
    "row_segment": "[rows] int32 segment number within its clip",
    "row_start": "[rows] float64 segment start, seconds into the audio file",
    "row_planned_seconds": "[rows] float64 segment length planned from the file header",
    "clip_id": "[clips] str the data set's clip id (the cache key)",
    "clip_path": "[clips] str the audio file at planning time",
    "clip_first_row": "[clips] int64 first row of the clip (its rows are consecutive)",
    "clip_num_rows": "[clips] int32 number of rows (segments) of the clip",
    "clip_error": "[clips] str why the clip failed at planning ('' otherwise)",
    "clip_sample_rate": "[clips] int32 the file's sample rate (0 if unreadable)",
    "clip_frames": "[clips] int64 the file's length in samples per channel (0 if unreadable)",
    "clip_channels": "[clips] int32 the file's channel count (0 if unreadable)",
}
# Stored as two arrays each, `<name>_offsets` (int64 [n + 1]) and `<name>_bytes` (uint8, UTF-8):
# what Arrow does, readable by any Zarr v3 reader, and loaded as two numpy arrays instead of one
# Python object per clip.
STRING_ARRAYS = ("clip_id", "clip_path", "clip_error")


class StringColumn(Sequence):
    """n strings kept as UTF-8 bytes + offsets; `col[i]` decodes one."""

    def __init__(self, offsets: np.ndarray, data: np.ndarray):
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.data = np.asarray(data, dtype=np.uint8)

    @classmethod
    def from_strings(cls, strings) -> "StringColumn":
        if isinstance(strings, StringColumn):
            return strings
        encoded = [str(s).encode("utf-8") for s in strings]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        return cls(offsets, np.frombuffer(b"".join(encoded), dtype=np.uint8))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = int(i)
        if i < 0:
            i += len(self)
        return self.data[self.offsets[i]:self.offsets[i + 1]].tobytes().decode("utf-8")

    def __eq__(self, other):
        return list(self) == list(other)

    def joined_pieces(self, block: int = 1 << 16):
        """The strings joined by NUL bytes, UTF-8 (what the plan digest hashes: format 2's rule),
        in pieces of `block` strings built with numpy: bounded memory, no str per clip."""
        off, n = self.offsets, len(self)
        for a in range(0, n, block):
            b = min(n, a + block)
            if a:
                yield b"\0"
            yield memoryview(np.insert(self.data[off[a]:off[b]], off[a + 1:b] - off[a], 0))

    def fixed_width(self, block: int = 1 << 16) -> np.ndarray:
        """The strings as one numpy bytes array of the longest string's width (`S<w>`): compact
        and sortable, built in blocks without a Python object per string."""
        n, off = len(self), self.offsets
        lengths = np.diff(off)
        w = max(1, int(lengths.max()) if n else 1)
        out = np.zeros((n, w), dtype=np.uint8)
        cols = np.arange(w)
        for a in range(0, n, block):
            b = min(n, a + block)
            mask = cols[None, :] < lengths[a:b, None]
            out[a:b][mask] = self.data[(off[a:b, None] + cols[None, :])[mask]]
        return out.view(f"S{w}").reshape(n)

    def lookup(self):
        """A function: string -> its position, or None; a sorted array and a binary search
        (about 1/10 of a dict's memory for clip ids)."""
        keys = self.fixed_width()
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]

        width, n = ordered.dtype.itemsize, len(ordered)

        def find(text: str):
            key = text.encode("utf-8")
            if len(key) > width or key.endswith(b"\0"):  # numpy would truncate / strip it
                return None
            i = ordered.searchsorted(key)
            return int(order[i]) if i < n and ordered[i] == key else None

        return find

    def joined_length(self) -> int:
        return int(self.offsets[-1]) + max(0, len(self) - 1)


PREPROCESSING = ("decode with libsndfile; average channels; resample to the encoder's rate with "
                 "soxr HQ; cut into consecutive segments of segment_seconds (a tail under "
                 "min_tail_seconds is dropped); then the encoder's own input processing "
                 "(encoder.preprocessing; for MERT, zero-mean unit-variance normalisation per "
                 "segment when encoder.normalize is true); encoder frozen in eval mode, "
                 "equal-length segments batched without padding; every hidden state averaged "
                 "over windows of stride frames (float32 sums), the last window short")


def max_windows(encoder, segment_seconds: float, stride: int) -> int:
    """Row width W: windows of the longest segment (a few samples of resampling slack)."""
    samples = int(np.ceil(segment_seconds * encoder.sample_rate)) + 4
    return int(np.ceil(encoder.num_frames(samples) / stride))


def build_meta(*, encoder_identity: dict, encoder_dtype: str, stride: int, windows: int,
               segment_seconds: float, min_tail_seconds: float, dtype: str, rows: int,
               clips: int, shard_rows: int, dataset: dict, clip_list_sha256: str) -> dict:
    """The group attributes: everything that decides whether two caches' rows are comparable."""
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "musilingo_version": __version__,
        "encoder": encoder_identity, "encoder_dtype": encoder_dtype,
        "sample_rate": encoder_identity["sample_rate"],
        "frame_rate": encoder_identity["frame_rate"],
        "layers": encoder_identity["num_hidden_states"], "dim": encoder_identity["hidden_size"],
        "stride": stride, "windows": windows, "segment_seconds": segment_seconds,
        "min_tail_seconds": min_tail_seconds, "dtype": dtype, "rows": rows, "clips": clips,
        "shard_rows": shard_rows, "preprocessing": PREPROCESSING, "dataset": dataset,
        "clip_list_sha256": clip_list_sha256,
        "status_codes": {str(k): v for k, v in STATUS_NAMES.items()},
        "arrays": {**ROW_ARRAYS, **PLAN_ARRAYS, **INDEX_ARRAYS},
        "commit_record": COMMIT_FIELDS, "index": None,
    }


def encoder_field(identity: dict, key: str):
    """A field of an encoder identity; caches written before `normalize` was recorded always
    normalised (their encoder's feature extractor had do_normalize on)."""
    return identity.get(key, True) if key == "normalize" else identity.get(key)


def check_compatible(stored: dict, wanted: dict, path) -> None:
    """Refuse to add rows to a cache whose existing rows were made differently (say why)."""
    if stored.get("format") != FORMAT:
        raise UserError(f"{path} exists but is not a musilingo feature cache: choose another --out")
    if stored.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path} has cache format {stored.get('format_version')}, this musilingo "
                        f"writes {FORMAT_VERSION}: run `musilingo cache upgrade {path}` first, or "
                        "extract into a new --out")
    se, we = stored["encoder"], wanted["encoder"]
    for key, what in (("config_sha256", "encoder config"), ("weights_sha256", "encoder weights"),
                      ("num_hidden_states", "number of hidden states"), ("hidden_size", "width"),
                      ("sample_rate", "sample rate"), ("normalize", "wave normalisation")):
        if encoder_field(se, key) != encoder_field(we, key):
            raise UserError(f"{path} was made with encoder {se.get('encoder')!r} ({what} "
                            f"{encoder_field(se, key)}) but this run uses {we.get('encoder')!r} "
                            f"({what} {encoder_field(we, key)}); refusing to mix two encoders' features in one "
                            "cache: use another --out")
    for key, flag in (("stride", "--stride"), ("segment_seconds", "--segment-seconds"),
                      ("dtype", "--storage-dtype"), ("encoder_dtype", "--encoder-dtype"),
                      ("min_tail_seconds", "min_tail_seconds"), ("windows", "row width")):
        if stored.get(key) != wanted.get(key):
            raise UserError(f"{path} was made with {flag} {stored.get(key)} but this run asks for "
                            f"{wanted.get(key)}; rows of one cache must be comparable: re-run with "
                            f"{flag} {stored.get(key)} to resume, or use another --out")
    if stored.get("clip_list_sha256") != wanted.get("clip_list_sha256"):
        raise UserError(f"{path} was planned for a different clip list ({stored.get('clips')} "
                        f"clips from {stored.get('dataset')}; this run has {wanted.get('clips')} "
                        f"from {wanted.get('dataset')}: another --dataset/--split/--max-clips, or "
                        "audio added or removed); re-run the original command or use another --out")


# Attributes that decide what a row's numbers mean: with the plan tables they make the plan
# digest, so that an edited stride, window count, dtype or encoder identity is caught at open.
PLAN_META = ("format_version", "encoder", "encoder_dtype", "sample_rate", "frame_rate", "layers",
             "dim", "stride", "windows", "segment_seconds", "min_tail_seconds", "dtype", "rows",
             "clips", "shard_rows")


def _array_pieces(values) -> tuple[int, list]:
    """(length, pieces) of the bytes the plan digest hashes for one plan array, without copying
    a little-endian numeric array and without one Python string per clip."""
    a = values if isinstance(values, StringColumn) else np.asarray(values)
    if not isinstance(a, StringColumn) and a.dtype.kind in "OUT":  # strings in a numpy array
        a = StringColumn.from_strings(a)
    if isinstance(a, StringColumn):  # the same bytes whatever holds the strings
        return a.joined_length(), a.joined_pieces()
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    return a.nbytes, [memoryview(a).cast("B")]


def plan_hasher(meta: dict):
    """A sha256 that has taken in the metadata giving rows their meaning; feed it the plan arrays
    in PLAN_ARRAYS order with `hash_plan_array`, one at a time (a reader can drop each after)."""
    import json

    h = hashlib.sha256()
    fields = {k: meta.get(k) for k in PLAN_META}
    # An upgraded cache keeps the digest (and so every row checksum) it was extracted with.
    fields["format_version"] = meta.get("digest_format_version", meta.get("format_version"))
    h.update(json.dumps(fields, sort_keys=True, default=str).encode("utf-8"))
    return h


def hash_plan_array(h, name: str, values) -> None:
    length, pieces = _array_pieces(values)
    h.update(f"\0{name}\0{length}\0".encode("utf-8"))
    for piece in pieces:
        h.update(piece)


def plan_digest(plan_arrays: dict, meta: dict) -> str:
    """sha256 of the row plan (which clip and segment every row is) and the metadata that gives
    rows their meaning; recorded at creation as `plan_sha256`, recomputed by every opener."""
    h = plan_hasher(meta)
    for name in PLAN_ARRAYS:
        hash_plan_array(h, name, plan_arrays[name])
    return h.hexdigest()


def row_checksum(features: np.ndarray, counts: np.ndarray, seconds: float, status: int,
                 reason: str, *, row: int | None = None, plan: str | None = None) -> int:
    """blake2b-64 of one row as stored (a reader recomputes it with hashlib alone). With `row`
    and `plan` (format 2) it also covers WHICH row it is: a row moved to another index, or a plan
    whose clip ids were swapped, no longer matches."""
    h = hashlib.blake2b(digest_size=8)
    if row is not None:
        h.update(np.int64(row).astype("<i8").tobytes())
        h.update(bytes.fromhex(plan or ""))
    h.update(np.ascontiguousarray(features).tobytes())
    h.update(np.ascontiguousarray(counts, dtype="<i4").tobytes())
    h.update(np.float64(seconds).astype("<f8").tobytes())
    h.update(bytes([int(status)]))
    h.update(reason.encode("utf-8"))
    return int.from_bytes(h.digest(), "little")


def clip_list_sha256(entries) -> str:
    """Fingerprint of the planned clip list: (clip_id, audio missing?) in order."""
    h = hashlib.sha256()
    for clip_id, missing in entries:
        h.update(f"{clip_id}\0{int(bool(missing))}\n".encode("utf-8"))
    return h.hexdigest()[:16]
