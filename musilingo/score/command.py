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
    from ..evaluate.predictions import load_predictions, read_rows
    from ..evaluate.scoring import score_and_report

    if not Path(cfg.predictions).is_file():
        raise UserError(f"--predictions {cfg.predictions}: no such file")
    rows = read_rows(Path(cfg.predictions))  # parsed once, for whichever kind it is
    if is_multiple_choice(rows):
        click.echo(score_mcq_file(cfg, rows)["markdown"])
        return
    pairs = load_predictions(cfg.predictions, cfg.prediction_field, cfg.reference_field,
                             rows=rows)
    click.echo(f"{len(pairs):,} items from {cfg.predictions} (prediction field "
               f"{pairs.prediction_field!r}, reference field {pairs.reference_field!r})",
               err=True)
    result = score_and_report(pairs.predictions, pairs.references, out_dir=cfg.out,
                              source=str(cfg.predictions), **asdict(cfg.metrics_config()))
    click.echo(result["markdown"])


def is_multiple_choice(rows: list) -> bool:
    """A MuChoMusic exchange file (`answer_orders`) or a plain one (`options` + `correct`), by
    its first row (`read_rows`'s)."""
    first = rows[0][2] if rows and isinstance(rows[0][2], dict) else {}
    return "answer_orders" in first or ("options" in first and "correct" in first)


def score_mcq_file(cfg, rows: list) -> dict:
    """Accuracy, answered rate and the breakdown of a multiple-choice predictions file, under
    the benchmark's reading rule; with --out, scores.json|md and categories.png."""
    from ..evaluate.mcq import categories_plot, mcq_report
    from ..evaluate.mcq_exchange import read_mcq_file

    questions, replies, info = read_mcq_file(cfg.predictions, cfg.prediction_field, rows=rows)
    click.echo(f"{len(questions):,} {info['n_options']}-option questions from {cfg.predictions} "
               f"({info['shape']} file, reply field {info['prediction_field']!r})", err=True)
    protocol = (f"MuChoMusic's reading rule on the file's own prompts, {info['n_options']} "
                "options")
    result = mcq_report(replies, questions, protocol=protocol, out_dir=cfg.out,
                        source=str(cfg.predictions), settings={"file": info["shape"]})
    if cfg.out is not None:
        categories_plot(Path(cfg.out) / "categories.png", {"replies": result["breakdown"]},
                        title=protocol, chance=result["counts"]["chance"])
    return result
