"""The words of the synthetic music set: attributes, captions, Q&A pairs, four-option questions,
and the answer checker.

The demo scores a model by asking about one attribute and checking that the answer names the
right value. That only works if the checker accepts every word the training text uses for a
value (so `SYNONYMS` below is the single list that both the caption templates and the checker
draw on) and rejects hedges that name several values ("slow or fast").

Answers are canonical, one per value ("A piano.", "Slow."): a short, fixed answer makes the
value the first content token, which is what a few hundred adapter steps can learn
(docs/REFERENCE.md section 6). The questions vary (several phrasings per attribute), and the captions vary a lot
(sentence structures, synonyms, moods, BPM), like human-written captions. Four-option questions
(`MCQ_KINDS`) ask about one attribute or two together, with three other value combinations as
distractors, so chance is 0.25.
"""
from __future__ import annotations

import itertools
import re

import numpy as np

from musilingo.synth.render import TONICS, ClipPlan

ATTRIBUTES: dict[str, list[str]] = {
    "instrument": ["piano", "organ", "guitar", "synth", "flute"],
    "percussion": ["drums", "none"],
    "tempo": ["slow", "medium", "fast"],
    "key": list(TONICS),
    "mode": ["major", "minor"],
    "register": ["low", "mid", "high"],
    "loudness": ["soft", "loud"],
}


def chance(attribute: str) -> float:
    """Accuracy of guessing one value uniformly at random (every value is equally frequent)."""
    return 1.0 / len(ATTRIBUTES[attribute])


# Words the checker accepts for each value (regex fragments, matched as whole words, any case).
# Percussion and key are parsed separately (negation; note names).
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "instrument": {"piano": ("pianos?",), "organ": ("organs?",),
                   "guitar": ("guitars?", "plucked"), "flute": ("flutes?",),
                   "synth": ("synths?", "synthesi[sz]ers?")},
    "tempo": {"slow": ("slow(ly)?", "unhurried", "leisurely"),
              "medium": ("medium", "moderate(ly)?", "mid-?tempo"),
              "fast": ("fast", "quick(ly)?", "brisk", "rapid", "up-?tempo")},
    "mode": {"major": ("major",), "minor": ("minor",)},
    "register": {"low": ("low", "low-pitched", "deep", "bass"),
                 "mid": ("mid", "middle", "mid-?range", "medium"),
                 "high": ("high", "high-pitched", "treble")},
    "loudness": {"soft": ("soft(ly)?", "quiet(ly)?", "gentle", "gently"),
                 "loud": ("loud(ly)?", "powerful", "forceful")},
}
_PATTERNS = {attribute: {value: re.compile(r"(?<![\w-])(?:" + "|".join(words) + r")(?![\w-])",
                                           re.IGNORECASE)
                         for value, words in by_value.items()}
             for attribute, by_value in SYNONYMS.items()}
_BPM = re.compile(r"(\d{2,3}(?:\.\d+)?)\s*(?:bpm|beats per minute)", re.IGNORECASE)
_NEGATION = re.compile(r"\b(no|none|not|nope|without|never)\b|n't\b", re.IGNORECASE)
_YES = re.compile(r"\byes\b", re.IGNORECASE)
_PERCUSSION = re.compile(r"\b(drums?|drumming|percussion|percussive|beat|kick|snare|hi-?hats?|"
                         r"cymbals?)\b", re.IGNORECASE)
_NOTE = re.compile(r"(?<![A-Za-z0-9])([A-G])(#|♯|b|♭|\s?-?\s?sharp|\s?-?\s?flat)?"
                   r"(?![A-Za-z0-9#♯♭])")
_ARTICLE_FOLLOWER = re.compile(r"\s+(?!major\b|minor\b)[a-z]")
_LETTER_SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SPOKEN_KEYS = {"C": "C", "C#": "C sharp", "D": "D", "Eb": "E flat", "E": "E", "F": "F",
               "F#": "F sharp", "G": "G", "Ab": "A flat", "A": "A", "Bb": "B flat", "B": "B"}


def _mentioned_keys(text: str) -> set[str]:
    found = set()
    for match in _NOTE.finditer(text):
        letter, accidental = match.group(1), (match.group(2) or "").strip(" -")
        if letter == "A" and not accidental and _ARTICLE_FOLLOWER.match(text, match.end()):
            continue  # "A piano", not the note A
        shift = 1 if accidental in ("#", "♯", "sharp") else -1 if accidental else 0
        found.add(TONICS[(_LETTER_SEMITONE[letter] + shift) % 12])
    return found


def mentioned_values(text: str, attribute: str) -> set[str]:
    """The values of `attribute` that `text` names (by any accepted synonym)."""
    if attribute == "key":
        return _mentioned_keys(text)
    if attribute == "percussion":
        negated, positive = bool(_NEGATION.search(text)), bool(_PERCUSSION.search(text))
        said_yes = bool(_YES.search(text))
        found = set()
        if negated:
            found.add("none")
        if said_yes or (positive and not negated):
            found.add("drums")
        return found
    found = {value for value, pattern in _PATTERNS[attribute].items() if pattern.search(text)}
    if attribute == "tempo":
        for match in _BPM.finditer(text):
            bpm = float(match.group(1))
            found.add("slow" if bpm < 85 else "medium" if bpm < 120 else "fast")
    return found


