"""`musilingo score`: score predictions against references under named metric protocols, or
generate them with a run first.

    musilingo score --predictions outputs/qwen_MusicCaps.json --protocol both \\
        --bertscore-model minilm --out scores/
    musilingo score --run runs/instruct --dataset musiccaps --annotations musiccaps-public.csv \\
        --out eval/mc --control shuffled-audio

prints a paper-style markdown table per protocol and, with --out, writes scores.json and
scores.md. The metrics are `evaluate.scoring.score_and_report`; the generation mode is run.py.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from ..errors import UserError
from ..options import config_options, load_config
from .config import ScoreConfig


@click.command()
@config_options(ScoreConfig, "score")
def score(recipe, overrides, **flags):
    """Score predictions against references under named protocols (BLEU, METEOR, ROUGE-L,
    BERTScore); metrics that cannot run here are shown as missing, with the reason.

    With --run RUN --dataset NAME, first generate the test split's answers, optionally with
    the --control shuffled-audio pass (musilingo/score/run.py). OVERRIDES are KEY=VALUE pairs
    over the recipe and the flags (e.g. max_items=20 control=shuffled-audio)."""
    cfg = load_config(ScoreConfig, "score", recipe, flags, overrides)
    if cfg.generates:
        from .run import score_run

        click.echo(score_run(cfg, log=lambda m: click.echo(m, err=True))["markdown"])
        return
    from ..evaluate.predictions import load_predictions
    from ..evaluate.scoring import score_and_report

    if not Path(cfg.predictions).is_file():
        raise UserError(f"--predictions {cfg.predictions}: no such file")
    pairs = load_predictions(cfg.predictions, cfg.prediction_field, cfg.reference_field)
    click.echo(f"{len(pairs):,} items from {cfg.predictions} (prediction field "
               f"{pairs.prediction_field!r}, reference field {pairs.reference_field!r})",
               err=True)
    result = score_and_report(pairs.predictions, pairs.references, out_dir=cfg.out,
                              source=str(cfg.predictions), **asdict(cfg.metrics_config()))
    click.echo(result["markdown"])
