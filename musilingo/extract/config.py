"""Options of `musilingo extract` (`ExtractConfig`: its field help is also the CLI help).

    cfg = ExtractConfig(out="cache.zarr", encoder="mert-330m")
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..cache.layout import STORE_DTYPES
from ..errors import UserError
from ..features.pooling import window_factor
from ..options import help_of, option as _opt
from ..models.encoder import NORMALIZE_CHOICES

TRAINING_T = 325  # the paper's window: a cache's stride must divide it to be re-pooled exactly
ENCODER_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# train's vocabulary (fp32/bf16/fp16) is accepted too; the cache records the long name.
DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass
class ExtractConfig:
    out: str = _opt("", "cache folder (a Zarr v3 group); re-running the same command resumes")
    encoder: str = _opt("tiny", "tiny | mert-95m | mert-330m | a hub id | a local model folder")
    stride: int = _opt(325, "base window in encoder frames; must divide 325 (the paper's t) so "
                            "that re-pooling to t is exact")
    segment_seconds: float = _opt(30.0, "long audio is cut into consecutive segments this long")
    min_tail_seconds: float = _opt(1.0, "drop a last segment shorter than this (when others exist)")
    dtype: str = _opt("float16", "storage dtype: float16 (overflow-checked) or float32")
    encoder_dtype: str = _opt("float32", "encoder compute dtype: float32 (fp32), or bfloat16 "
                                         "(bf16) / float16 (fp16) "
                                         "on GPU")
    batch_size: int = _opt(8, "segments per encoder batch (equal-length segments only)")
    num_workers: int | None = _opt(None, "decode/resample worker processes (default: the CPUs "
                                         "per process, at most 8)")
    shard_rows: int = _opt(64, "rows per Zarr shard: the unit of writing, ownership and resume")
    strict: bool = _opt(False, "make the first failed clip fatal instead of recording it")
    device: str = _opt("cpu", "cpu, cuda or cuda:N (with torchrun, cuda means one GPU per process)")
    normalize: str = _opt("auto", "zero-mean unit-variance wave normalisation before the encoder: "
                                  "auto (the checkpoint's preprocessor_config.json do_normalize), "
                                  "on or off; recorded in the cache")
    trust_remote_code: bool = _opt(False, "allow the encoder's own modelling code (only for "
                                          "checkpoints the native MERT-v1 loader refuses)")
    threads: int | None = _opt(None, "CPU threads per process for the encoder (default: torch's; "
                               "all CPUs split between torchrun processes). Float rounding "
                               "depends on it: equal counts give bitwise-equal caches")
    progress: bool = _opt(True, "draw a tqdm progress bar")

    @staticmethod
    def help(name: str) -> str:
        return help_of(ExtractConfig, name)


def validate(cfg: ExtractConfig) -> None:
    if not cfg.out:
        raise UserError("--out is required: the cache folder to write (or resume)")
    window_factor(TRAINING_T, cfg.stride, t_name="the paper's t", stride_name="--stride",
                  fix="the cache could not be re-pooled to it exactly: use 325, 65, 25, 13, 5 "
                      "or 1")
    if cfg.dtype not in STORE_DTYPES:
        raise UserError(f"--dtype {cfg.dtype}: choose float16 or float32")
    if cfg.normalize not in NORMALIZE_CHOICES:
        raise UserError(f"--normalize {cfg.normalize}: choose {', '.join(NORMALIZE_CHOICES)}")
    cfg.encoder_dtype = DTYPE_ALIASES.get(cfg.encoder_dtype, cfg.encoder_dtype)
    if cfg.encoder_dtype not in ENCODER_DTYPES:
        raise UserError(f"--encoder-dtype {cfg.encoder_dtype}: choose {', '.join(ENCODER_DTYPES)}")
    for name in ("segment_seconds", "batch_size", "shard_rows"):
        value = getattr(cfg, name)
        if not (value > 0 and math.isfinite(value)):  # `nan > 0` is False: nan is refused too
            raise UserError(f"--{name.replace('_', '-')} must be positive (got {value})")
    if not (cfg.min_tail_seconds >= 0 and math.isfinite(cfg.min_tail_seconds)):
        raise UserError(f"min_tail_seconds {cfg.min_tail_seconds} must be a number >= 0")
