"""`musilingo score --predictions` end to end on a small file."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from musilingo.errors import UserError
from musilingo.evaluate import score_texts
from musilingo.score.command import score

PREDICTIONS = ["a soft piano melody plays", "loud rock with electric guitars", "a man sings"]
REFERENCES = ["a gentle piano melody", "a rock song with distorted electric guitars",
              "a woman sings softly"]


@pytest.fixture()
def predictions_file(tmp_path):
    path = tmp_path / "answers.json"
    path.write_text(json.dumps([{"response": p, "correct_answer": r}
                                for p, r in zip(PREDICTIONS, REFERENCES)]))
    return path


def test_score_command_prints_table_and_writes_files(predictions_file, tmp_path):
    out = tmp_path / "scores"
    result = CliRunner().invoke(score, ["--predictions", str(predictions_file), "--protocol",
                                        "both", "--metrics", "bleu,rouge", "--out", str(out),
                                        "--percent"])
    assert result.exit_code == 0, result.output
    assert "### Protocol `musilingo`: 3 items (x100)" in result.output
    lp_headline = "| BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | METEOR | ROUGE-L | BERTScore-F1 |"
    assert lp_headline in result.output
    saved = json.loads((out / "scores.json").read_text())
    assert [r["protocol"] for r in saved["reports"]] == ["musilingo", "lp-musiccaps"]
    expected = score_texts(PREDICTIONS, REFERENCES, "lp-musiccaps", metrics={"bleu", "rouge"})
    assert saved["reports"][1]["values"]["BLEU-1"] == expected.value("BLEU-1")
    assert saved["reports"][1]["missing"]["METEOR"] == "not requested"
    assert (out / "scores.md").read_text().startswith(f"# Scores of `{predictions_file}`")


def test_score_takes_a_recipe_flags_and_overrides(predictions_file, tmp_path):
    """score is configured like extract and train: recipe < flags < key=value."""
    recipe = tmp_path / "score.yaml"
    recipe.write_text(f"predictions: {predictions_file}\nprotocol: both\nmetrics: bleu,rouge\n")
    out = tmp_path / "scores"
    result = CliRunner().invoke(score, ["--config", str(recipe), "--protocol", "lp-musiccaps",
                                        "protocol=musilingo", f"out={out}", "percent=true"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "scores.json").read_text())
    assert [r["protocol"] for r in saved["reports"]] == ["musilingo"]
    assert saved["config"] == {"protocol": "musilingo", "bertscore_model": "roberta-large",
                               "bertscore_layer": None, "metrics": "bleu,rouge", "percent": True}
    bad = CliRunner().invoke(score, ["--config", str(recipe), "protcol=musilingo"])
    assert isinstance(bad.exception, UserError) and "unknown config key(s) protcol" in \
        str(bad.exception)


def test_score_command_bad_file_raises_user_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"response": "a", "correct_answer": "b"}, {"response": "c"}]')
    result = CliRunner().invoke(score, ["--predictions", str(path)])
    assert isinstance(result.exception, UserError)
    assert "broken.json: item 1: field 'correct_answer' is missing" in str(result.exception)
