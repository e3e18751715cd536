"""`musilingo cache info|verify|export`: inspect, check and convert a feature cache.

    musilingo cache info cache.zarr [--json] [--failures]
    musilingo cache verify cache.zarr [--reset-damaged]
    musilingo cache export cache.zarr --format hdf5 --out cache.h5
"""
from __future__ import annotations

import json
import sys

import click


@click.group()
def cache():
    """Inspect (info), check (verify) and convert (export) a feature cache."""


@cache.command()
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="print the numbers as one JSON object")
@click.option("--failures", is_flag=True, help="also list every failed row with its reason")
def info(path, as_json, failures):
    """Shape, layers, stride, row counts and size on disk of a cache."""
    from .reader import FeatureCache
    from .verify import cache_info

    data = cache_info(path)
    fails = FeatureCache.open(path).failures() if failures else []
    if as_json:
        if failures:
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
    click.echo(f"disk        {data['bytes'] / 1e6:.2f} MB"
               + (f"  ({per_row / 1e6:.3f} MB per done row)" if per_row else ""))
    for clip_id, segment, reason in fails:
        click.echo(f"failed      {clip_id} segment {segment}: {reason}")


@cache.command()
@click.argument("path", type=click.Path())
@click.option("--reset-damaged", is_flag=True,
              help="mark shards with damaged rows pending, so re-running extract redoes them")
@click.option("--no-progress", is_flag=True)
def verify(path, reset_damaged, no_progress):
    """Re-read every row: completeness, checksums, NaN/Inf, shapes, metadata (exit 1 if bad)."""
    from .verify import reset_shards, verify_cache

    problems = verify_cache(path, progress=not no_progress)
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
    if reset_damaged:
        damaged = [p for p in problems if p.row is not None and not p.what.startswith("pending")]
        shards = reset_shards(path, damaged)
        click.echo(f"reset {len(shards)} shards to pending: re-run the extract command to redo "
                   "them", err=True)
    sys.exit(1)


@cache.command()
@click.argument("path", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["hdf5"]), default="hdf5", show_default=True)
@click.option("--out", required=True, type=click.Path(), help="the file to write")
def export(path, fmt, out):
    """Write the same arrays and metadata in another format (hdf5, via h5py)."""
    from .export import export_hdf5

    _, pending = export_hdf5(path, out, progress=True)
    if pending:
        click.echo(f"warning: {pending} rows of {path} are still pending (extraction did not "
                   "finish); they are exported as zeros with status 0", err=True)
    click.echo(f"wrote {out}")


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
