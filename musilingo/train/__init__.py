"""Adapter training: prompts and label masks, examples and mixing, the DeepSpeed loop, checkpoints.

    from musilingo.train import TrainConfig, run
    result = run(TrainConfig.from_yaml("pretrain_msd", ["max_steps=10"]))

`musilingo train --config <recipe> key=value ...` is the same call from the command line.
"""
from __future__ import annotations


def __getattr__(name):
    # Lazy: importing the package (e.g. for prompts) must not pull in DeepSpeed.
    if name in ("run", "RunResult"):
        from . import trainer

        return getattr(trainer, name)
    if name == "TrainConfig":
        from .config import TrainConfig

        return TrainConfig
    raise AttributeError(name)
