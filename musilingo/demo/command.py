"""`musilingo demo [--quick] [--out DIR] [--seed N]`: the whole pipeline on generated music."""
from __future__ import annotations

import click

from .recipe import DemoConfig


@click.command()
@click.option("--quick", is_flag=True, help=DemoConfig.__dataclass_fields__["quick"].metadata["help"])
@click.option("--out", default=None, help="folder for data, cache, runs and report "
              "(default demo_out, or demo_out_quick with --quick)")
@click.option("--seed", default=0, show_default=True, type=int, help="seed of data, adapter and order")
@click.option("--llm", default=None, help="frozen LLM (default smollm2; tiny-lm with --quick)")
@click.option("--instruct-steps", default=None, type=int, help="stage-2 optimizer steps")
@click.option("--pretrain-steps", default=None, type=int, help="stage-1 optimizer steps")
@click.option("--no-progress", is_flag=True, help="no progress bars (logs only)")
def demo(quick, out, seed, llm, instruct_steps, pretrain_steps, no_progress):
    """Generate music with known attributes, extract, pre-train, instruction-tune, score.

    Prints attribute accuracy for the untrained adapter, the trained adapter and the trained
    adapter hearing shuffled audio, and writes a report folder (metrics.json, summary.md,
    loss.png, accuracy.png, samples.md). Re-running reuses finished steps.
    """
    from .recipe import run_demo

    overrides = {k: v for k, v in dict(out=out, seed=seed, llm=llm, instruct_steps=instruct_steps,
                                       pretrain_steps=pretrain_steps).items() if v is not None}
    overrides["progress"] = not no_progress
    cfg = DemoConfig.quick_preset(**overrides) if quick else DemoConfig(**overrides)
    run_demo(cfg)
