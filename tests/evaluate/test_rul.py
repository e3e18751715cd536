"""RUL-MuChoMusic: the release's prompt and answer extraction pinned, the leave-one-out vote,
and its data file read (bad rows named)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from musilingo.data import read_dataset
from musilingo.data.items import record_item, rul_items, rul_prompt
from musilingo.data.records import Record
from musilingo.errors import UserError
from musilingo.evaluate.rul import read_rul_letter, rul_scores, vote

# One question of the release (id 1862), as its file gives it.
Q = {"question": "Which instrument plays the primary melody in the piece?",
     "caption": "The ballad song features a mellow female vocal ...",
     "correct_answer": "Mellow organ keys",
     "distractors": ["Lyrical cello melody", "Lyrical clarinet solo", "Serene oboe melody",
                     "Tender violin solo"], "PI": 0.98}
OPTIONS = ["Serene oboe melody", "Mellow organ keys", "Lyrical cello melody",
           "Tender violin solo", "Lyrical clarinet solo"]


def test_the_prompt_is_the_releases_for_five_and_four_options():
    assert rul_prompt(Q["question"], OPTIONS) == (
        "Provide your best guess of this question. Think step by step.\n\nQuestion: Which "
        "instrument plays the primary melody in the piece?\n\nOptions: (A) Serene oboe melody "
        "(B) Mellow organ keys (C) Lyrical cello melody (D) Tender violin solo (E) Lyrical "
        "clarinet solo\n\nWrite out your guess in the format of [[Letter]], such as [[A]], "
        "[[B]], [[C]], [[D]] or [[E]].")
    assert rul_prompt("Q?", OPTIONS[:4]).endswith(
        "(D) Tender violin solo\n\nWrite out your guess in the format of [[Letter]], such as "
        "[[A]], [[B]], [[C]], [[D]].")


@pytest.mark.parametrize("reply, letter", [
    ("[[B]]", "B"),
    ("First [[A]], no wait, [[C]]", "C"),                # the last bracketed letter
    ("The answer is d.", "D"),                           # the phrase, any case
    ("I choose B and then I select E", "E"),             # the last phrase match
    ("Maybe option C", "C"),
    ("(A) or (D)", "A"),                                 # the first letter written as (X)
    ("It must be the mellow organ keys.", "B"),          # an option's text, lower-cased
    ("A cello? No idea.", ""),                           # a capital A alone is not a choice
    ("", ""),
])
def test_the_releases_answer_extraction(reply, letter):
    assert read_rul_letter(reply, OPTIONS) == letter


def test_a_letter_the_pass_does_not_show_is_no_answer():
    assert read_rul_letter("[[E]]", OPTIONS[:4]) == ""
    assert read_rul_letter("[[E]]", OPTIONS) == "E"


def test_the_vote_takes_the_most_chosen_text_and_ties_go_to_the_first():
    assert vote(["x", "y", "y", ""]) == "y"
    assert vote(["y", "x", "x", "y"]) == "y"          # tie: the first chosen
    assert vote(["", ""]) == ""


def _record(qid="1862") -> Record:
    return Record(qid, Path(f"/a/{qid}.mp3"), "test",
                  {"question": Q["question"], "answer": Q["correct_answer"]}, f"rul.json:{qid}",
                  {"rul_distractors": Q["distractors"], "dataset": "rul-muchomusic"})


def test_leave_one_out_items_and_scores():
    items = rul_items([_record(), _record("7")], seed=3)
    assert [it.id for it in items[:4]] == [f"1862:0/{p}" for p in range(4)]
    for p, it in enumerate(items[:4]):
        assert len(it.meta["options"]) == 4 and Q["distractors"][p] not in it.meta["options"]
        assert it.meta["excluded"] == Q["distractors"][p] and it.meta["question"] == "1862:0"
        assert it.meta["options"][it.meta["correct"]] == Q["correct_answer"]
        assert it.question == rul_prompt(Q["question"], it.meta["options"])
    assert rul_items([_record()], seed=3)[0].meta["options"] == items[0].meta["options"]
    letter = "ABCD"
    right = [f"[[{letter[it.meta['correct']]}]]" for it in items[:4]]
    wrong = f"[[{letter[(items[2].meta['correct'] + 1) % 4]}]]"
    # 1862: two passes right, one wrong, one unanswered -> the vote is right.
    # 7: clarinet, organ, organ, clarinet (by text) -> a tie, the first chosen (clarinet) wins.
    replies = [right[0], right[1], wrong, "hmm", "lyrical clarinet solo", "Mellow organ keys",
               "mellow organ keys!", "Lyrical clarinet solo"]
    s = rul_scores(replies, items)
    assert s["votes"] == {"1862:0": Q["correct_answer"], "7:0": "Lyrical clarinet solo"}
    assert (s["accuracy"], s["answered_rate"]) == (0.5, 1.0)
    assert s["pass_accuracy"] == 4 / 8 and s["questions"] == 2 and s["chance"] == 0.25
    # A pass that names the distractor it does not show does not vote.
    s = rul_scores(replies[:4] + ["Lyrical cello melody"] + replies[5:], items)
    assert s["votes"]["7:0"] == "Mellow organ keys"     # pass 0 shows no cello: 2 organ, 1 clarinet
    every = rul_items([_record()], protocol="all-options")
    assert len(every) == 1 and len(every[0].meta["options"]) == 5 and every[0].id == "1862:0/all"
    with pytest.raises(UserError, match="score --dataset rul-muchomusic"):
        record_item(_record(), 0)


def test_the_data_file_is_read_and_bad_rows_named(tmp_path):
    path = tmp_path / "RUL-MuchoMusic.json"
    (tmp_path / "1862.mp3").write_bytes(b"")
    path.write_text(json.dumps({"1862": Q, "7": {**Q, "correct_answer": "Effect"}}))
    read = read_dataset("rul-muchomusic", path, None)
    assert [r.clip_id for r in read.records] == ["1862"] and [r.clip_id for r in read.missing] \
        == ["7"]
    assert read.records[0].meta["pi"] == 0.98 and read.records[0].split == "test"
    for bad, message in ((dict(Q, distractors=Q["distractors"][:3]), "not a list of 4 texts"),
                         (dict(Q, distractors=[Q["correct_answer"]] + Q["distractors"][1:]),
                          "not five different options"),
                         (dict(Q, question=3), "'question' is a int")):
        path.write_text(json.dumps({"5": bad}))
        with pytest.raises(UserError, match=rf"{path}:question 5: .*{message}"):
            read_dataset("rul-muchomusic", path, None)
    path.write_text(json.dumps([Q]))
    with pytest.raises(UserError, match="keyed by question id"):
        read_dataset("rul-muchomusic", path, None)
