"""Scoring generated text under named metric protocols (`musilingo`, `lp-musiccaps`).

Entry points: `score_texts` / `score_protocols` (protocols.py), `load_predictions`
(predictions.py), `score_and_report` (scoring.py), the `score` click command (command.py), and an HF
`evaluate` module in metric/musilingo_metrics.py. Imports here are light; the metric libraries
load on first use.
"""
from .protocols import PROTOCOLS, score_protocols, score_texts
from .report import MetricResult, ScoreReport

__all__ = ["PROTOCOLS", "MetricResult", "ScoreReport", "score_protocols", "score_texts"]
