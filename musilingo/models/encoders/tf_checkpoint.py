"""Reading a TensorFlow checkpoint (a "tensor bundle") with numpy alone, no TensorFlow.

    tensors = read_checkpoint("site-packages/musicnn/MTT_musicnn/")   # {name: np.ndarray}

A TF1/TF2 checkpoint with prefix P is two files: `P.index`, a LevelDB-format table mapping each
variable's name to a small protobuf record (dtype, shape, offset and size in the data file, a
crc32c), and `P.data-00000-of-00001`, the raw little-endian values back to back. The format is
documented in TensorFlow's tensor_bundle.proto and LevelDB's table_format.md; docs/musicnn.md
says what this reader relies on. Only what checkpoints of plain float/int variables use is
supported (one shard, uncompressed blocks, no partitioned variables); anything else is an error,
never a silently wrong tensor.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ...errors import UserError

_TABLE_MAGIC = 0xDB4775248B80FB57
_MASK_DELTA = 0xA282EAD8


def _masked_crc32c(data: bytes) -> int:
    """LevelDB's and TensorFlow's stored form of a crc32c: rotated right by 15 bits, plus a
    constant (so that a crc of data holding crcs does not degenerate)."""
    import google_crc32c  # a dependency of zarr; C code, ~1 GB/s

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


# tensorflow/core/framework/types.proto DataType -> numpy
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_, 19: np.float16}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(msg: bytes):
    """(field number, wire type, value) of a protobuf message; value is an int or bytes."""
    pos = 0
    while pos < len(msg):
        key, pos = _varint(msg, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(msg, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", msg, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(msg, pos)
            value, pos = msg[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", msg, pos)[0], pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire}")
        yield field, wire, value


def _block_entries(data: bytes, offset: int, size: int):
    """The (key, value) entries of one table block (prefix-compressed keys, restart array last)."""
    if data[offset + size] != 0:  # the 5-byte trailer: compression type, then a crc
        raise ValueError("compressed table block")
    block = data[offset:offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if _masked_crc32c(data[offset:offset + size + 1]) != stored:  # over the block and its type
        raise ChecksumError(f"the index block at byte {offset}")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * num_restarts
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + vlen]
        pos += vlen


def _index_entries(index: bytes):
    footer = index[-48:]
    if struct.unpack_from("<Q", footer, 40)[0] != _TABLE_MAGIC:
        raise ValueError("not a LevelDB table (bad magic number)")
    pos = 0
    _, pos = _varint(footer, pos)  # metaindex handle: unused
    _, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    for _, handle in _block_entries(index, index_offset, index_size):
        off, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        yield from _block_entries(index, off, size)


def _entry(value: bytes) -> dict:
    """A BundleEntryProto: dtype, shape, shard_id, offset, size, crc32c (masked), slices."""
    entry = {"dtype": 0, "shape": [], "shard_id": 0, "offset": 0, "size": 0, "slices": False,
             "crc32c": None}
    for field, _, v in _fields(value):
        if field == 1:
            entry["dtype"] = v
        elif field == 2:  # TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}
            for f, _, dim in _fields(v):
                if f == 2:
                    entry["shape"].append(next((s for g, _, s in _fields(dim) if g == 1), 0))
        elif field == 3:
            entry["shard_id"] = v
        elif field == 4:
            entry["offset"] = v
        elif field == 5:
            entry["size"] = v
        elif field == 6:
            entry["crc32c"] = v
        elif field == 7:
            entry["slices"] = True
    return entry


class ChecksumError(ValueError):
    """Stored bytes whose crc32c differs from the one the checkpoint recorded for them."""


def read_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint with this prefix (a folder ending in '/' for musicnn's)."""
    prefix = str(prefix)
    index_path, data_path = Path(prefix + ".index"), Path(prefix + ".data-00000-of-00001")
    for path in (index_path, data_path):
        if not path.is_file():
            raise UserError(f"{path}: no such file; a TensorFlow checkpoint with prefix "
                            f"{prefix!r} is a .index file and one .data-00000-of-00001 file")
    data = data_path.read_bytes()  # small checkpoints; a memmap cannot map an empty file
    tensors: dict[str, np.ndarray] = {}
    try:
        for key, value in _index_entries(index_path.read_bytes()):
            if key == b"":  # the BundleHeaderProto (shard count, endianness, version)
                continue
            entry = _entry(value)
            name = key.decode()
            if entry["slices"] or entry["shard_id"]:
                raise ValueError(f"{name}: partitioned or multi-shard variables")
            if entry["dtype"] not in _DTYPES:
                raise ValueError(f"{name}: TensorFlow dtype {entry['dtype']}")
            dtype = np.dtype(_DTYPES[entry["dtype"]]).newbyteorder("<")
            count = int(np.prod(entry["shape"], dtype=np.int64))
            if count * dtype.itemsize != entry["size"] or entry["offset"] + entry["size"] > len(data):
                raise ValueError(f"{name}: {entry['size']} bytes do not hold shape "
                                 f"{entry['shape']} of {dtype}, or lie past the data file's end")
            raw = data[entry["offset"]:entry["offset"] + entry["size"]]
            if entry["crc32c"] is not None and _masked_crc32c(raw) != entry["crc32c"]:
                raise ChecksumError(f"variable {name}")
            tensors[name] = np.frombuffer(raw, dtype=dtype).reshape(entry["shape"]).copy()
    except ChecksumError as exc:
        raise UserError(f"{prefix}: {exc} fails its crc32c check: the checkpoint is damaged; "
                        "reinstall the package or download it again") from None
    except (ValueError, IndexError, struct.error) as exc:
        raise UserError(f"{index_path}: not a checkpoint this reader supports ({exc}); it reads "
                        "single-shard TensorFlow checkpoints of plain variables") from None
    return tensors
