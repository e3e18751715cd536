"""The two named scoring protocols for captions and answers, and `score_texts` to run them.

Two protocols exist in the music-captioning literature and give very different numbers for the
same text, so a score is only meaningful with its protocol's name (docs/REFERENCE.md section 4):

`musilingo`: what the MusiLingo (qa.py), MU-LLaMA (ModelEvaluations/evaluate.py) and CMI-Bench
scripts compute, the source of MusiLingo's Table 1/2. Every metric is a mean over items, one
reference per item:
- BLEU is NLTK `sentence_bleu([reference], prediction)` on raw strings, i.e. on CHARACTER
  n-grams, no smoothing. The scripts print "BLEU" (default weights: geometric mean of the 1..4
  precisions) and "BLEU-4" (weights (0,0,0,1)). The paper's B-U is "the average of BLEU-1..4";
  we report BLEU-n as the same character-level sentence BLEU with single-order weights (BLEU-4
  is then exactly the scripts' BLEU-4) and B-U as their mean, and ALSO the scripts' cumulative
  "BLEU" as its own field, so either reading of the paper can be compared. This choice is ours:
  the scripts never print BLEU-1..3.
- METEOR: NLTK `meteor_score` on `wordpunct_tokenize` tokens (needs WordNet).
- ROUGE-L: rouge_score rougeL with the Porter stemmer, the RECALL field.
- BERTScore: the RECALL field (roberta-large layer 17, no idf, no rescaling, by default).
Headline (the paper's columns): B-U, METEOR, ROUGE-L, BERTScore-R.

`lp-musiccaps`: what HF `evaluate`'s `bleu`, `meteor`, `rouge` and `bertscore` metrics compute
(LP-MusicCaps and most captioning papers):
- BLEU-n, n = 1..4: corpus BLEU with max order n on 13a tokens, no smoothing; B-U their mean.
- METEOR: mean over items of NLTK METEOR on `word_tokenize` tokens (HF's meteor script).
- ROUGE-L: mean rougeL F-measure without stemmer. (HF's rouge reports the median of 1000
  bootstrap resamples' means by default, a random number within ~1e-4 of the exact mean that
  we report.)
- BERTScore: mean F1.
Headline: BLEU-1..4, METEOR, ROUGE-L, BERTScore-F1.

A metric that cannot run here is reported missing with its reason (see report.py).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from . import ngram_metrics
from .report import MetricResult, ScoreReport

FAMILIES = ("bleu", "meteor", "rouge", "bertscore")
_FAMILY_ALIASES = {"bleu": "bleu", "b-u": "bleu", "meteor": "meteor", "rouge": "rouge",
                   "rouge-l": "rouge", "rougel": "rouge", "bertscore": "bertscore",
                   "bert-score": "bertscore", "bert_score": "bertscore"}


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    family: str
    definition: str
    headline: bool = False


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    metrics: tuple[MetricDefinition, ...]


def _m(name, family, definition, headline=False):
    return MetricDefinition(name, family, definition, headline)


_CHAR = "mean over items of NLTK sentence_bleu on characters"
MUSILINGO = Protocol(
    "musilingo",
    "Per-item means, as the MusiLingo / MU-LLaMA / CMI-Bench scripts compute them (BLEU on "
    "character n-grams, ROUGE-L and BERTScore recall).",
    tuple([_m(f"BLEU-{n}", "bleu", f"{_CHAR}, weights {w}")
           for n, w in zip(range(1, 5), ["(1,0,0,0)", "(0,1,0,0)", "(0,0,1,0)", "(0,0,0,1)"])]
          + [_m("B-U", "bleu", "mean of BLEU-1..4", True),
             _m("BLEU", "bleu", f"{_CHAR}, default weights (the scripts' 'BLEU')"),
             _m("METEOR", "meteor", "mean NLTK meteor_score on wordpunct_tokenize tokens", True),
             _m("ROUGE-L", "rouge", "mean rouge_score rougeL recall, Porter stemmer", True),
             _m("BERTScore-P", "bertscore", "mean BERTScore precision"),
             _m("BERTScore-R", "bertscore", "mean BERTScore recall", True),
             _m("BERTScore-F1", "bertscore", "mean BERTScore F1")]))

LP_MUSICCAPS = Protocol(
    "lp-musiccaps",
    "Corpus-level BLEU and item means as HF evaluate's bleu/meteor/rouge/bertscore compute "
    "them (LP-MusicCaps and most captioning papers).",
    tuple([_m(f"BLEU-{n}", "bleu", f"corpus BLEU, max order {n}, 13a tokens, no smoothing", True)
           for n in range(1, 5)]
          + [_m("B-U", "bleu", "mean of BLEU-1..4"),
             _m("METEOR", "meteor", "mean NLTK meteor_score on word_tokenize tokens", True),
             _m("ROUGE-L", "rouge", "mean rouge_score rougeL F-measure, no stemmer", True),
             _m("BERTScore-P", "bertscore", "mean BERTScore precision"),
             _m("BERTScore-R", "bertscore", "mean BERTScore recall"),
             _m("BERTScore-F1", "bertscore", "mean BERTScore F1", True)]))

PROTOCOLS = {p.name: p for p in (MUSILINGO, LP_MUSICCAPS)}


class MetricUnavailable(RuntimeError):
    """A metric family cannot run here; str(exc) is the reason shown in the report."""


def parse_metric_families(metrics: Iterable[str] | str | None) -> set[str]:
    """{"bleu", "meteor", ...} from names like "BLEU,rouge-l" (None means all families)."""
    if metrics is None:
        return set(FAMILIES)
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    chosen = set()
    for name in (n.strip().lower() for n in names):
        if not name:
            continue
        if name not in _FAMILY_ALIASES:
            raise ValueError(f"unknown metric {name!r}; choose from {', '.join(FAMILIES)}")
        chosen.add(_FAMILY_ALIASES[name])
    return chosen


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


@dataclass
class Scoring:
    """One scoring job over (predictions, references), shared by the protocols it runs.

    It keeps what protocols can share (the BERTScore model and its per-item scores) so that
    scoring under both protocols loads and runs BERTScore once.
    """

    predictions: list[str]
    references: list[str]
    bertscore_model: str = "roberta-large"
    bertscore_layer: int | None = None
    bertscore_description: str | None = field(default=None, init=False)
    # BertScores once computed, or the BertScoreUnavailable that stopped it
    _bertscores: object = field(default=None, init=False, repr=False)
    _bertscore_seconds: float = field(default=0.0, init=False)

    def bleu(self, protocol: str) -> dict[str, float]:
        if protocol == "musilingo":
            per_item = ngram_metrics.char_sentence_bleu(self.references, self.predictions)
            columns = [_mean([row[i] for row in per_item]) for i in range(5)]
            values = {f"BLEU-{n}": columns[n - 1] for n in range(1, 5)}
            values["BLEU"] = columns[4]
        else:
            corpus = ngram_metrics.corpus_bleu_13a(self.references, self.predictions)
            values = {f"BLEU-{n}": corpus[n] for n in range(1, 5)}
        values["B-U"] = _mean([values[f"BLEU-{n}"] for n in range(1, 5)])
        return values

    def meteor(self, protocol: str) -> dict[str, float]:
        from .wordnet import ensure_nltk_data

        status = ensure_nltk_data(prepare=True)
        if status.wordnet is None:
            raise MetricUnavailable(status.wordnet_reason)
        tokenizer = "wordpunct" if protocol == "musilingo" else "word"
        if tokenizer == "word" and status.punkt is None:
            raise MetricUnavailable(status.punkt_reason)
        return {"METEOR": _mean(ngram_metrics.meteor_scores(
            self.references, self.predictions, tokenizer))}

    def rouge(self, protocol: str) -> dict[str, float]:
        stem = protocol == "musilingo"
        per_item = ngram_metrics.rouge_l_scores(self.references, self.predictions, stem)
        field_index = 1 if protocol == "musilingo" else 2  # recall vs F-measure
        return {"ROUGE-L": _mean([row[field_index] for row in per_item])}

    def bertscore(self, protocol: str) -> dict[str, float]:
        from .bertscore import BertScorer, BertScoreUnavailable, resolve_model

        if self._bertscores is None:
            started = time.perf_counter()
            try:
                spec = resolve_model(self.bertscore_model, self.bertscore_layer)
                self.bertscore_description = spec.describe()
                self._bertscores = BertScorer(spec).score(self.predictions, self.references)
            except BertScoreUnavailable as exc:
                self._bertscores = exc
            self._bertscore_seconds = time.perf_counter() - started
        if isinstance(self._bertscores, BertScoreUnavailable):
            raise MetricUnavailable(str(self._bertscores))
        scores = self._bertscores
        return {"BERTScore-P": _mean(scores.precision), "BERTScore-R": _mean(scores.recall),
                "BERTScore-F1": _mean(scores.f1)}

    def report(self, protocol_name: str, families: set[str] | None = None) -> ScoreReport:
        """Score under one protocol; families not in `families` are shown as not requested."""
        if protocol_name not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol_name!r}; choose from "
                             f"{', '.join(PROTOCOLS)}")
        protocol = PROTOCOLS[protocol_name]
        families = set(FAMILIES) if families is None else families
        compute: dict[str, Callable[[str], dict[str, float]]] = {
            "bleu": self.bleu, "meteor": self.meteor, "rouge": self.rouge,
            "bertscore": self.bertscore}
        values: dict[str, float] = {}
        reasons: dict[str, str] = {}
        seconds: dict[str, float] = {}
        for family in FAMILIES:
            if family not in families:
                reasons[family] = "not requested"
                continue
            started = time.perf_counter()
            try:
                values.update(compute[family](protocol_name))
            except MetricUnavailable as exc:
                reasons[family] = str(exc)
            # BERTScore runs once per job and is shared: show the cost of that one run.
            seconds[family] = (self._bertscore_seconds if family == "bertscore"
                               else time.perf_counter() - started)
        results = [MetricResult(d.name, d.family, d.definition, d.headline,
                                value=values.get(d.name),
                                missing=None if d.name in values else reasons.get(d.family))
                   for d in protocol.metrics]
        return ScoreReport(protocol.name, protocol.description, len(self.predictions),
                           self.bertscore_description if "bertscore" in families else None,
                           results, seconds)


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("nothing to score: no (prediction, reference) pairs")
    for i, text in enumerate(list(predictions) + list(references)):
        if not isinstance(text, str):
            raise TypeError(f"item {i % len(predictions)}: expected text, got "
                            f"{type(text).__name__}")


def score_protocols(predictions: Sequence[str], references: Sequence[str],
                    protocols: Sequence[str], *, bertscore_model: str = "roberta-large",
                    bertscore_layer: int | None = None,
                    metrics: Iterable[str] | str | None = None) -> list[ScoreReport]:
    """Score under several protocols, sharing the BERTScore run between them."""
    _check_pairs(predictions, references)
    unknown = [name for name in protocols if name not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocol {unknown[0]!r}; choose from {', '.join(PROTOCOLS)}")
    families = parse_metric_families(metrics)
    job = Scoring(list(predictions), list(references), bertscore_model, bertscore_layer)
    return [job.report(name, families) for name in protocols]


def score_texts(predictions: list[str], references: list[str], protocol: str, *,
                bertscore_model: str = "roberta-large", bertscore_layer: int | None = None,
                metrics: set[str] | None = None) -> ScoreReport:
    """Score (prediction, reference) pairs under one named protocol ("musilingo" or
    "lp-musiccaps"). `metrics` picks families (bleu, meteor, rouge, bertscore; default all);
    `bertscore_model` is "roberta-large", "minilm", a local folder or a hub id."""
    return score_protocols(predictions, references, [protocol], bertscore_model=bertscore_model,
                           bertscore_layer=bertscore_layer, metrics=metrics)[0]
