"""The values every verb shares, each spelled and checked one way.

    dtype_name("bfloat16")            # "bf16"; torch_dtype("bf16") -> torch.bfloat16
    resolve_device("auto")            # "cuda" when torch sees a GPU, else "cpu"
    rank_device("cuda", local_rank=1) # "cuda:1": one process of a (torchrun) job
    window_factor(325, 65)            # 5: stored windows per audio token, or a UserError
    check_positive(cfg, ("batch_size",)); check_range(cfg, "threads", 1, 1024, "threads")

One dtype vocabulary (fp32, bf16, fp16; the long torch names are accepted too), one device
default (`auto`), one wave-normalisation vocabulary (`Normalize`), and the rule every cache,
adapter and config relies on: a stride divides the t it is re-pooled to. Every check raises a
one-line UserError naming the field. Nothing here imports torch at import time: building a
verb's --help must stay fast.
"""
from __future__ import annotations

import math
import typing

from .errors import UserError

DTYPES = ("fp32", "bf16", "fp16")
# Wave normalisation before the encoder: the checkpoint's preprocessor_config.json, on or off.
Normalize = typing.Literal["auto", "on", "off"]
DTYPE_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
TORCH_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
DEVICE_HELP = "auto (cuda when a GPU is visible, else cpu), cpu, cuda or cuda:N"


def dtype_name(value: str, key: str = "dtype") -> str:
    """fp32 | bf16 | fp16 from any accepted spelling, or a UserError naming `key`."""
    name = DTYPE_ALIASES.get(str(value).lower(), str(value).lower())
    if name not in DTYPES:
        raise UserError(f"{key}={value!r}: use one of {', '.join(DTYPES)}")
    return name


def torch_dtype(value):
    """The torch dtype of any accepted spelling (a torch.dtype passes through)."""
    import torch

    if isinstance(value, torch.dtype):
        return value
    return getattr(torch, TORCH_NAMES[dtype_name(value)])


def resolve_device(requested: str | None, key: str = "device") -> str:
    """cpu, cuda or cuda:N for `requested` (auto/None: cuda when torch sees a GPU)."""
    import torch

    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"{key}={requested}: torch sees no GPU here; use cpu (or auto)")
        return requested
    if requested != "cpu":
        raise UserError(f"{key}={requested!r}: use auto, cpu, cuda or cuda:N")
    return requested


def rank_device(requested: str | None, local_rank: int, key: str = "device") -> str:
    """The device of one process of a (torchrun) job: cpu, the GPU its local rank owns when
    `requested` is cuda (or auto with a GPU), or exactly the GPU a cuda:N names."""
    device = resolve_device(requested, key)
    return f"cuda:{local_rank}" if device == "cuda" else device


def check_positive(cfg, names, *, allow_zero: bool = False) -> None:
    """A UserError naming the first field of `names` that is not a positive (finite) number."""
    for name in names:
        value = getattr(cfg, name)
        ok = value is not None and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
        if not ok:  # nan fails every comparison, so it is refused too
            raise UserError(f"{name}={value} must be {'>= 0' if allow_zero else 'positive'}")


def check_range(cfg, name: str, low: int, high: int, what: str) -> None:
    """A UserError unless the (optional) whole-number field lies in [low, high]: a count of
    threads or processes outside it is a typo that would otherwise crash deep inside torch or
    start 100000 processes."""
    value = getattr(cfg, name)
    if value is not None and not low <= value <= high:
        raise UserError(f"{name}={value}: give {low} to {high} {what}")


def window_factor(t: int, stride: int, *, t_name: str = "t", stride_name: str = "the cache stride",
                  fix: str | None = None) -> int:
    """t // stride: how many stored windows make one window of t frames. The one check that a
    cache's (or an adapter's) stride divides the t it is re-pooled to; a UserError otherwise."""
    t, stride = int(t), int(stride)
    if t < 1 or stride < 1:
        raise UserError(f"{t_name}={t} and {stride_name} {stride} must be positive")
    if t % stride:
        divisors = ", ".join(str(d) for d in range(1, min(t, 100_000) + 1) if t % d == 0)
        fix = fix or (f"choose {t_name} among {stride}, {2 * stride}, {3 * stride}, ..., or "
                      f"extract with a stride that divides {t} ({divisors})")
        raise UserError(f"{t_name}={t} is not a multiple of {stride_name} {stride} ({stride} "
                        f"does not divide {t}): {fix}")
    return t // stride