def answer_is_correct(answer: str, attribute: str, value: str) -> bool:
    """True when `answer` names `value` and no other value of `attribute`."""
    if attribute not in ATTRIBUTES or value not in ATTRIBUTES[attribute]:
        raise ValueError(f"unknown attribute/value {attribute!r}/{value!r}; "
                         f"attributes are {', '.join(ATTRIBUTES)}")
    return mentioned_values(answer, attribute) == {value}


# ----------------------------------------------------------------------------------- questions

QUESTIONS = {
    "instrument": ("What instrument is playing?", "Which instrument plays the melody?",
                   "What instrument do you hear?", "Name the instrument in this clip."),
    "percussion": ("Is there percussion?", "Are there drums in this music?",
                   "Does the track have a drum beat?"),
    "tempo": ("What is the tempo?", "How fast is the music?",
              "Is the tempo slow, medium or fast?"),
    "key": ("What key is the music in?", "What is the tonic of this piece?",
            "Which key is this in?"),
    "mode": ("Is it in a major or minor key?", "Is the mode major or minor?",
             "Does this sound major or minor?"),
    "register": ("What register is the melody in?", "Is the melody low, mid or high?",
                 "How high is the melody pitched?"),
    "loudness": ("How loud is it?", "Is the music soft or loud?", "Is it played softly or loudly?"),
}
ANSWERS = {
    "instrument": {"piano": "A piano.", "organ": "An organ.", "guitar": "A plucked guitar.",
                   "synth": "A synth lead.", "flute": "A flute."},
    "percussion": {"drums": "Yes, there are drums.", "none": "No, there is no percussion."},
    "tempo": {"slow": "Slow.", "medium": "Medium.", "fast": "Fast."},
    "key": {tonic: f"{spoken}." for tonic, spoken in SPOKEN_KEYS.items()},
    "mode": {"major": "Major.", "minor": "Minor."},
    "register": {"low": "Low.", "mid": "Mid.", "high": "High."},
    "loudness": {"soft": "Soft.", "loud": "Loud."},
}


def question_answers(plan: ClipPlan, rng: np.random.Generator) -> list[tuple[str, str, str, str]]:
    """(attribute, value, question, answer) for every attribute of the clip."""
    pairs = []
    for attribute in ATTRIBUTES:
        value = getattr(plan, attribute)
        question = QUESTIONS[attribute][rng.integers(len(QUESTIONS[attribute]))]
        pairs.append((attribute, value, question, ANSWERS[attribute][value]))
    return pairs


# ------------------------------------------------------------------------ four-option questions

# Each multiple-choice kind asks about one attribute, or two together where one alone has fewer
# than four values, so every question has exactly four options and chance is 0.25. Option texts
# are lower case with no capital A-D, and none contains another: MuChoMusic's reading rule
# (evaluate/mcq.py) takes a reply's one capital A-D as its letter, else looks for an option's
# text in it. Key is left out: its spoken names ("C sharp", "A flat") are capital letters.
MCQ_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (attributes, question phrasings)
    "instrument": (("instrument",), ("Which instrument plays the melody?",
                                     "Which instrument do you hear?")),
    "rhythm": (("tempo", "percussion"), ("Which best describes the rhythm?",
                                         "How would you describe the pace and the beat?")),
    "dynamics": (("loudness", "mode"), ("Which best describes the sound?",
                                        "Which fits the dynamics and the mode?")),
    "melody": (("register", "mode"), ("Which best describes the melody?",
                                      "Where does the melody sit, and in which mode?")),
}
_OPTION_WORDS = {
    "instrument": {"piano": "piano", "organ": "organ", "guitar": "plucked guitar",
                   "synth": "synth lead", "flute": "flute"},
    "tempo": {"slow": "slow", "medium": "medium tempo", "fast": "fast"},
    "percussion": {"drums": "with drums", "none": "without drums"},
    "loudness": {"soft": "soft", "loud": "loud"},
    "mode": {"major": "in a major key", "minor": "in a minor key"},
    "register": {"low": "a low melody", "mid": "a mid-range melody", "high": "a high melody"},
}


def mcq_option(attributes: tuple[str, ...], values: tuple[str, ...]) -> str:
    """The option text naming `values` of `attributes` ("slow, with drums")."""
    return ", ".join(_OPTION_WORDS[a][v] for a, v in zip(attributes, values))


def mcq_questions(plan: ClipPlan, rng: np.random.Generator) -> list[tuple[str, str, str, list[str]]]:
    """(kind, question, correct option, three distractors) for every multiple-choice kind: the
    distractors are three other value combinations of the same attributes, drawn at random."""
    out = []
    for kind, (attributes, questions) in MCQ_KINDS.items():
        right = tuple(getattr(plan, a) for a in attributes)
        others = [combo for combo in itertools.product(*(ATTRIBUTES[a] for a in attributes))
                  if combo != right]
        picks = rng.choice(len(others), size=3, replace=False)
        out.append((kind, questions[rng.integers(len(questions))], mcq_option(attributes, right),
                    [mcq_option(attributes, others[i]) for i in sorted(picks)]))
    return out


