"""`musilingo score`: score predictions against references under named metric protocols.

    musilingo score --predictions outputs/qwen_MusicCaps.json --protocol both \\
        --bertscore-model minilm --out scores/

prints a paper-style markdown table per protocol and, with --out, writes scores.json and
scores.md. The work is in `score_and_report(predictions, references, ...)`, which a mode that
first generates predictions (e.g. `--run RUN --dataset musiccaps`) calls with its own texts.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import click

from ..infer.score_options import run_mode_requested, score_run_options

PROTOCOL_CHOICES = ("musilingo", "lp-musiccaps", "both")


def _opt(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class ScoreConfig:
    """How to score; the field help texts are the CLI's option help."""

    protocol: str = _opt("both", "musilingo (per-item, MusiLingo/MU-LLaMA scripts), lp-musiccaps "
                                 "(corpus level, HF evaluate) or both")
    bertscore_model: str = _opt("roberta-large", "roberta-large (hub id, needs a network or HF "
                                                 "cache), minilm (offline MiniLM), or a folder")
    bertscore_layer: int | None = _opt(None, "BERTScore layer (default: the model's usual "
                                             "one: 17 for roberta-large, 6 for minilm)")
    metrics: str | None = _opt(None, "comma list of bleu, meteor, rouge, bertscore "
                                     "(default: all)")
    percent: bool = _opt(False, "show values x100, as the papers print them")

    @staticmethod
    def help(name: str) -> str:
        return {f.name: f.metadata.get("help", "") for f in fields(ScoreConfig)}[name]

    def protocol_names(self) -> list[str]:
        return ["musilingo", "lp-musiccaps"] if self.protocol == "both" else [self.protocol]


def score_and_report(predictions: list[str], references: list[str], protocol: str = "both",
                     bertscore_model: str = "roberta-large", out_dir: str | Path | None = None,
                     *, metrics: str | None = None, bertscore_layer: int | None = None,
                     percent: bool = False, source: str | None = None) -> dict:
    """Score the pairs under `protocol` (musilingo, lp-musiccaps or both); with `out_dir`, write
    scores.json and scores.md there.

    Returns {"source", "config", "reports": [ScoreReport.to_dict()...], "markdown"}: everything
    the command prints and writes, so another command (or a test) can reuse it.
    """
    from ..errors import UserError
    from .protocols import parse_metric_families, score_protocols
    from .report import reports_to_markdown

    config = ScoreConfig(protocol=protocol, bertscore_model=bertscore_model,
                         bertscore_layer=bertscore_layer, metrics=metrics, percent=percent)
    if config.protocol not in PROTOCOL_CHOICES:
        raise UserError(f"unknown protocol {config.protocol!r}; choose "
                        f"{', '.join(PROTOCOL_CHOICES)}")
    try:
        parse_metric_families(config.metrics)
    except ValueError as exc:
        raise UserError(f"--metrics: {exc}") from exc
    if config.bertscore_layer is not None and config.bertscore_layer < 0:
        raise UserError("--bertscore-layer must be 0 or more")
    try:
        reports = score_protocols(predictions, references, config.protocol_names(),
                                  bertscore_model=config.bertscore_model,
                                  bertscore_layer=config.bertscore_layer, metrics=config.metrics)
    except ValueError as exc:  # unequal lengths, nothing to score
        raise UserError(str(exc)) from exc
    markdown = reports_to_markdown(reports, percent=config.percent, source=source)
    empty = sum(1 for p in predictions if not str(p).strip())
    if empty:  # an under-trained model that writes nothing scores 0 without a word otherwise
        markdown += (f"\n- warning: {empty:,} of {len(predictions):,} predictions are empty or "
                     "whitespace only (they score 0)\n")
    result = {"source": source, "config": asdict(config), "empty_predictions": empty,
              "reports": [r.to_dict() for r in reports], "markdown": markdown}
    if out_dir is not None:
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "scores.json").write_text(
                json.dumps({k: v for k, v in result.items() if k != "markdown"}, indent=2),
                encoding="utf-8")
            (out / "scores.md").write_text(markdown, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--out {out}: cannot write there ({exc.strerror})") from exc
    return result


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
