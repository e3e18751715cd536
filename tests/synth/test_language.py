"""answer_is_correct: names the right value (any accepted synonym) and no other value."""
from __future__ import annotations

import pytest

from musilingo.synth import ATTRIBUTES, answer_is_correct, chance
from musilingo.synth.language import ANSWERS


def test_chance_is_one_over_the_number_of_values():
    assert chance("instrument") == pytest.approx(1 / 5)
    assert chance("key") == pytest.approx(1 / 12)
    assert chance("percussion") == pytest.approx(1 / 2)
    assert set(ATTRIBUTES) == {"instrument", "percussion", "tempo", "key", "mode", "register",
                               "loudness"}
    assert len(ATTRIBUTES["instrument"]) >= 5 and len(ATTRIBUTES["key"]) == 12


@pytest.mark.parametrize("attribute", list(ATTRIBUTES))
def test_every_canonical_answer_is_right_for_its_value_only(attribute):
    for value in ATTRIBUTES[attribute]:
        answer = ANSWERS[attribute][value]
        verdicts = {other: answer_is_correct(answer, attribute, other)
                    for other in ATTRIBUTES[attribute]}
        assert verdicts == {other: other == value for other in ATTRIBUTES[attribute]}, answer


@pytest.mark.parametrize("answer, attribute, value, expected", [
    ("It sounds like a grand piano.", "instrument", "piano", True),
    ("A piano, or maybe an organ.", "instrument", "piano", False),   # a hedge names two values
    ("I hear a synthesizer lead.", "instrument", "synth", True),
    ("Flutes.", "instrument", "flute", True),
    ("A plucked string instrument.", "instrument", "guitar", True),
    ("A violin.", "instrument", "piano", False),                     # names no value
    ("", "tempo", "slow", False),
    ("The tempo is quick.", "tempo", "fast", True),
    ("Moderately paced.", "tempo", "medium", True),
    ("Around 72 BPM.", "tempo", "slow", True),
    ("About 140 bpm.", "tempo", "fast", True),
    ("Slow, about 140 BPM.", "tempo", "slow", False),               # contradicts itself
    ("It's slowly building but fast.", "tempo", "fast", False),
    ("Yes.", "percussion", "drums", True),
    ("Yes, a drum kit keeps the beat.", "percussion", "drums", True),
    ("There are drums.", "percussion", "drums", True),
    ("No drums.", "percussion", "drums", False),
    ("No drums.", "percussion", "none", True),
    ("There isn't any percussion.", "percussion", "none", True),
    ("None.", "percussion", "none", True),
    ("Yes, but no drums.", "percussion", "none", False),
    ("Minor.", "mode", "minor", True),
    ("It is in a minor key, not major.", "mode", "minor", False),
    ("C# minor.", "key", "C#", True),
    ("D flat major.", "key", "C#", True),                            # enharmonic spelling
    ("The key is D-flat.", "key", "C#", True),
    ("B♭.", "key", "Bb", True),
    ("Bb major.", "key", "Bb", True),
    ("A minor.", "key", "A", True),
    ("A piano piece in C.", "key", "C", True),                       # "A" here is an article
    ("A piano piece in C.", "key", "A", False),
    ("C or G.", "key", "C", False),
    ("The melody is deep and low.", "register", "low", True),
    ("Middle register.", "register", "mid", True),
    ("High-pitched.", "register", "high", True),
    ("Low to high.", "register", "low", False),
    ("It is played quietly.", "loudness", "soft", True),
    ("Loud and powerful.", "loudness", "loud", True),
    ("Soft, then loud.", "loudness", "soft", False),
])
def test_free_form_answers(answer, attribute, value, expected):
    assert answer_is_correct(answer, attribute, value) is expected


def test_synonyms_do_not_match_inside_other_words():
    assert not answer_is_correct("It is slowed down.", "tempo", "slow")
    assert not answer_is_correct("Pianola.", "instrument", "piano")
    assert answer_is_correct("It is below the staff, low.", "register", "low")
    assert not answer_is_correct("Highly unusual.", "register", "high")


def test_unknown_attribute_or_value_is_a_programming_error():
    with pytest.raises(ValueError):
        answer_is_correct("A piano.", "genre", "jazz")
    with pytest.raises(ValueError):
        answer_is_correct("A piano.", "instrument", "banjo")