# ------------------------------------------------------------------------------------ captions

_INSTRUMENT_PHRASES = {
    "piano": ("a piano", "an acoustic piano", "a grand piano"),
    "organ": ("an organ", "an electric organ", "a drawbar organ"),
    "guitar": ("a plucked guitar", "a fingerpicked guitar", "a nylon-string guitar"),
    "synth": ("a synth lead", "a sawtooth synthesizer", "a detuned synth"),
    "flute": ("a flute", "a breathy flute", "a solo flute"),
}
_TEMPO_WORDS = {"slow": ("slow", "unhurried"), "medium": ("moderate", "moderately paced"),
                "fast": ("fast", "brisk", "quick")}
_MOODS = {"major": ("bright", "cheerful", "uplifting", "sunny"),
          "minor": ("melancholic", "wistful", "somber", "brooding")}
_REGISTER_PHRASES = {"low": ("in a low register", "low in pitch", "in the bass range"),
                     "mid": ("in the middle register", "in the mid range"),
                     "high": ("in a high register", "high in pitch", "up in the treble")}
_LOUDNESS_WORDS = {"soft": ("soft", "quiet", "gentle"), "loud": ("loud", "powerful", "forceful")}
_PERCUSSION_SENTENCES = {
    "drums": ("Drums keep a steady beat.", "A kick, snare and hi-hat groove drives it.",
              "A simple drum beat plays along."),
    "none": ("There is no percussion.", "No drums are playing.", "It has no rhythm section."),
}
_PERCUSSION_CLAUSES = {"drums": ("backed by drums", "over a steady drum beat"),
                       "none": ("without percussion", "with no drums")}
_TEMPLATES = (
    "{A_mood} {tempo} piece in {key}, played on {instrument} {register}, {perc_clause}. "
    "The dynamics are {loud}.",
    "This {loud} instrumental features {instrument} playing arpeggios {register}, "
    "{perc_clause}. It moves at a {tempo} tempo{bpm} in {key}.",
    "{Instrument} plays {mood} broken chords in {key}. The tempo is {tempo}{bpm}, the melody "
    "sits {register}, and the playing is {loud}. {perc_sentence}",
    "{perc_sentence} {Instrument} arpeggiates {a_tempo} {mode} progression {register}; the key "
    "is {key_bare}, the mood {mood} and the sound {loud}.",
    "An instrumental clip: {loud} {instrument_bare} arpeggios at a {tempo} tempo{bpm}, in {key}, "
    "with the melody {register} and {perc_short}.",
    "{Mood} and {loud}, this {tempo} tune for {instrument} stays {register} and is in {key}. "
    "{perc_sentence}",
)


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[rng.integers(len(options))]


def caption(plan: ClipPlan, rng: np.random.Generator) -> str:
    """A varied one-to-three sentence caption that names every attribute of the clip."""
    mood, tempo = _pick(rng, _MOODS[plan.mode]), _pick(rng, _TEMPO_WORDS[plan.tempo])
    instrument = _pick(rng, _INSTRUMENT_PHRASES[plan.instrument])
    key_phrase = _pick(rng, ("{k} {m}", "the key of {k} {m}")).format(
        k=SPOKEN_KEYS[plan.key], m=plan.mode)
    words = {
        "mood": mood, "Mood": mood.capitalize(), "A_mood": f"{_article(mood)} {mood}".capitalize(),
        "tempo": tempo, "a_tempo": f"{_article(tempo)} {tempo}", "key": key_phrase,
        "mode": plan.mode, "key_bare": f"{SPOKEN_KEYS[plan.key]} {plan.mode}",
        "instrument": instrument, "Instrument": instrument.capitalize(),
        "instrument_bare": instrument.split(" ", 1)[1],
        "register": _pick(rng, _REGISTER_PHRASES[plan.register]),
        "loud": _pick(rng, _LOUDNESS_WORDS[plan.loudness]),
        "perc_sentence": _pick(rng, _PERCUSSION_SENTENCES[plan.percussion]),
        "perc_clause": _pick(rng, _PERCUSSION_CLAUSES[plan.percussion]),
        "perc_short": "drums" if plan.percussion == "drums" else "no percussion",
        "bpm": f" (about {round(plan.bpm)} BPM)" if rng.random() < 0.5 else "",
    }
    return _pick(rng, _TEMPLATES).format(**words)


def aspect_list(plan: ClipPlan) -> list[str]:
    """MusicCaps-style aspect phrases for the clip."""
    return [plan.instrument, "arpeggios", f"{plan.tempo} tempo",
            f"{SPOKEN_KEYS[plan.key]} {plan.mode}", f"{plan.mode} key",
            f"{plan.register} register", plan.loudness,
            "drums" if plan.percussion == "drums" else "no percussion", "instrumental"]
