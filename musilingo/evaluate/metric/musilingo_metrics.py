"""An HF `evaluate` module for musilingo's scoring protocols, loadable offline.

    import evaluate
    from musilingo.evaluate.metric import SCRIPT  # the path of this file
    metric = evaluate.load(str(SCRIPT))
    metric.compute(predictions=[...], references=[...], protocol="lp-musiccaps",
                   bertscore_model="minilm")

Why: code built around `evaluate` can score under the same named protocols as `musilingo score`
without network access (`evaluate.load("bleu")` fetches scripts from the hub; a local script
does not). Load it by the path of this .py file: `evaluate` resolves a folder `X` to `X/X.py`,
which this folder's name does not match. All the work is delegated to
`musilingo.evaluate.protocols.score_texts`, so the numbers are the same as the CLI's.

`compute` returns {"protocol", "n_items", "bertscore_model", "headline", <metric name>: value,
..., "missing": {name: reason}}; a metric that cannot run here has value None and a reason.
"""
import datasets
import evaluate

from musilingo.evaluate.protocols import PROTOCOLS, score_texts

_DESCRIPTION = """Captioning / music-QA metrics under a named protocol: "musilingo" (per-item
means as the MusiLingo, MU-LLaMA and CMI-Bench scripts compute them: character-level sentence
BLEU, METEOR on wordpunct tokens, stemmed ROUGE-L recall, BERTScore recall) or "lp-musiccaps"
(HF evaluate's corpus BLEU-1..4, METEOR, ROUGE-L F-measure, BERTScore F1)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated texts.
    references: list of reference texts, one per prediction.
    protocol: "musilingo" (default) or "lp-musiccaps".
    bertscore_model: "roberta-large" (default), "minilm" (offline MiniLM) or a local folder.
    bertscore_layer: BERTScore layer (default: the model's usual layer).
    metrics: comma list or list of families: bleu, meteor, rouge, bertscore (default all).
Returns:
    dict: protocol, n_items, bertscore_model, headline (names), one value per metric
    (None when missing) and missing (name -> reason).
"""

_CITATION = """@article{deng2023musilingo,
  title={MusiLingo: Bridging Music and Text with Pre-trained Language Models for Music
         Captioning and Query Response},
  author={Deng, Zihao and Ma, Yinghao and others},
  journal={arXiv preprint arXiv:2309.08730}, year={2023}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MusilingoMetrics(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}),
        )

    def _compute(self, predictions, references, protocol="musilingo",
                 bertscore_model="roberta-large", bertscore_layer=None, metrics=None):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        report = score_texts(list(predictions), list(references), protocol,
                             bertscore_model=bertscore_model, bertscore_layer=bertscore_layer,
                             metrics=metrics)
        values = {r.name: r.value for r in report.results}
        return {"protocol": report.protocol, "n_items": report.n_items,
                "bertscore_model": report.bertscore_model,
                "headline": [r.name for r in report.headline], **values,
                "missing": report.missing}
