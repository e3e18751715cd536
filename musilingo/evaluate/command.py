"""`musilingo score`: score predictions against references under named metric protocols.

    musilingo score --predictions outputs/qwen_MusicCaps.json --protocol both \\
        --bertscore-model minilm --out scores/

prints a paper-style markdown table per protocol and, with --out, writes scores.json and
scores.md. The work is in `scoring.score_and_report(predictions, references, ...)`, which the
mode that first generates predictions (`--run RUN --dataset musiccaps`) calls with its own texts.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import click

from ..errors import UserError
from ..infer.score_options import run_mode_requested, score_run_options
from ..options import config_options, from_dict, resolve
from .scoring import PROTOCOL_CHOICES, ScoreConfig, score_and_report


@click.command()
@config_options(ScoreConfig, choices={"protocol": PROTOCOL_CHOICES}, recipes="score_musiccaps")
@score_run_options
def score(recipe, overrides, **flags):
    """Score predictions against references under named protocols (BLEU, METEOR, ROUGE-L,
    BERTScore); metrics that cannot run here are shown as missing, with the reason.

    With --run RUN --dataset NAME, first generate the test split's answers, optionally with
    the --control shuffled-audio pass (see musilingo/infer/evaluate_dataset.py). OVERRIDES are
    KEY=VALUE pairs over the recipe and the flags (e.g. limit=20 control=shuffled-audio)."""
    data = resolve(recipe, flags, overrides)
    own = {f.name for f in fields(ScoreConfig)}
    cfg = from_dict(ScoreConfig, {k: data.pop(k) for k in list(data) if k in own}, "score")
    cfg.validate()
    unknown = sorted(set(data) - set(flags))
    if unknown:
        raise UserError(f"unknown config key(s) {', '.join(unknown)}; see `musilingo score "
                        "--help` for the keys")
    scoring = {k: getattr(cfg, k) for k in ScoreConfig.SCORING}
    if cfg.predictions is None or run_mode_requested(data):
        from ..infer.score_options import score_run

        result = score_run(data, predictions_path=cfg.predictions, out_dir=cfg.out,
                           log=lambda m: click.echo(m, err=True), **scoring)
        click.echo(result["markdown"])
        return
    from .predictions import load_predictions

    if not Path(cfg.predictions).is_file():
        raise UserError(f"--predictions {cfg.predictions}: no such file")
    pairs = load_predictions(cfg.predictions, cfg.prediction_field, cfg.reference_field)
    click.echo(f"{len(pairs):,} items from {cfg.predictions} (prediction field "
               f"{pairs.prediction_field!r}, reference field {pairs.reference_field!r})",
               err=True)
    result = score_and_report(pairs.predictions, pairs.references, out_dir=cfg.out,
                              source=str(cfg.predictions), **scoring)
    click.echo(result["markdown"])
