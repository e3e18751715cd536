"""`musilingo demo [--quick] [--out DIR] [--seed N] [KEY=VALUE ...]`: the whole pipeline on
generated music.

    musilingo demo                          # musicnn + tiny-lm, both stages (make demo)
    musilingo demo --quick                  # the CI-sized run: fewer clips, one stage
    musilingo demo --config smollm2         # the real SmolLM2-135M as the frozen LLM
    musilingo demo instruct_steps=300 n_train=160
    musilingo demo --config smollm2 train.lora_rank=16 train.dtype=bf16   # any TrainConfig key

Configured like every verb (musilingo/options.py): each DemoConfig field is a flag and a
key=value argument; --quick starts from the quick preset instead of the full defaults.
"""
from __future__ import annotations

import click

from ..options import config_options, from_dict, resolve
from .recipe import DemoConfig


@click.command()
@config_options(DemoConfig, "demo")
def demo(recipe, overrides, **flags):
    """Generate music with known attributes, extract, pre-train, instruction-tune, score.

    Prints attribute accuracy for the untrained adapter, the trained adapter, the trained
    adapter hearing shuffled audio and the trained model with no audio (text only), and writes
    a report folder (metrics.json, summary.md, loss.png, accuracy.png, samples.md). Re-running
    reuses finished steps. KEY=VALUE overrides any option; train.KEY=VALUE any `musilingo
    train` key for both stages and every variant (train.dtype=bf16, train.lora_rank=8).
    """
    from .recipe import run_demo

    data = resolve(recipe, flags, overrides, verb="demo")
    checked = from_dict(DemoConfig, data, "demo")     # unknown keys and bad values refused
    given = {k: getattr(checked, k) for k in data}
    cfg = DemoConfig.quick_preset(**given) if checked.quick else DemoConfig(**given)
    run_demo(cfg)
