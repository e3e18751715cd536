"""`musilingo train`: the click wrapper over `musilingo.train.run`.

    musilingo train --config pretrain_msd --cache msd.zarr --out runs/stage1
    musilingo train --config instruct_mi_short cache=mi.zarr init_adapter=runs/stage1
    musilingo train --stage instruct --dataset synth --annotations demo/synth --cache synth.zarr \\
        --llm tiny-llama --max-steps 50
    torchrun --nproc_per_node 2 -m musilingo train --config pretrain_msd cache=msd.zarr
    deepspeed --num_gpus 4 --module musilingo train --config pretrain_msd deepspeed=zero2 ...

Every TrainConfig field is a flag (its help is the field's docstring) and a `key=value` argument;
precedence: recipe < flags < key=value. `--dataset/--annotations/--audio-root/--split/
--caption-field` describe a single data set (or change the recipe's only one).
"""
from __future__ import annotations

import os

import click

from ..data import TRAIN_SETS
from ..options import choices, config_options, load_config, resolve
from .config import DataSpec, TrainConfig

# Without a recipe, --stage instruct starts from the paper's stage-2 optimisation settings.
STAGE_DEFAULTS = {"instruct": {"lr": 3e-5, "min_lr": 1e-5, "batch_size": 2, "grad_accum": 16}}
DATA_FLAGS = {"dataset": "name", "annotations": "annotations", "audio_root": "audio_root",
              "split": "split", "caption_field": "caption_field"}
SKIP = {"datasets", "betas", "stage"}


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@config_options(TrainConfig, "train", skip=SKIP)
@click.option("--stage", type=click.Choice(choices(TrainConfig, "stage")), default=None,
              help=TrainConfig.help("stage"))
@click.option("--dataset", default=None, help="one data set: reader name (" +
              ", ".join(TRAIN_SETS) + ")")
@click.option("--annotations", default=None, help="one data set: its annotation file or folder")
@click.option("--audio-root", default=None, help="one data set: its audio folder")
@click.option("--split", default=None, help="one data set: the split to train on")
@click.option("--caption-field", default=None, help="one data set: the MSD caption field")
@click.option("--local_rank", "--local-rank", "local_rank", type=int, default=None, hidden=True)
def train(recipe, stage, overrides, local_rank, **flags):
    """Train the MusiLingo adapter on cached (or online) encoder features.

    OVERRIDES are key=value pairs (dotted keys reach into data sets: datasets.0.cache=PATH).
    """
    from .trainer import run

    data = resolve(recipe, {}, (), verb="train", renames=TrainConfig.RENAMED)
    if stage:
        if not recipe:
            data.update(STAGE_DEFAULTS.get(stage, {}))
        data["stage"] = stage
    single = {DATA_FLAGS[k]: flags.pop(k) for k in list(DATA_FLAGS) if flags.get(k) is not None}
    for k in DATA_FLAGS:
        flags.pop(k, None)
    if single:
        sets = data.get("datasets") or []
        if "name" in single or not sets:
            data["datasets"] = [dict(single)]
        elif len(sets) == 1:
            sets[0] = {**sets[0], **single}
        else:
            raise click.UsageError("the recipe mixes several data sets: change one with "
                                   "datasets.N.KEY=VALUE instead of --annotations/--audio-root/...")
    cfg = load_config(TrainConfig, "train", None, flags, overrides, base=data)
    result = run(cfg)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    if result.stopped_early:
        click.echo(f"stopped after step {result.steps} (stop_after); resume with resume=true")
    else:
        click.echo(f"adapter: {result.adapter}")


__all__ = ["train", "DataSpec"]
