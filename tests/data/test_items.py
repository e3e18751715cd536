"""Items from Records in one place: ids, the caption question, four-option layout, and that
training and scoring ask a four-option question in the same order."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from musilingo.data import read_dataset
from musilingo.data.items import (CAPTION_QUESTION, WORKED_EXAMPLE, MCQLayout, lettered,
                                  mcq_prompt, occurrences,
                                  record_item, record_items, shuffled_options)
from musilingo.data.records import Record
from musilingo.errors import UserError


def _record(clip: str, texts: dict, meta: dict | None = None, row: int = 1) -> Record:
    return Record(clip, Path(f"/audio/{clip}.wav"), "train", texts, f"file.csv:{row}",
                  meta or {})


def test_ids_count_per_clip_and_survive_dropped_records():
    records = [_record("a", {"caption": "one"}), _record("b", {"caption": "two"}, row=2),
               _record("a", {"caption": "three"}, row=3)]
    items = record_items(records)
    assert [it.id for it in items] == ["a:0", "b:0", "a:1"]
    # A record left out (no audio, no features) keeps its place in the count.
    assert [it.id for it in record_items(records, keep=lambda r: r.clip_id == "a")] == \
        ["a:0", "a:1"]
    assert items[0].meta["source"] == "file.csv:1" and items[0].audio_path == "/audio/a.wav"


def test_the_caption_question_per_stage_and_questions_refused_in_stage_1():
    caption = _record("a", {"caption": "c"})
    assert record_item(caption, 0).question == CAPTION_QUESTION            # stage 2, scoring
    assert record_item(caption, 0, question="Describe it.").question == "Describe it."
    assert record_item(caption, 0, question=None).question is None       # the stage-1 template
    qa = _record("a", {"question": "q", "answer": "a"})
    assert (record_item(qa, 0).question, record_item(qa, 0).answer) == ("q", "a")
    with pytest.raises(UserError, match="file.csv:1: stage pretrain trains on captions"):
        record_item(qa, 0, question=None)
    with pytest.raises(UserError, match="no caption or answer"):
        record_item(_record("a", {}), 0)


def test_four_option_items_train_on_the_text_and_score_against_the_letter():
    mcq = _record("c", {"question": "q", "answer": "soft"},
                  {"distractors": ["loud", "quiet", "gentle"], "genre": "jazz"})
    trained = record_item(mcq, 2)
    options, right = shuffled_options("soft", ["loud", "quiet", "gentle"], 0, key="c:2")
    assert trained.question == mcq_prompt("q", options)
    assert trained.question.startswith("Question: q\n Options: (A) ")
    assert trained.answer == "soft" and trained.meta["options"] == options
    assert trained.meta["correct"] == right and trained.meta["genre"] == "jazz"
    assert "distractors" not in trained.meta
    scored = record_item(mcq, 2, mcq_answer=lettered)
    assert scored.answer == f"({'ABCD'[right]}) soft" and scored.question == trained.question
    # Another seed or another item gives its own order, reproducibly.
    orders = {tuple(record_item(mcq, k, mcq=MCQLayout(0, seed=s)).meta["options"])
              for k in range(4) for s in range(4)}
    assert len(orders) > 4
    # The published layout: the worked example first; a distractor subset keeps the types'
    # order, and the recorded order says which original option each shown one is.
    one_shot = record_item(mcq, 2, mcq=MCQLayout(), mcq_answer=lettered)
    assert one_shot.question == WORKED_EXAMPLE + "\n " + trained.question
    two = record_item(mcq, 2, mcq=MCQLayout(1, ("correct_but_unrelated",)))
    assert sorted(two.meta["options"]) == ["quiet", "soft"]
    assert [["soft", "quiet"][i] for i in two.meta["answer_order"]] == two.meta["options"]
    assert two.meta["option_types"] == ["correct", "correct_but_unrelated"]
    assert "(C)" not in two.question.split("Question: q")[1]
    with pytest.raises(UserError, match="shots=2"):
        MCQLayout(2)
    with pytest.raises(UserError, match="distractors=nearby"):
        MCQLayout.parse(1, "nearby", 0)
    assert MCQLayout.parse(0, "incorrect_and_unrelated,incorrect_but_related", 3).distractors \
        == ("incorrect_but_related", "incorrect_and_unrelated")


def test_training_and_scoring_ask_each_four_option_question_alike(tmp_path):
    """The promise train and score used to keep by a docstring: the same question, options in
    the same order, for every id, because both make their items here."""
    from musilingo.score.run import dataset_items
    from musilingo.train.data import build_trainset

    path = tmp_path / "mcq.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["question", "correct_answer", "distractor_1_answer", "distractor_2_answer",
                    "distractor_3_answer", "audio_path", "split"])
        for i in range(6):
            for q in range(2):
                w.writerow([f"What is {q}?", f"right {i}", f"w{i}a", f"w{i}b", f"w{i}c",
                            f"clip{i}.wav", "test"])
    scored, _ = dataset_items("muchomusic", path, None, available=lambda r: True,
                              mcq=MCQLayout(shots=0))
    published, _ = dataset_items("muchomusic", path, None, available=lambda r: True)

    class AllFeatures:  # a source that has every clip (no audio needed to make items)
        online = False

        def has(self, key):
            return True

    spec = type("Spec", (), dict(name="muchomusic", annotations=str(path), audio_root=None,
                                 split="test", caption_field="caption_writing",
                                 question=None))()
    trained = build_trainset(spec, "instruct", AllFeatures(), 0.0).examples
    assert [it.id for it in trained] == [it.id for it in scored] and len(trained) == 12
    assert [it.question for it in trained] == [it.question for it in scored]
    assert all(s.answer.endswith(") " + t.answer) for s, t in zip(scored, trained))
    # Scoring's default is the published 1-shot layout: the same question after the example.
    assert [it.question for it in published] == [WORKED_EXAMPLE + "\n " + it.question
                                                 for it in trained]


def test_occurrences_match_the_record_walk():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 7, size=200)
    expect, seen = [], {}
    for c in codes:
        seen[c] = seen.get(c, -1) + 1
        expect.append(seen[c])
    assert occurrences(codes).tolist() == expect


def test_the_demo_sets_questions_and_captions(tmp_path):
    from musilingo.synth import generate

    data = generate(tmp_path / "set", n_train=4, n_test=4, seconds=1.0, workers=1)
    records = read_dataset("synth", data, None, split="test").records
    items = record_items(records)
    assert {it.id.rsplit(":", 1)[1] for it in items} == {str(k) for k in range(7)}
    assert all("attribute" in it.meta and "value" in it.meta for it in items)
