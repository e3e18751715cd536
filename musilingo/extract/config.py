"""Options of `musilingo extract` (`ExtractConfig`: its field help is also the CLI help).

    cfg = ExtractConfig(out="cache.zarr", encoder="mert-330m", dataset="msd",
                        annotations="lp-musiccaps-msd/", audio_root="msd/audio")
    musilingo extract --config msd out=msd.zarr audio_root=/data/msd

Configured like every verb (musilingo/options.py): a recipe, flags, then key=value overrides.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..cache.layout import STORE_DTYPES
from ..data import DATASETS
from ..errors import UserError
from ..options import check_choices, from_dict, help_of, option as _opt
from ..vocabulary import (DEVICE_HELP, TORCH_NAMES, Normalize, check_positive, check_range,
                          dtype_name, window_factor)

TRAINING_T = 325  # the paper's window: a cache's stride must divide it to be re-pooled exactly


@dataclass
class ExtractConfig:
    dataset: str | None = _opt(None, "data-set reader (required by the CLI): " +
                               ", ".join(DATASETS))
    annotations: str | None = _opt(None, "the data set's annotation file or folder (not needed "
                                         "for folder)")
    audio_root: str | None = _opt(None, "folder holding the audio (for folder: the folder itself)")
    split: str | None = _opt(None, "train, valid or test (default: all rows)")
    max_clips: int | None = _opt(None, "only the first N clips")
    caption_field: str = _opt("caption_writing", "msd: which LP-MusicCaps caption the records keep")
    allow_outside_root: bool = _opt(False, "let annotation files name audio outside audio_root "
                                           "(absolute paths, ..)")
    out: str = _opt("", "cache folder (a Zarr v3 group); re-running the same command resumes")
    encoder: str = _opt("tiny", "tiny | mert-95m | mert-330m | musicnn-mtt | musicnn-msd | a hub "
                                "id | a local model folder")
    stride: int = _opt(325, "base window in encoder frames; must divide 325 (the paper's t) so "
                            "that re-pooling to t is exact")
    segment_seconds: float = _opt(30.0, "long audio is cut into consecutive segments this long")
    min_tail_seconds: float = _opt(1.0, "drop a last segment shorter than this (when others exist)")
    storage_dtype: str = _opt("float16", "dtype the features are stored in: float16 "
                                         "(overflow-checked) or float32")
    encoder_dtype: str = _opt("fp32", "encoder compute dtype: fp32, or bf16 / fp16 on GPU")
    batch_size: int = _opt(8, "segments per encoder batch (equal-length segments only)")
    decode_workers: int | None = _opt(None, "decode/resample worker processes (default: the CPUs "
                                         "per process, at most 8)")
    shard_rows: int = _opt(64, "rows per Zarr shard: the unit of writing, ownership and resume")
    strict: bool = _opt(False, "make the first failed clip fatal instead of recording it")
    device: str = _opt("auto", DEVICE_HELP + " (with torchrun, cuda means one GPU per process)")
    normalize: Normalize = _opt("auto", "zero-mean unit-variance wave normalisation before the "
                                        "encoder: auto (the checkpoint's preprocessor_config.json "
                                        "do_normalize), on or off; recorded in the cache")
    trust_remote_code: bool = _opt(False, "allow the encoder's own modelling code (only for "
                                          "checkpoints the native MERT-v1 loader refuses)")
    threads: int | None = _opt(None, "CPU threads per process for the encoder (default: torch's; "
                               "all CPUs split between torchrun processes). Float rounding "
                               "depends on it: equal counts give bitwise-equal caches")
    progress: bool = _opt(True, "draw a tqdm progress bar")

    # Names of earlier releases, still read from recipes.
    RENAMED = {"dtype": "storage_dtype", "limit": "max_clips", "num_workers": "decode_workers"}

    @staticmethod
    def help(name: str) -> str:
        return help_of(ExtractConfig, name)

    @classmethod
    def from_dict(cls, data: dict) -> "ExtractConfig":
        return from_dict(cls, data, "extract")

    @property
    def torch_dtype_name(self) -> str:
        """The encoder dtype as torch names it (what the cache metadata records)."""
        return TORCH_NAMES[dtype_name(self.encoder_dtype, "encoder_dtype")]

    def validate(self) -> "ExtractConfig":
        if not self.out:
            raise UserError("--out is required: the cache folder to write (or resume)")
        window_factor(TRAINING_T, self.stride, t_name="the paper's t", stride_name="--stride",
                      fix="the cache could not be re-pooled to it exactly: use 325, 65, 25, 13, "
                          "5 or 1")
        self.storage_dtype = {"fp16": "float16", "fp32": "float32"}.get(self.storage_dtype,
                                                                        self.storage_dtype)
        if self.storage_dtype not in STORE_DTYPES:
            raise UserError(f"--storage-dtype {self.storage_dtype}: choose float16 or float32")
        check_choices(self)
        self.encoder_dtype = dtype_name(self.encoder_dtype, "--encoder-dtype")
        check_positive(self, ("segment_seconds", "batch_size", "shard_rows"))
        check_positive(self, ("min_tail_seconds",), allow_zero=True)
        check_range(self, "threads", 1, 1024, "CPU threads (or leave it unset: torch's default)")
        check_range(self, "decode_workers", 0, 256, "decode processes (0: decode in the main "
                                                    "process)")
        if self.max_clips is not None and self.max_clips <= 0:
            raise UserError("--max-clips must be positive")
        return self
