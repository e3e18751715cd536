"""MuChoMusic's multiple-choice rule, pinned on tricky replies (quirks included: they are what
published numbers were computed with)."""
from __future__ import annotations

import pytest

from musilingo.data.items import mcq_prompt, shuffled_options
from musilingo.evaluate.mcq import MCQQuestion, breakdown, mcq_scores, read_choice

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


def test_the_benchmarks_worked_example_is_its_own_layout_and_comes_first():
    """The 1-shot prompt, character for character: the worked example of the benchmark's
    default configuration is itself its layout (with the question's trailing space) answered
    "A", and the asked question follows it after " \\n"-style joining."""
    from musilingo.data.items import WORKED_EXAMPLE

    example = mcq_prompt("What rhythm pattern do the digital drums primarily follow in this pop "
                         "music piece? ", ["Four on the floor.", "Off-beat syncopation.",
                                           "Scat singing.", "E-guitar playing a simple melody."])
    assert example + "A" == WORKED_EXAMPLE
    assert mcq_prompt("What leads?", ["x", "y", "z", "w"], shots=1) == (
        WORKED_EXAMPLE + "\n Question: What leads?\n Options: (A) x (B) y (C) z (D) w \n The "
        "correct answer is: ")
    # A reply that repeats the prompt is read after its last answer phrase, not the example's.
    reply = mcq_prompt("What leads?", ["x", "y", "z", "w"], shots=1) + "(C) z"
    assert read_choice(reply, ["x", "y", "z", "w"]) == 2


def test_letters_beyond_the_options_count_as_answered_and_wrong():
    """The benchmark's script looks for all of A-D even with fewer options shown."""
    assert read_choice("D", ["one", "two"]) == 3
    q = MCQQuestion(["one", "two"], 0, [0, 1], ["correct", "incorrect_but_related"])
    b = breakdown([3, 1, 0, -1], [q] * 4)
    assert b["overall"]["answered_rate"] == 0.75 and b["overall"]["chance"] == 0.5
    assert b["wrong_chose"] == {"incorrect_but_related": 1, "out-of-range": 1, "unanswered": 1}
