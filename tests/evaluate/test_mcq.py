"""MuChoMusic's multiple-choice rule, pinned on tricky replies (quirks included: they are what
published numbers were computed with)."""
from __future__ import annotations

import pytest

from musilingo.data.items import mcq_prompt, shuffled_options
from musilingo.evaluate.mcq import mcq_scores, read_choice

OPTIONS = ["a violin", "Drums", "a choir", "an electric guitar"]


@pytest.mark.parametrize("reply, choice", [
    ("B", 1),
    ("(C) a choir", 2),
    ("The correct answer is: D", 3),                  # the phrase is cut off first
    ("Question: ... The correct answer is: (A)", 0),
    ("Answer: D", -1),       # 'A' of "Answer" and 'D': two letters, no option text -> unanswered
    ("A piano, I think", 0),  # one capital letter among A-D anywhere counts as that letter
    ("I would say B or C", -1),
    ("i would say b", -1),   # lower-case letters are not letters here
    ("definitely drums here", 1),                     # no letter: the option's text, lower-cased
    ("the choir and the drums", 1),                   # the first option (in order) contained
    ("", -1),
    ("B B B", 1),                                     # one distinct letter
])
def test_the_benchmarks_reading_rule(reply, choice):
    assert read_choice(reply, OPTIONS) == choice


def test_prompt_layout_and_seeded_shuffle():
    assert mcq_prompt("What leads?", ["x", "y", "z", "w"]) == \
        "Question: What leads?\n Options: (A) x (B) y (C) z (D) w \n The correct answer is: "
    a = shuffled_options("right", ["d1", "d2", "d3"], seed=3, key="q1")
    assert a == shuffled_options("right", ["d1", "d2", "d3"], seed=3, key="q1")
    options, correct = a
    assert sorted(options) == ["d1", "d2", "d3", "right"] and options[correct] == "right"
    seen = {shuffled_options("right", ["d1", "d2", "d3"], seed=3, key=f"q{i}")[1]
            for i in range(40)}
    assert seen == {0, 1, 2, 3}                       # the right answer is not always first


def test_accuracy_counts_unanswered_as_wrong_and_reports_the_answered_rate():
    s = mcq_scores([0, 2, -1, 3], [0, 1, 2, 3])
    assert (s["accuracy"], s["answered_rate"], s["correct"], s["chance"]) == (0.5, 0.75, 2, 0.25)
    with pytest.raises(ValueError):
        mcq_scores([], [])
