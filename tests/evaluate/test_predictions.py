"""Reading predictions files: field detection on real outputs, formats, malformed input."""
from __future__ import annotations

import json

import pytest

from musilingo.errors import UserError
from musilingo.evaluate.predictions import load_predictions

CMI = "outputs/cmi-bench_captioning/salmonn/salmonn_MusicCaps.json"
MUSCAPS = "outputs/muscaps_musiccaps_captioning_eval/inference_results.json"


def test_cmi_bench_list_uses_response_and_correct_answer(shared_data):
    pairs = load_predictions(shared_data / CMI)
    assert (pairs.prediction_field, pairs.reference_field) == ("response", "correct_answer")
    assert len(pairs) == 2813
    raw = json.loads((shared_data / CMI).read_text())
    assert pairs.predictions[5] == raw[5]["response"]
    assert pairs.references[5] == raw[5]["correct_answer"]


def test_muscaps_object_of_objects_uses_predictions_and_true_captions(shared_data):
    pairs = load_predictions(shared_data / MUSCAPS)
    assert (pairs.prediction_field, pairs.reference_field) == ("predictions", "true_captions")
    assert len(pairs) == 2656 and pairs.ids[:2] == ["0", "1"]
    raw = json.loads((shared_data / MUSCAPS).read_text())
    assert pairs.predictions[0] == raw["0"]["predictions"]  # leading space kept: scored as is


def test_jsonl_csv_and_parallel_lists(tmp_path):
    rows = [{"pred": "a piano", "ref": "a soft piano"}, {"pred": "drums", "ref": "loud drums"}]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "p.csv").write_text('prediction,ground_truth\n"a piano, soft",a soft piano\n'
                                    "drums,loud drums\n")
    (tmp_path / "p.json").write_text(json.dumps({"predictions": ["a", "b"],
                                                 "references": [["x"], ["y"]]}))
    jsonl = load_predictions(tmp_path / "p.jsonl")
    assert (jsonl.predictions, jsonl.references) == (["a piano", "drums"],
                                                     ["a soft piano", "loud drums"])
    csv_pairs = load_predictions(tmp_path / "p.csv")
    assert csv_pairs.predictions == ["a piano, soft", "drums"]
    assert csv_pairs.reference_field == "ground_truth"
    parallel = load_predictions(tmp_path / "p.json")
    assert (parallel.predictions, parallel.references) == (["a", "b"], ["x", "y"])


def test_explicit_fields_override_detection(tmp_path):
    path = tmp_path / "qa.json"
    path.write_text(json.dumps([{"question": "q", "answer": "gold", "mine": "guess"}]))
    pairs = load_predictions(path, prediction_field="mine", reference_field="answer")
    assert (pairs.predictions, pairs.references) == (["guess"], ["gold"])


@pytest.mark.parametrize("name, content, expected", [
    ("bad.json", '[{"prediction": "a", "ground_truth": "b"},\n {"prediction": "c" "x"}]',
     r"bad\.json: not valid JSON \(line 2"),
    ("bad.jsonl", '{"prediction": "a", "ground_truth": "b"}\n{oops}\n',
     r"bad\.jsonl: line 2: not valid JSON"),
    ("row.json", '[{"prediction": "a", "ground_truth": "b"}, {"prediction": "c"}]',
     r"row\.json: item 1: field 'ground_truth' is missing"),
    ("num.json", '{"k1": {"prediction": "a", "ground_truth": "b"}, '
                 '"k2": {"prediction": 3, "ground_truth": "b"}}',
     r"num\.json: item 'k2': field 'prediction' is int, not text"),
    ("cell.csv", "prediction,ground_truth\na,b\nc\n",
     r"cell\.csv: row 3: field 'ground_truth' is empty"),
    ("wide.csv", "prediction,ground_truth\na,b,c\n", r"wide\.csv: row 2: more cells"),
    ("nofield.json", '[{"question": "q", "other": "x"}]',
     r"nofield\.json: no prediction field found among question, other; pass "
     r"--prediction-field"),
    ("multi.json", '[{"prediction": "a", "references": ["b", "c"]}]',
     r"multi\.json: item 0: field 'references' holds 2 texts"),
    ("empty.json", "  \n", r"empty\.json: the file is empty"),
    ("scalar.json", "[1, 2]", r"scalar\.json: item 0: is a JSON int"),
])
def test_malformed_files_name_file_and_row(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UserError, match=expected) as info:
        load_predictions(path)
    assert "\n" not in str(info.value)
