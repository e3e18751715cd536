"""Scoring prediction/reference pairs under named protocols, with the report files.

    result = score_and_report(predictions, references, "both", "minilm", out_dir="scores/")
    result["markdown"], result["reports"], result["empty_predictions"]

The text-only component every scoring path calls: `musilingo score --predictions` and the
score-a-run recipe (`musilingo.score.run`, which generates first). It knows nothing
of models or audio.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal
from pathlib import Path

from ..errors import UserError
from ..options import check_choices, help_of, option as _opt



@dataclass
class MetricsConfig:
    """How to score; the field help texts are the CLI's option help."""

    protocol: Literal["musilingo", "lp-musiccaps", "both"] = _opt(
        "both", "musilingo (per-item, MusiLingo/MU-LLaMA scripts), lp-musiccaps (corpus level, "
                "HF evaluate) or both")
    bertscore_model: str = _opt("roberta-large", "roberta-large (hub id, needs a network or HF "
                                                 "cache), minilm (offline MiniLM), or a folder")
    bertscore_layer: int | None = _opt(None, "BERTScore layer (default: the model's usual "
                                             "one: 17 for roberta-large, 6 for minilm)")
    metrics: str | None = _opt(None, "comma list of bleu, meteor, rouge, bertscore "
                                     "(default: all)")
    percent: bool = _opt(False, "show values x100, as the papers print them")

    @staticmethod
    def help(name: str) -> str:
        return help_of(MetricsConfig, name)

    def validate(self) -> "MetricsConfig":
        from .protocols import parse_metric_families

        check_choices(self, MetricsConfig)
        try:
            parse_metric_families(self.metrics)
        except ValueError as exc:
            raise UserError(f"--metrics: {exc}") from exc
        if self.bertscore_layer is not None and self.bertscore_layer < 0:
            raise UserError("--bertscore-layer must be 0 or more")
        return self

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
    from .protocols import score_protocols
    from .report import reports_to_markdown, write_scores

    config = MetricsConfig(protocol=protocol, bertscore_model=bertscore_model,
                         bertscore_layer=bertscore_layer, metrics=metrics,
                         percent=percent).validate()
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
    settings = asdict(config)
    result = {"source": source, "config": settings, "empty_predictions": empty,
              "reports": [r.to_dict() for r in reports], "markdown": markdown}
    if out_dir is not None:
        write_scores(out_dir, result)
    return result
