"""The `musilingo` protocol agrees with hand-computed cases of the reference scripts' quirks."""
from __future__ import annotations

import math

import pytest

from musilingo.evaluate import score_protocols, score_texts
from musilingo.evaluate.ngram_metrics import char_sentence_bleu


def test_bleu_is_on_character_ngrams_computed_by_hand():
    # "the cat" vs "the hat": 7 characters each, so the brevity penalty is 1.
    # 1-grams of the candidate t,h,e,_,c,a,t: all but "c" are in the reference -> 6/7.
    # 2-grams th,he,e_,_c,ca,at vs th,he,e_,_h,ha,at -> 4/6.
    # 3-grams the,he_,e_c,_ca,cat vs the,he_,e_h,_ha,hat -> 2/5.
    # 4-grams the_,he_c,e_ca,_cat vs the_,he_h,e_ha,_hat -> 1/4.
    # "the ca" vs "the cat": every character matches but it is 1 shorter: BP = exp(1 - 7/6).
    report = score_texts(["the cat", "the ca"], ["the hat", "the cat"], "musilingo",
                         metrics={"bleu"})
    bp = math.exp(1 - 7 / 6)
    first = [6 / 7, 4 / 6, 2 / 5, 1 / 4]
    for n in range(1, 5):
        assert report.value(f"BLEU-{n}") == pytest.approx((first[n - 1] + bp) / 2, abs=1e-12)
    cumulative = (6 / 7 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25
    assert report.value("BLEU") == pytest.approx((cumulative + bp) / 2, abs=1e-12)
    assert report.value("B-U") == pytest.approx((sum(first) / 4 + bp) / 2, abs=1e-12)


def test_bleu_without_smoothing_collapses_when_an_order_has_no_match():
    # "ab" vs "ba": 1-grams match fully (2/2) but no 2-gram does. The scripts' cumulative BLEU
    # and BLEU-2 are then ~0 (NLTK substitutes float_info.min for a zero precision), while
    # BLEU-1 stays 1.
    bleu1, bleu2, _, _, cumulative = char_sentence_bleu(["ba"], ["ab"])[0]
    assert bleu1 == 1.0
    assert 0 < bleu2 < 1e-300
    assert 0 < cumulative < 1e-50


def test_meteor_uses_wordpunct_tokens_computed_by_hand(nltk_ready):
    # identical 3 words: P = R = 1, one chunk: penalty 0.5 * (1/3)^3 -> 1 - 1/54.
    # "piano a" vs "a piano": P = R = 1 but 2 chunks for 2 matches: penalty 0.5 -> 0.5.
    # "piano,guitar": wordpunct splits the comma -> 3 tokens, 2 matches: P = 2/3, R = 1,
    # Fmean = PR / (0.9 P + 0.1 R) = (2/3) / 0.7, 2 chunks -> penalty 0.5 (a whitespace
    # tokeniser would see one token "piano,guitar" and score 0).
    predictions = ["a piano plays", "piano a", "piano,guitar"]
    references = ["a piano plays", "a piano", "piano guitar"]
    expected = [1 - 1 / 54, 0.5, (2 / 3) / 0.7 * 0.5]
    report = score_texts(predictions, references, "musilingo", metrics={"meteor"})
    assert report.value("METEOR") == pytest.approx(sum(expected) / 3, abs=1e-12)


def test_rouge_l_is_stemmed_recall_under_musilingo_and_plain_f_under_lp():
    # Stemmed: reference the/dog/were/play/loudli (5), candidate a/dog/play/loud: LCS = 2
    # -> recall 2/5. Without the stemmer no token matches -> F = 0.
    reports = score_protocols(["a dog plays loud"], ["the dogs were playing loudly"],
                              ["musilingo", "lp-musiccaps"], metrics={"rouge"})
    assert reports[0].value("ROUGE-L") == pytest.approx(2 / 5)
    assert reports[1].value("ROUGE-L") == 0.0
    # recall, not F: a short exact prefix has recall < 1 but precision 1
    short = score_texts(["a piano"], ["a piano and drums"], "musilingo", metrics={"rouge"})
    assert short.value("ROUGE-L") == pytest.approx(2 / 4)


def test_headline_and_rendering():
    report = score_texts(["the cat"], ["the hat"], "musilingo", metrics="bleu")
    assert [r.name for r in report.headline] == ["B-U", "METEOR", "ROUGE-L", "BERTScore-R"]
    assert report.missing["METEOR"] == "not requested"
    markdown = report.to_markdown(percent=True)
    assert "| B-U | METEOR | ROUGE-L | BERTScore-R |" in markdown
    assert f"| {report.value('B-U') * 100:.2f} | missing | missing | missing |" in markdown
    data = report.to_dict()
    assert data["protocol"] == "musilingo" and data["n_items"] == 1
    assert data["values"]["METEOR"] is None and "bleu" in data["seconds"]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        score_texts(["a", "b"], ["a"], "musilingo")
    with pytest.raises(ValueError, match="unknown protocol"):
        score_texts(["a"], ["a"], "coco")
    with pytest.raises(ValueError, match="unknown metric"):
        score_texts(["a"], ["a"], "musilingo", metrics={"cider"})


def test_meteor_without_wordnet_is_missing_with_the_reason(monkeypatch):
    from musilingo.evaluate import wordnet

    def no_data(prepare=True, target_root=None):
        return wordnet.NltkDataStatus(None, "NLTK WordNet not found; run the installer", None,
                                      "no punkt")

    monkeypatch.setattr(wordnet, "ensure_nltk_data", no_data)
    report = score_texts(["a piano"], ["a piano"], "musilingo", metrics={"meteor", "bleu"})
    assert report.value("METEOR") is None
    assert report.missing == {"METEOR": "NLTK WordNet not found; run the installer",
                              **{n: "not requested" for n in ("ROUGE-L", "BERTScore-P",
                                                              "BERTScore-R", "BERTScore-F1")}}
    assert report.value("B-U") is not None
