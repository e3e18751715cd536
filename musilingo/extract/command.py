"""`musilingo extract`: run the frozen encoder over a data set's audio into a feature cache.

    musilingo extract --dataset folder --audio-root music/ --out cache.zarr --encoder tiny
    musilingo extract --dataset musiccaps --annotations musiccaps-public.csv \\
        --audio-root wav/ --split test --out mc.zarr --encoder mert-330m
    musilingo extract --config msd annotations=lp-musiccaps-msd/ audio_root=msd/ out=msd.zarr
    torchrun --nproc_per_node 2 -m musilingo extract ...   # same cache, two processes

Every ExtractConfig field is a flag and a key=value argument (recipe < flags < key=value), as
for every verb (musilingo/options.py). Re-running the same command resumes; see
`musilingo/extract/job.py` for how.
"""
from __future__ import annotations

import click

from ..options import config_options, load_config
from .config import ExtractConfig


@click.command()
@config_options(ExtractConfig, "extract")
def extract(recipe, overrides, **flags):
    """Extract window-pooled hidden states of every clip into a Zarr feature cache (resumable).

    OVERRIDES are KEY=VALUE pairs over the recipe and the flags (e.g. batch_size=32)."""
    from ..data import DATASETS
    from ..errors import UserError
    from ..processes import process_env
    from .job import run_extract
    from .plan import dataset_clips

    cfg = load_config(ExtractConfig, "extract", recipe, flags, overrides)
    if cfg.dataset is None:
        raise UserError("--dataset is required (or dataset: in the recipe): one of "
                        f"{', '.join(DATASETS)}")
    clips, note = dataset_clips(cfg)
    if process_env().rank == 0 and note:
        click.echo(f"note: {note}; those clips are recorded as failed", err=True)
    # "limit" is the cache format's name for max_clips (part of the clip list's identity).
    info = {"name": cfg.dataset, "split": cfg.split, "limit": cfg.max_clips,
            "annotations": str(cfg.annotations) if cfg.annotations else None,
            "audio_root": str(cfg.audio_root) if cfg.audio_root else None}
    run_extract(clips, cfg, info)
