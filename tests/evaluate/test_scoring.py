"""score_and_report's refusals, and the HF `evaluate` module offline, equal to the direct API."""
from __future__ import annotations

import pytest

from musilingo.errors import UserError
from musilingo.evaluate import score_texts
from musilingo.evaluate.scoring import score_and_report

PREDICTIONS = ["a soft piano melody plays", "loud rock with electric guitars", "a man sings"]
REFERENCES = ["a gentle piano melody", "a rock song with distorted electric guitars",
              "a woman sings softly"]


def test_score_and_report_refuses_bad_options():
    with pytest.raises(UserError, match="--metrics: unknown metric 'cider'"):
        score_and_report(["a"], ["a"], "musilingo", metrics="bleu,cider")
    with pytest.raises(UserError, match="nothing to score"):
        score_and_report([], [], "musilingo")


def test_evaluate_module_loads_offline_and_matches_direct_api(nltk_ready):
    import evaluate

    from musilingo.evaluate.metric import SCRIPT

    metric = evaluate.load(str(SCRIPT))
    for protocol in ("musilingo", "lp-musiccaps"):
        got = metric.compute(predictions=PREDICTIONS, references=REFERENCES, protocol=protocol,
                             metrics="bleu,meteor,rouge")
        direct = score_texts(PREDICTIONS, REFERENCES, protocol,
                             metrics={"bleu", "meteor", "rouge"})
        assert got["protocol"] == protocol and got["n_items"] == 3
        for result in direct.results:
            assert got[result.name] == result.value, (protocol, result.name)
        assert got["METEOR"] is not None and got["BERTScore-F1"] is None
        assert got["missing"]["BERTScore-F1"] == "not requested"


def test_evaluate_module_path_works_from_any_directory(nltk_ready, tmp_path, monkeypatch):
    import evaluate

    from musilingo.evaluate.metric import module_path

    monkeypatch.chdir(tmp_path)   # not the repository root
    metric = evaluate.load(module_path())
    got = metric.compute(predictions=PREDICTIONS, references=REFERENCES, protocol="lp-musiccaps",
                         metrics="bleu,rouge")
    assert got["n_items"] == 3 and got["BLEU-1"] is not None
