"""`musilingo score`: score predictions against references under named metric protocols.

    musilingo score --predictions outputs/qwen_MusicCaps.json --protocol both \\
        --bertscore-model minilm --out scores/

prints a paper-style markdown table per protocol and, with --out, writes scores.json and
scores.md. The work is in `scoring.score_and_report(predictions, references, ...)`, which the
mode that first generates predictions (`--run RUN --dataset musiccaps`) calls with its own texts.
"""
from __future__ import annotations

import click

from ..infer.score_options import run_mode_requested, score_run_options
from .scoring import PROTOCOL_CHOICES, ScoreConfig, score_and_report

H = ScoreConfig.help


@click.command()
@click.option("--predictions", "predictions_path", default=None,
              type=click.Path(exists=True, dir_okay=False),
              help="JSON (list or object of objects), JSONL or CSV with a prediction and a "
                   "reference per item (or --run ... to generate them first)")
@click.option("--prediction-field", default=None,
              help="field holding the model's text (default: detected, e.g. prediction, "
                   "response, predictions)")
@click.option("--reference-field", default=None,
              help="field holding the reference (default: detected, e.g. ground_truth, "
                   "correct_answer, true_captions)")
@click.option("--protocol", type=click.Choice(PROTOCOL_CHOICES), default="both",
              show_default=True, help=H("protocol"))
@click.option("--bertscore-model", default="roberta-large", show_default=True,
              help=H("bertscore_model"))
@click.option("--bertscore-layer", type=int, default=None, help=H("bertscore_layer"))
@click.option("--metrics", default=None, help=H("metrics"))
@click.option("--percent", is_flag=True, help=H("percent"))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="folder to write scores.json and scores.md into")
@score_run_options
def score(predictions_path, prediction_field, reference_field, protocol, bertscore_model,
          bertscore_layer, metrics, percent, out_dir, **run_options):
    """Score predictions against references under named protocols (BLEU, METEOR, ROUGE-L,
    BERTScore); metrics that cannot run here are shown as missing, with the reason.

    With --run RUN --dataset NAME, first generate the test split's answers, optionally with
    the --control shuffled-audio pass (see musilingo/infer/evaluate_dataset.py)."""
    if predictions_path is None or run_mode_requested(run_options):
        from ..infer.score_options import score_run

        result = score_run(run_options, predictions_path=predictions_path, out_dir=out_dir,
                           log=lambda m: click.echo(m, err=True), protocol=protocol,
                           bertscore_model=bertscore_model, bertscore_layer=bertscore_layer,
                           metrics=metrics, percent=percent)
        click.echo(result["markdown"])
        return
    from .predictions import load_predictions

    pairs = load_predictions(predictions_path, prediction_field, reference_field)
    click.echo(f"{len(pairs):,} items from {predictions_path} (prediction field "
               f"{pairs.prediction_field!r}, reference field {pairs.reference_field!r})",
               err=True)
    result = score_and_report(pairs.predictions, pairs.references, protocol, bertscore_model,
                              out_dir, metrics=metrics, bertscore_layer=bertscore_layer,
                              percent=percent, source=str(predictions_path))
    click.echo(result["markdown"])
