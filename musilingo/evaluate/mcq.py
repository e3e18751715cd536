"""Multiple-choice scoring as MuChoMusic does it: the choice read from a reply, and accuracy with
the answered rate (docs/REFERENCE.md, "MuChoMusic"). How a question is laid out and which reply
training teaches are data/items.py's (`mcq_prompt`, `shuffled_options`, `mcq_reply`).

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

from ..data.items import ANSWER_PHRASE, LETTERS


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
