"""MuChoMusic's exchange file read and written, the breakdown on a hand-made file with known
results, plain multiple-choice files, and one-line errors for bad rows."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from musilingo.data.items import TRAINED, MCQLayout, lettered, record_items
from musilingo.data.records import Record
from musilingo.errors import UserError
from musilingo.evaluate.mcq import MCQQuestion, mcq_report
from musilingo.evaluate.mcq_exchange import read_mcq_file, write_exchange

# Six questions; original option 0 is right. Replies, by construction:
#   q0 right (knowledge Melody, genre Rock)       q1 wrong: chose distractor 1 (Melody, Rock)
#   q2 right (reasoning Mood, genre Jazz)          q3 unanswered (Mood + Melody, Jazz)
#   q4 wrong: chose distractor 3 (no category)     q5 right (Mood, Rock)
ROWS = [
    (["right0", "d1a", "d2a", "d3a"], [0, 1, 2, 3], "(A) right0", ["Melody"], [], "Rock"),
    (["d2b", "d1b", "right1", "d3b"], [2, 1, 0, 3], "B", ["Melody"], [], "Rock"),
    (["d1c", "right2", "d3c", "d2c"], [1, 0, 3, 2], "it is right2", [], ["Mood"], "Jazz"),
    (["d1d", "d2d", "d3d", "right3"], [1, 2, 3, 0], "no idea", ["Melody"], ["Mood"], "Jazz"),
    (["d3e", "right4", "d1e", "d2e"], [3, 0, 1, 2], "The correct answer is: (A)", [], [], ""),
    (["d1f", "d2f", "d3f", "right5"], [1, 2, 3, 0], "D", [], ["Mood"], "Rock"),
]


def hand_made(path: Path) -> Path:
    path.write_text(json.dumps([
        {"id": i, "prompt": f"Question: q{i}\n Options: ...", "answers": answers,
         "answer_orders": order, "dataset": "musiccaps", "genre": genre,
         "reasoning": reasoning, "knowledge": knowledge, "audio_path": f"a{i}.wav",
         "model_output": reply}
        for i, (answers, order, reply, knowledge, reasoning, genre) in enumerate(ROWS)]))
    return path


def test_a_hand_made_exchange_file_gives_the_known_breakdown(tmp_path):
    questions, replies, info = read_mcq_file(hand_made(tmp_path / "ex.json"))
    assert info == {"shape": "exchange", "prediction_field": "model_output", "n_options": 4}
    assert [q.correct for q in questions] == [0, 2, 1, 3, 1, 3]
    r = mcq_report(replies, questions, protocol="test", out_dir=tmp_path / "out")
    b = r["breakdown"]
    assert r["choices"] == [0, 1, 1, -1, 0, 3]
    assert b["overall"]["accuracy"] == pytest.approx(3 / 6)
    assert b["overall"]["answered_rate"] == pytest.approx(5 / 6)
    assert b["knowledge"]["overall"] == {"questions": 3, "accuracy": pytest.approx(1 / 3)}
    assert b["knowledge"]["categories"]["Melody"]["accuracy"] == pytest.approx(1 / 3)
    assert b["reasoning"]["overall"] == {"questions": 3, "accuracy": pytest.approx(2 / 3)}
    assert b["genre"] == {"Jazz": {"questions": 2, "accuracy": 0.5},
                          "Rock": {"questions": 3, "accuracy": pytest.approx(2 / 3)}}
    assert b["wrong_chose"] == {"incorrect_and_unrelated": 1, "incorrect_but_related": 1,
                                "unanswered": 1}
    written = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert written["breakdown"]["genre"]["Jazz"]["accuracy"] == 0.5
    assert "| Melody | 3 | 0.3333 |" in (tmp_path / "out" / "scores.md").read_text()


def test_score_predictions_reads_an_exchange_file_and_draws_the_categories(tmp_path):
    from musilingo.score.command import score

    out = tmp_path / "scores"
    result = CliRunner().invoke(score, ["--predictions", str(hand_made(tmp_path / "ex.json")),
                                        "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "| 0.5000 | 0.8333 | 0.25 |" in result.output
    assert (out / "categories.png").read_bytes()[:4] == b"\x89PNG"


def _records(n: int = 5) -> list[Record]:
    return [Record(f"c{i}", Path(f"/audio/c{i}.wav"), "test",
                   {"question": f"What is {i}?", "answer": f"right {i}"},
                   f"mcq.csv:{i + 2}", {"distractors": [f"w{i}a", f"w{i}b", f"w{i}c"],
                                        "genre": "Pop", "music_knowledge": ["Melody"],
                                        "music_reasoning": []})
            for i in range(n)]


@pytest.mark.parametrize("layout", [MCQLayout(), TRAINED,
                                    MCQLayout(1, ("incorrect_but_related",), seed=4)])
def test_written_exchange_files_read_back_to_the_same_scores(tmp_path, layout):
    """A round trip: what a scoring run writes is what the benchmark's script reads (its
    fields, its answer_orders convention), and reading it gives the run's own scores."""
    items = record_items(_records(), mcq=layout, mcq_answer=lettered)
    replies = ["A", "(B)", it_text := items[2].meta["options"][1], "", "C and D"]
    write_exchange(tmp_path / "muchomusic.json", items, replies)
    rows = json.loads((tmp_path / "muchomusic.json").read_text())
    assert set(rows[0]) >= {"prompt", "answers", "answer_orders", "model_output", "genre",
                            "reasoning", "knowledge", "id", "dataset", "audio_path"}
    for row, it in zip(rows, items):
        assert row["answers"][row["answer_orders"].index(0)] == it.meta["options"][
            it.meta["correct"]]
        assert row["prompt"] == it.question and row["knowledge"] == ["Melody"]
    questions, read_replies, _ = read_mcq_file(tmp_path / "muchomusic.json")
    assert read_replies == replies and it_text in read_replies
    direct = mcq_report(replies, [MCQQuestion.from_meta(it.meta) for it in items], protocol="x")
    again = mcq_report(read_replies, questions, protocol="x")
    assert again["choices"] == direct["choices"]
    assert again["breakdown"]["overall"] == direct["breakdown"]["overall"]
    assert again["breakdown"]["knowledge"] == direct["breakdown"]["knowledge"]


