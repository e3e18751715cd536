"""Multiple-choice scoring as MuChoMusic does it: the prompt, the choice read from a reply, and
accuracy with the answered rate (docs/REFERENCE.md, "MuChoMusic").

    options, correct = shuffled_options("A piano", ["A violin", "Drums", "A choir"], seed=7)
    prompt = mcq_prompt("What instrument leads?", options)
    target = mcq_reply(options, correct)        # what training teaches: the option's text
    choice = read_choice("The correct answer is: (B)", options)     # 1, or -1: unanswered
    mcq_scores([choice], [correct])       # {"accuracy": ..., "answered_rate": ..., ...}

The reading rule is the benchmark's own, on purpose including its quirks, so that numbers are
comparable with published ones: after the prompt's closing phrase is cut off, a reply counts as
the letter it contains when exactly one of the characters A, B, C, D occurs anywhere in it
(capital letters only, anywhere: "A piano" counts as A); otherwise as the first option whose
text (lower-cased) is contained in the lower-cased reply; otherwise it is unanswered (-1).
Text only: nothing here knows models or audio.
"""
from __future__ import annotations

import numpy as np

LETTERS = ("A", "B", "C", "D")
ANSWER_PHRASE = "The correct answer is:"


def shuffled_options(correct: str, distractors: list[str], seed: int,
                     key: str = "") -> tuple[list[str], int]:
    """The correct answer and its distractors in a seeded random order, and where the correct
    one landed. `key` (the item's id) makes each item's order its own but reproducible."""
    options = [correct, *distractors]
    digest = np.frombuffer(key.encode("utf-8"), dtype=np.uint8).astype(np.uint64).tolist()
    rng = np.random.default_rng([seed, len(options), *digest])
    order = rng.permutation(len(options)).tolist()
    return [options[i] for i in order], order.index(0)


def mcq_prompt(question: str, options: list[str]) -> str:
    """The benchmark's zero-shot layout: the question, the lettered options, the answer phrase."""
    text = f"Question: {question}\n Options: "
    for letter, option in zip(LETTERS, options):
        text += f"({letter}) {option} "
    return text + f"\n {ANSWER_PHRASE} "


def mcq_reply(options: list[str], correct: int) -> str:
    """The reply musilingo trains a model to give: the correct option's text, as listed.

    The reading rule's second clause reads it. A letter reply ("(B)") would need the model to
    match what it hears against four texts and then name a position; the demo's 2-layer LLM
    stayed at chance on that after 1,200 pre-training steps (benchmarks/README.md, "Demo"),
    while naming what it hears is what open questions already teach. Options containing a
    capital A-D ("A piano") would be read as that letter by the first clause: write training
    options without them."""
    return options[correct]


def read_choice(reply: str, options: list[str], phrase: str = ANSWER_PHRASE) -> int:
    """The index of the option `reply` chooses, or -1 (unanswered), by the benchmark's rule."""
    reply = reply.split(phrase)[-1].strip()
    letters = sorted(set(LETTERS[:len(options)]) & set(reply))
    if len(letters) == 1:
        return LETTERS.index(letters[0])
    lowered = reply.lower().strip()
    for i, option in enumerate(options):
        if option.lower().strip() in lowered:
            return i
    return -1


def mcq_scores(choices: list[int], correct: list[int]) -> dict:
    """Accuracy (unanswered counts as wrong, as the benchmark counts it), the answered rate
    (the instruction-following rate, IFR) and the counts."""
    if len(choices) != len(correct):
        raise ValueError(f"{len(choices)} choices for {len(correct)} questions")
    if not choices:
        raise ValueError("nothing to score")
    n = len(choices)
    right = sum(int(c == k) for c, k in zip(choices, correct))
    answered = sum(int(c >= 0) for c in choices)
    return {"questions": n, "correct": right, "accuracy": right / n, "answered": answered,
            "answered_rate": answered / n, "chance": 1.0 / len(LETTERS)}


def mcq_report(replies: list[str], options: list[list[str]], correct: list[int], *,
               out_dir=None, source: str | None = None) -> dict:
    """Read every reply, score, and (with `out_dir`) write scores.json and scores.md: the same
    shape as `scoring.score_and_report`'s result, under the protocol name `muchomusic`."""
    import json
    from pathlib import Path

    from ..errors import UserError

    choices = [read_choice(r, o) for r, o in zip(replies, options)]
    s = mcq_scores(choices, correct)
    values = {"accuracy": s["accuracy"], "answered_rate": s["answered_rate"]}
    markdown = "\n".join([
        f"# Scores of `{source}`" if source else "# Scores", "",
        f"### Protocol `muchomusic`: {s['questions']} four-option questions", "",
        "| accuracy | answered rate (IFR) | chance |", "|---:|---:|---:|",
        f"| {s['accuracy']:.4f} | {s['answered_rate']:.4f} | {s['chance']:.2f} |", "",
        "A reply counts as the one letter of A-D it contains, else as the option whose text it "
        "contains, else as unanswered (which counts as wrong).", ""])
    result = {"source": source, "config": {"protocol": "muchomusic"},
              "reports": [{"protocol": "muchomusic", "n_items": s["questions"], "values": values,
                           "missing": {}}],
              "choices": choices, "counts": s, "markdown": markdown}
    if out_dir is not None:
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "scores.json").write_text(json.dumps(
                {k: v for k, v in result.items() if k != "markdown"}, indent=2), encoding="utf-8")
            (out / "scores.md").write_text(markdown, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--out {out}: cannot write there ({exc.strerror})") from exc
    return result
