"""RUL-MuChoMusic's scoring: its answer extraction and the leave-one-out majority vote
(docs/REFERENCE.md, "RUL-MuChoMusic"). The prompts are data/items.py's (`rul_prompt`,
`rul_items`).

    letter = read_rul_letter("... so my guess is [[C]]", options)     # "C", or "" (none)
    rul_report(replies, items, protocol="leave-one-out")

The extraction is the release's own, in its order: the last `[[X]]` (X in A-E); else the last
"answer is / chose / choose / select / guess is X" (any case); else the first letter X (A to E)
written as "option X", "Option X" or "(X)"; else the first option (in letter order) whose text,
lower-cased, the lower-cased reply contains; else nothing. A letter the pass does not show (E
with four options) reads as no answer. Leave-one-out: each question's passes vote with the
option texts they chose (no answer does not vote); the most frequent wins, a tie going to the
pass that chose it first; the question is right when the winner is the right answer's text.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict

from ..data.items import RUL_LETTERS

_BRACKETS = re.compile(r"\[\[([A-E])\]\]")
_PHRASE = re.compile(r"(?:answer is|chose|choose|select|guess is|I choose|I select|I guess) "
                     r"([A-E])\b", re.IGNORECASE)


def read_rul_letter(reply: str, options: list[str]) -> str:
    """The letter a reply chooses among `options` (shown as A, B, ...), or "" (no answer)."""
    letter = ""
    if found := _BRACKETS.findall(reply):
        letter = found[-1]
    elif found := _PHRASE.findall(reply):
        letter = found[-1].upper()
    else:
        for candidate in RUL_LETTERS:
            if (f"option {candidate}" in reply or f"Option {candidate}" in reply
                    or f"({candidate})" in reply):
                letter = candidate
                break
        else:
            lowered = reply.lower()
            for candidate, text in zip(RUL_LETTERS, options):
                if text and text.lower() in lowered:
                    letter = candidate
                    break
    return letter if letter in RUL_LETTERS[:len(options)] else ""


def vote(answers: list[str]) -> str:
    """The most chosen non-empty answer text; ties go to the first chosen; "" if none."""
    counts = Counter(a for a in answers if a)
    return counts.most_common(1)[0][0] if counts else ""


def rul_scores(replies: list[str], items: list) -> dict:
    """Per question (the items' meta["question"]) the passes' answers and the vote; accuracy
    (the vote is the right answer), pass accuracy, and the answered rate (a vote exists)."""
    questions: dict[str, dict] = defaultdict(lambda: {"answers": [], "passes": 0})
    pass_right = 0
    for reply, it in zip(replies, items):
        options, right = it.meta["options"], it.meta["correct"]
        letter = read_rul_letter(reply, options)
        text = options[RUL_LETTERS.index(letter)] if letter else ""
        q = questions[it.meta["question"]]
        q["answers"].append(text)
        q["passes"] += 1
        q["correct"] = options[right]
        pass_right += int(text == options[right])
    if not questions:
        raise ValueError("nothing to score")
    votes = {k: vote(q["answers"]) for k, q in questions.items()}
    right = sum(int(votes[k] == q["correct"]) for k, q in questions.items())
    n = len(questions)
    return {"questions": n, "correct": right, "accuracy": right / n,
            "answered_rate": sum(int(bool(v)) for v in votes.values()) / n,
            "pass_accuracy": pass_right / len(items), "passes": len(items),
            "chance": 1.0 / len(items[0].meta["options"]),
            "votes": votes}


def rul_report(replies: list[str], items: list, *, protocol: str, out_dir=None,
               source: str | None = None, settings: dict | None = None) -> dict:
    """Score and (with `out_dir`) write scores.json and scores.md, in `score_and_report`'s
    shape under the protocol name `rul-muchomusic`."""
    from .report import write_scores

    s = rul_scores(replies, items)
    values = {"accuracy": s["accuracy"], "answered_rate": s["answered_rate"],
              "pass_accuracy": s["pass_accuracy"]}
    markdown = "\n".join([
        f"# Scores of `{source}`" if source else "# Scores", "",
        f"### Protocol `rul-muchomusic`: {s['questions']} questions, {s['passes']} passes; "
        f"{protocol}", "",
        "| accuracy | answered rate | pass accuracy | chance per pass |", "|---:|---:|---:|---:|",
        f"| {s['accuracy']:.4f} | {s['answered_rate']:.4f} | {s['pass_accuracy']:.4f} | "
        f"{s['chance']:.2f} |", "",
        "A reply's letter is read by the release's rule ([[X]], else 'answer is X', else "
        "'(X)', else an option's text); a question's passes vote with the options they chose, "
        "and it counts as right when the vote is the right answer.", ""])
    result = {"source": source, "config": {"protocol": "rul-muchomusic", **(settings or {})},
              "protocol_name": protocol,
              "reports": [{"protocol": "rul-muchomusic", "n_items": s["questions"],
                           "values": values, "missing": {}}],
              "counts": {k: v for k, v in s.items() if k != "votes"}, "votes": s["votes"],
              "markdown": markdown}
    if out_dir is not None:
        write_scores(out_dir, result)
    return result
