"""Caption attribute accuracy (a caption is scored on every attribute of its clip) and the
four-option questions' accuracy per kind."""
from __future__ import annotations

import pytest

from musilingo.demo.evaluation import caption_accuracy, mcq_accuracy
from musilingo.infer.items import Item

CLIP = {"instrument": "piano", "percussion": "drums", "tempo": "fast", "key": "D",
        "mode": "minor", "register": "low", "loudness": "soft"}


def _item():
    return Item(id="c:caption", clip_id="c", question="Please give a caption to the music.",
                answer="", meta={"attributes": CLIP})


def test_a_caption_naming_every_value_scores_one():
    text = ("A soft, brooding piece: a piano plays arpeggios in a low register at a quick tempo, "
            "in D minor, backed by drums.")
    acc = caption_accuracy([_item()], [text])
    assert acc["per_attribute"] == {a: 1.0 for a in sorted(CLIP)}
    assert acc["mean"] == 1.0


def test_wrong_missing_and_hedged_values_score_zero():
    # wrong instrument, no tempo, two registers named; the rest right
    text = "A soft guitar plays in a low and high register, in D minor, with drums."
    per = caption_accuracy([_item()], [text])["per_attribute"]
    assert per["instrument"] == 0.0 and per["tempo"] == 0.0 and per["register"] == 0.0
    assert per["loudness"] == per["key"] == per["mode"] == per["percussion"] == 1.0
    assert caption_accuracy([_item(), _item()], [text, text])["mean"] == pytest.approx(4 / 7)


def test_four_option_accuracy_reads_replies_by_the_benchmarks_rule():
    options = ["slow, with drums", "fast, with drums", "slow, without drums", "medium tempo, with drums"]
    items = [Item(id=f"c{i}:{i}", clip_id=f"c{i}", question="Question: ...", answer="",
                  meta={"options": options, "correct": 2, "kind": kind})
             for i, kind in enumerate(["rhythm", "rhythm", "rhythm", "dynamics"])]
    replies = ["slow, without drums",      # the right option's text
               "(C)",                       # its letter
               "A piano.",                  # the letter clause fires: A, wrong
               "something else entirely"]   # unanswered: wrong
    acc = mcq_accuracy(items, replies)
    assert acc["accuracy"] == 0.5 and acc["answered_rate"] == 0.75 and acc["chance"] == 0.25
    assert acc["per_kind"] == {"dynamics": 0.0, "rhythm": pytest.approx(2 / 3)}
