"""Re-scoring published outputs reproduces published numbers (lp-musiccaps protocol).

The captioning_eval repository published MusCaps' 2,656 MusicCaps captions together with their
HF-evaluate scores: BLEU-1..4 0.29/0.15/0.09/0.06, METEOR 0.21, ROUGE-L 0.22 (BERTScore 0.86
needs roberta-large, which cannot be loaded offline, so it is not checked here).
"""
from __future__ import annotations

import json

import pytest

from musilingo.evaluate import score_texts
from musilingo.evaluate.ngram_metrics import corpus_bleu_13a

MUSCAPS = "outputs/muscaps_musiccaps_captioning_eval/inference_results.json"
PUBLISHED = {"BLEU-1": 0.29, "BLEU-2": 0.15, "BLEU-3": 0.09, "BLEU-4": 0.06, "METEOR": 0.21,
             "ROUGE-L": 0.22}


def _muscaps(shared_data):
    items = json.loads((shared_data / MUSCAPS).read_text())
    return ([v["predictions"] for v in items.values()],
            [v["true_captions"] for v in items.values()])


@pytest.fixture(scope="module")
def muscaps_report(shared_data, nltk_ready):
    predictions, references = _muscaps(shared_data)
    return score_texts(predictions, references, "lp-musiccaps", metrics={"bleu", "meteor", "rouge"})


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_muscaps_lp_musiccaps_reproduces_published_scores(muscaps_report, name):
    assert muscaps_report.n_items == 2656
    assert round(muscaps_report.value(name), 2) == PUBLISHED[name]


def test_muscaps_bleu_matches_recomputed_four_decimals(muscaps_report):
    # SOURCES.md: HF-style corpus BLEU-1..4 recomputed = 0.2882/0.1513/0.0893/0.0598.
    got = [round(muscaps_report.value(f"BLEU-{n}"), 4) for n in range(1, 5)]
    assert got == [0.2882, 0.1513, 0.0893, 0.0598]
    assert muscaps_report.value("B-U") == pytest.approx(sum(got) / 4, abs=1e-4)


def test_muscaps_report_keeps_bertscore_as_not_requested(muscaps_report):
    missing = muscaps_report.missing
    assert set(missing) == {"BERTScore-P", "BERTScore-R", "BERTScore-F1"}
    assert all(reason == "not requested" for reason in missing.values())
    assert [r.name for r in muscaps_report.headline] == [
        "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "BERTScore-F1"]
    assert set(muscaps_report.seconds) == {"bleu", "meteor", "rouge"}


def test_corpus_bleu_agrees_with_sacrebleu_on_cmi_outputs(shared_data):
    # An independent implementation of the same definition: sacrebleu, 13a, no smoothing.
    import sacrebleu

    items = json.loads((shared_data / "outputs/cmi-bench_captioning/qwen2/qwen2_MusicCaps.json")
                       .read_text())[:800]
    predictions = [i["response"] for i in items]
    references = [i["correct_answer"] for i in items]
    ours = corpus_bleu_13a(references, predictions)
    for n in range(1, 5):
        bleu = sacrebleu.metrics.BLEU(max_ngram_order=n, smooth_method="none", tokenize="13a")
        theirs = bleu.corpus_score(predictions, [references]).score / 100
        assert ours[n] == pytest.approx(theirs, abs=1e-12), n