def test_a_plain_csv_with_options_and_the_right_one_is_scored(tmp_path):
    path = tmp_path / "plain.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["options", "correct", "response", "genre"])
        w.writerow([json.dumps(["x", "y", "z", "w"]), "B", "(B) y", "Pop"])
        w.writerow([json.dumps(["x", "y", "z", "w"]), "0", "w", "Pop"])
        w.writerow([json.dumps(["x", "y", "z", "w"]), "z", "C", "Jazz"])
    questions, replies, info = read_mcq_file(path)
    assert info["shape"] == "plain" and info["prediction_field"] == "response"
    assert [q.correct for q in questions] == [1, 0, 2]
    r = mcq_report(replies, questions, protocol="plain")
    assert r["choices"] == [1, 3, 2] and r["breakdown"]["genre"]["Jazz"]["accuracy"] == 1.0


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(answer_orders=[0, 1, 1, 3]), r"item 2: field 'answer_orders' is not a "
                                                     r"permutation of 0\.\.3"),
    (lambda r: r.update(answer_orders="[0, 1]"), "item 2: field 'answer_orders'"),
    (lambda r: r.update(model_output=["A"]), "item 2: field 'model_output' is list, not text"),
    (lambda r: r.pop("model_output"), "item 2: field 'model_output' is missing"),
    (lambda r: r.update(answers=["a", "b", "c"]), "item 2: field 'answers' holds 3 options "
                                                  "where this file's protocol has 4"),
    (lambda r: r.update(answers="abcd"), "item 2: field 'answers' is not a list"),
    (lambda r: r.update(knowledge=[1]), "item 2: field 'knowledge' is not a list of texts"),
    (lambda r: r.update(genre=3), "item 2: field 'genre' is not text"),
])
def test_bad_rows_are_refused_naming_the_file_row_and_field(tmp_path, change, message):
    path = hand_made(tmp_path / "ex.json")
    rows = json.loads(path.read_text())
    change(rows[2])
    path.write_text(json.dumps(rows))
    with pytest.raises(UserError, match=f"{path}: {message}"):
        read_mcq_file(path)
