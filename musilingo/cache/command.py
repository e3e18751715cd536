"""`musilingo cache info|verify|export`: inspect, check and convert a feature cache.

    musilingo cache info cache.zarr [--json] [--failures] [--deep]
    musilingo cache verify cache.zarr [--workers 4] [--reset-damaged]
    musilingo cache export cache.zarr --format hdf5 --out cache.h5
    musilingo cache upgrade cache.zarr          # format 2 -> 3, features untouched
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Literal

import click

from ..options import config_options, load_config_args, option as _opt

# `cache verify` found damage (listed above the exit): not a bug (1), not a usage error (2).
EXIT_DAMAGED = 4


@dataclass
class InfoConfig:
    json: bool = _opt(False, "print the numbers as one JSON object")
    failures: bool = _opt(False, "also list every failed row with its reason")
    deep: bool = _opt(False, "measure the size on disk by walking every file (default: the sizes "
                             "recorded when each shard was committed)")


@dataclass
class VerifyConfig:
    reset_damaged: bool = _opt(False, "mark shards with damaged rows pending, so re-running "
                                      "extract redoes them")
    workers: int = _opt(1, "processes that divide the shards between them")
    progress: bool = _opt(True, "draw a tqdm progress bar")

    def validate(self) -> "VerifyConfig":
        from ..errors import UserError

        if not 1 <= self.workers <= 256:
            raise UserError(f"--workers {self.workers}: give 1 to 256 processes")
        return self


@dataclass
class UpgradeConfig:
    progress: bool = _opt(True, "draw a tqdm progress bar")


@dataclass
class ExportConfig:
    format: Literal["hdf5"] = _opt("hdf5", "output format: hdf5 (via h5py)")
    out: str | None = _opt(None, "the file to write (required)")

    def validate(self) -> "ExportConfig":
        from ..errors import UserError

        if not self.out:
            raise UserError("--out is required: the file to write")
        return self


def _config(cls, verb: str, recipe, args, flags):
    """(PATH, validated config) of a cache subcommand's command line."""
    (path,), cfg = load_config_args(cls, verb, recipe, flags, args, count=1,
                                    usage="give one cache PATH")
    return path, cfg


@click.group()
def cache():
    """Inspect (info), check (verify), convert (export) and upgrade a feature cache."""


@cache.command()
@config_options(InfoConfig, "cache-info", args="args")
def info(recipe, args, **flags):
    """Shape, layers, stride, row counts and size on disk of a cache.

    ARGS: the cache PATH, then any KEY=VALUE overrides."""
    from .reader import FeatureCache
    from .verify import cache_info

    path, cfg = _config(InfoConfig, "cache-info", recipe, args, flags)
    data = cache_info(path, deep=cfg.deep)
    fails = FeatureCache.open(path).failures() if cfg.failures else []
    if cfg.json:
        if cfg.failures:
            data["failures"] = [{"clip_id": c, "segment": s, "reason": r} for c, s, r in fails]
        click.echo(json.dumps(data, indent=1))
        return
    per_row = data["bytes_per_done_row"]
    click.echo(f"cache       {data['path']}  (musilingo {data['musilingo_version']})")
    click.echo(f"encoder     {data['encoder']}  weights {data['encoder_weights_sha256']}")
    click.echo(f"features    [rows, hidden states, windows, dim] = {data['shape']} {data['dtype']}")
    click.echo(f"pooling     stride {data['stride']} frames, {data['windows']} windows per "
               f"{data['segment_seconds']:g} s segment")
    click.echo(f"rows        {data['done']} done, {data['failed']} failed, "
               f"{data['pending']} pending  ({data['shard_rows']} per shard)")
    click.echo(f"clips       {data['clips']} planned, {data['clips_with_features']} with features")
    click.echo(f"disk        {data['bytes'] / 1e6:.2f} MB {data['bytes_measured']}"
               + (f"  ({per_row / 1e6:.3f} MB per done row)" if per_row else ""))
    if not data["indexed"]:
        click.echo("index       none yet (extraction unfinished): opening reads every commit "
                   "record; the extract run that completes the cache writes the index")
    for clip_id, segment, reason in fails:
        click.echo(f"failed      {clip_id} segment {segment}: {reason}")


@cache.command()
@config_options(VerifyConfig, "cache-verify", args="args")
def verify(recipe, args, **flags):
    """Re-read every row: completeness, checksums, NaN/Inf, shapes, metadata. Exits 0 when the
    cache is whole, 4 when it found damage (listed), 2 when PATH is not a cache.

    ARGS: the cache PATH, then any KEY=VALUE overrides."""
    from .verify import reset_shards, verify_cache

    path, cfg = _config(VerifyConfig, "cache-verify", recipe, args, flags)
    problems = verify_cache(path, progress=cfg.progress, workers=cfg.workers)
    if not problems:
        click.echo(f"ok: {path} is complete and every row matches its checksum")
        return
    for p in problems[:200]:
        click.echo(str(p))
    if len(problems) > 200:
        click.echo(f"... and {len(problems) - 200} more")
    rows = sorted({p.row for p in problems if p.row is not None})
    click.echo(f"verify failed: {len(problems)} problems in {len(rows)} rows"
               + (f" (rows {_ranges(rows)})" if rows else ""), err=True)
    if cfg.reset_damaged:
        damaged = [p for p in problems if p.row is not None and not p.what.startswith("pending")]
        shards = reset_shards(path, damaged)
        click.echo(f"reset {len(shards)} shards to pending: re-run the extract command to redo "
                   "them", err=True)
    sys.exit(EXIT_DAMAGED)


@cache.command()
@config_options(UpgradeConfig, "cache-upgrade", args="args")
def upgrade(recipe, args, **flags):
    """Convert a format-2 cache to format 3 in place: strings as bytes + offsets, a commit record
    per shard, the row index. The features files are not touched, and every row checksum stays
    valid. Running it again finishes an interrupted upgrade.

    ARGS: the cache PATH, then any KEY=VALUE overrides."""
    from .upgrade import upgrade_cache

    path, cfg = _config(UpgradeConfig, "cache-upgrade", recipe, args, flags)
    done = upgrade_cache(path, progress=cfg.progress)
    click.echo(f"{path}: format {done['from']} -> 3, {done['shards']} committed shards; check it "
               f"with `musilingo cache verify {path}`")


@cache.command()
@config_options(ExportConfig, "cache-export", args="args")
def export(recipe, args, **flags):
    """Write the same arrays and metadata in another format (hdf5, via h5py).

    ARGS: the cache PATH, then any KEY=VALUE overrides."""
    from .export import export_hdf5

    path, cfg = _config(ExportConfig, "cache-export", recipe, args, flags)
    _, pending = export_hdf5(path, cfg.out, progress=True)
    if pending:
        click.echo(f"warning: {pending} rows of {path} are still pending (extraction did not "
                   "finish); they are exported as zeros with status 0", err=True)
    click.echo(f"wrote {cfg.out}")


def _ranges(rows: list[int]) -> str:
    out, start, prev = [], rows[0], rows[0]
    for r in rows[1:] + [None]:
        if r is not None and r == prev + 1:
            prev = r
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if r is not None:
            start = prev = r
    return ", ".join(out)
