"""`musilingo extract`: run the frozen encoder over a data set's audio into a feature cache.

    musilingo extract --dataset folder --audio-root music/ --out cache.zarr --encoder tiny
    musilingo extract --dataset musiccaps --annotations musiccaps-public.csv \\
        --audio-root wav/ --split test --out mc.zarr --encoder mert-330m
    torchrun --nproc_per_node 2 -m musilingo extract ...   # same cache, two processes

Re-running the same command resumes; see `musilingo/extract/job.py` for how.
"""
from __future__ import annotations

import click

from .config import ExtractConfig

H = ExtractConfig.help


@click.command()
@click.option("--dataset", required=True,
              help="msd, musiccaps, musicinstruct, musicqa, songdescriber, folder or synth")
@click.option("--annotations", type=click.Path(dir_okay=True), default=None,
              help="the data set's annotation file (not needed for folder)")
@click.option("--audio-root", type=click.Path(), default=None,
              help="folder holding the audio (for folder: the folder itself)")
@click.option("--out", required=True, type=click.Path(), help=H("out"))
@click.option("--split", default=None, help="train, valid or test (default: all rows)")
@click.option("--limit", type=int, default=None, help="only the first N clips")
@click.option("--caption-field", default="caption_writing", show_default=True,
              help="msd: which LP-MusicCaps caption to keep with the records")
@click.option("--encoder", default="tiny", show_default=True, help=H("encoder"))
@click.option("--trust-remote-code", is_flag=True, help=H("trust_remote_code"))
@click.option("--normalize", default="auto", show_default=True,
              type=click.Choice(["auto", "on", "off"]), help=H("normalize"))
@click.option("--device", default="cpu", show_default=True, help=H("device"))
@click.option("--encoder-dtype", default="float32", show_default=True,
              type=click.Choice(["float32", "bfloat16", "float16", "fp32", "bf16", "fp16"]),
              help=H("encoder_dtype"))
@click.option("--stride", type=int, default=325, show_default=True, help=H("stride"))
@click.option("--segment-seconds", type=float, default=30.0, show_default=True,
              help=H("segment_seconds"))
@click.option("--dtype", default="float16", show_default=True,
              type=click.Choice(["float16", "float32"]), help=H("dtype"))
@click.option("--batch-size", type=int, default=8, show_default=True, help=H("batch_size"))
@click.option("--num-workers", type=int, default=None, help=H("num_workers"))
@click.option("--shard-rows", type=int, default=64, show_default=True, help=H("shard_rows"))
@click.option("--threads", type=int, default=None, help=H("threads"))
@click.option("--strict", is_flag=True, help=H("strict"))
@click.option("--allow-outside-root", is_flag=True,
              help="let annotation files name audio outside --audio-root (absolute paths, ..)")
@click.option("--no-progress", is_flag=True, help="no progress bar (logs only)")
def extract(dataset, annotations, audio_root, out, split, limit, caption_field, encoder,
            trust_remote_code, normalize, device, encoder_dtype, stride, segment_seconds, dtype, batch_size,
            num_workers, shard_rows, threads, strict, allow_outside_root, no_progress):
    """Extract window-pooled hidden states of every clip into a Zarr feature cache (resumable)."""
    from ..data import read_dataset
    from ..errors import UserError
    from .config import validate
    from .job import dist_env, run_extract
    from .plan import clip_list

    if limit is not None and limit <= 0:
        raise UserError("--limit must be positive")
    cfg = ExtractConfig(out=out, encoder=encoder, stride=stride, segment_seconds=segment_seconds,
                        dtype=dtype, encoder_dtype=encoder_dtype, batch_size=batch_size,
                        num_workers=num_workers, shard_rows=shard_rows, threads=threads,
                        strict=strict, device=device, trust_remote_code=trust_remote_code,
                        normalize=normalize, progress=not no_progress)
    validate(cfg)  # before reading a large annotation file
    records = read_dataset(dataset, annotations, audio_root, split=split,
                           caption_field=caption_field, allow_outside_root=allow_outside_root)
    clips = clip_list(records, limit)
    if dist_env()[0] == 0 and (records.missing or records.refused):
        click.echo(f"note: {records.summary()}; those clips are recorded as failed", err=True)
    info = {"name": dataset, "split": split, "limit": limit,
            "annotations": str(annotations) if annotations else None,
            "audio_root": str(audio_root) if audio_root else None}
    run_extract(clips, cfg, info)
