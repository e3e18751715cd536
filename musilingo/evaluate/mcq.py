"""Multiple-choice scoring as MuChoMusic does it: the choice read from a reply, accuracy with the
answered rate, and the benchmark's breakdown (docs/REFERENCE.md, "MuChoMusic"). How a question
is laid out and which reply training teaches are data/items.py's (`MCQLayout`, `mcq_prompt`,
`mcq_reply`); the benchmark's exchange file is mcq_exchange.py's.

    choice = read_choice("The correct answer is: (B)", options)     # 1, or -1: unanswered
    mcq_scores([choice], [correct])       # {"accuracy": ..., "answered_rate": ..., ...}
    breakdown([choice], [question])       # + knowledge, reasoning, genre, kind, distractors

The reading rule is the benchmark's own, on purpose including its quirks, so that numbers are
comparable with published ones: after the prompt's closing phrase is cut off, a reply counts as
the letter it contains when exactly one of the characters A, B, C, D occurs anywhere in it
(capital letters only, anywhere: "A piano" counts as A; all four letters even when fewer options
are shown, as the benchmark's script does); otherwise as the first option whose text
(lower-cased) is contained in the lower-cased reply; otherwise it is unanswered (-1).
Text only: nothing here knows models or audio.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..data.items import ANSWER_PHRASE, LETTERS
# categories and genres are data: a `|` must not split a cell, a `$` must not start mathtext
from ..markdown import md_text, plot_text


@dataclass
class MCQQuestion:
    """What scoring needs of one question: the options as shown, the right one's index, and
    (for the breakdown) the original index of each shown option, each original option's type,
    and the benchmark's categories."""

    options: list[str]
    correct: int
    answer_order: list[int] | None = None
    option_types: list[str] | None = None
    genre: str = ""
    knowledge: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    kind: str = ""

    @classmethod
    def from_meta(cls, meta: dict) -> "MCQQuestion":
        """From an item's meta (data/items.py `record_item`, categories from the reader)."""
        return cls(meta["options"], meta["correct"], meta.get("answer_order"),
                   meta.get("option_types"), meta.get("genre", ""),
                   list(meta.get("music_knowledge", [])), list(meta.get("music_reasoning", [])),
                   meta.get("kind", ""))

    def chosen_type(self, choice: int) -> str:
        """The type of the option chosen: correct, a distractor type, unanswered, or
        out-of-range (a letter beyond the options shown)."""
        if choice < 0:
            return "unanswered"
        if choice >= len(self.options):
            return "out-of-range"
        if self.answer_order is None or self.option_types is None:
            return "correct" if choice == self.correct else "distractor"
        return self.option_types[self.answer_order[choice]]


def read_choice(reply: str, options: list[str], phrase: str = ANSWER_PHRASE,
                letters: tuple[str, ...] = LETTERS) -> int:
    """The index of the option `reply` chooses, or -1 (unanswered), by the benchmark's rule."""
    reply = reply.split(phrase)[-1].strip()
    found = sorted(set(letters) & set(reply))
    if len(found) == 1:
        return letters.index(found[0])
    lowered = reply.lower().strip()
    for i, option in enumerate(options):
        if option.lower().strip() in lowered:
            return i
    return -1


def mcq_scores(choices: list[int], correct: list[int], n_options: int = len(LETTERS)) -> dict:
    """Accuracy (unanswered counts as wrong, as the benchmark counts it), the answered rate
    (1 - the benchmark's unanswered rate; its paper's instruction-following rate, IFR) and the
    counts."""
    if len(choices) != len(correct):
        raise ValueError(f"{len(choices)} choices for {len(correct)} questions")
    if not choices:
        raise ValueError("nothing to score")
    n = len(choices)
    right = sum(int(c == k) for c, k in zip(choices, correct))
    answered = sum(int(c >= 0) for c in choices)
    return {"questions": n, "correct": right, "accuracy": right / n, "answered": answered,
            "answered_rate": answered / n, "chance": 1.0 / n_options}


def _accuracy(pairs: list[tuple[int, int]]) -> dict:
    return {"questions": len(pairs), "accuracy": sum(c == k for c, k in pairs) / len(pairs)}


def breakdown(choices: list[int], questions: list[MCQQuestion]) -> dict:
    """The benchmark's breakdown: overall, music knowledge and reasoning (overall: the questions
    with any category of that dimension; and per category), per genre, per `kind` (one's own
    sets, e.g. the demo's), and which option type the wrong answers chose."""
    s = mcq_scores(choices, [q.correct for q in questions], len(questions[0].options))
    out: dict = {"overall": s}
    for dim in ("knowledge", "reasoning"):
        per: dict[str, list] = defaultdict(list)
        tagged = []
        for c, q in zip(choices, questions):
            cats = getattr(q, dim)
            if cats:
                tagged.append((c, q.correct))
            for cat in cats:
                per[cat].append((c, q.correct))
        if tagged:
            out[dim] = {"overall": _accuracy(tagged),
                        "categories": {k: _accuracy(v) for k, v in sorted(per.items())}}
    for name in ("genre", "kind"):
        per = defaultdict(list)
        for c, q in zip(choices, questions):
            if getattr(q, name):
                per[getattr(q, name)].append((c, q.correct))
        if per:
            out[name] = {k: _accuracy(v) for k, v in sorted(per.items())}
    wrong: dict[str, int] = defaultdict(int)
    for c, q in zip(choices, questions):
        if c != q.correct:
            wrong[q.chosen_type(c)] += 1
    out["wrong_chose"] = dict(sorted(wrong.items()))
    return out


def breakdown_markdown(b: dict) -> list[str]:
    """The breakdown's tables (accuracy, questions per row)."""
    lines = []

    def table(title: str, rows: dict, overall: dict | None = None) -> None:
        lines.extend([f"#### {title}", "", "| | questions | accuracy |", "|---|---:|---:|"])
        if overall is not None:
            lines.append(f"| **any category** | {overall['questions']} | "
                         f"{overall['accuracy']:.4f} |")
        lines.extend(f"| {md_text(k)} | {v['questions']} | {v['accuracy']:.4f} |"
                     for k, v in rows.items())
        lines.append("")

    for dim in ("knowledge", "reasoning"):
        if dim in b:
            table(f"Music {dim}", b[dim]["categories"], b[dim]["overall"])
    if "genre" in b:
        table("Genre", b["genre"])
    if "kind" in b:
        table("Kind", b["kind"])
    if b["wrong_chose"]:
        total = sum(b["wrong_chose"].values())
        lines.extend(["#### What the wrong answers chose", "", "| chosen | replies | share |",
                      "|---|---:|---:|"])
        lines.extend(f"| {k} | {v} | {v / total:.3f} |" for k, v in b["wrong_chose"].items())
        lines.append("")
    return lines


def mcq_report(replies: list[str], questions: list[MCQQuestion], *, protocol: str,
               out_dir=None, source: str | None = None, settings: dict | None = None) -> dict:
    """Read every reply, score with the breakdown, and (with `out_dir`) write scores.json and
    scores.md: the same shape as `scoring.score_and_report`'s result, under the protocol name
    `muchomusic`. `protocol` names the layout in every table (`MCQLayout.describe()`)."""
    from .report import write_scores

    choices = [read_choice(r, q.options) for r, q in zip(replies, questions)]
    b = breakdown(choices, questions)
    s = b["overall"]
    values = {"accuracy": s["accuracy"], "answered_rate": s["answered_rate"]}
    markdown = "\n".join([
        f"# Scores of `{source}`" if source else "# Scores", "",
        f"### Protocol `muchomusic`: {s['questions']} questions; {protocol}", "",
        "| accuracy | answered rate (IFR) | chance |", "|---:|---:|---:|",
        f"| {s['accuracy']:.4f} | {s['answered_rate']:.4f} | {s['chance']:.2f} |", "",
        "A reply counts as the one letter of A-D it contains, else as the option whose text it "
        "contains, else as unanswered (which counts as wrong).", "",
        *breakdown_markdown(b)])
    result = {"source": source, "config": {"protocol": "muchomusic", **(settings or {})},
              "protocol_name": protocol,
              "reports": [{"protocol": "muchomusic", "n_items": s["questions"], "values": values,
                           "missing": {}}],
              "choices": choices, "counts": s, "breakdown": b, "markdown": markdown}
    if out_dir is not None:
        write_scores(out_dir, result)
    return result


def category_rows(b: dict) -> dict[str, float]:
    """"dimension: category" -> accuracy, in the order the breakdown lists them."""
    rows = {"all questions": b["overall"]["accuracy"]}
    for dim in ("knowledge", "reasoning"):
        for k, v in b.get(dim, {}).get("categories", {}).items():
            rows[f"{dim}: {k}"] = v["accuracy"]
    for name in ("genre", "kind"):
        for k, v in b.get(name, {}).items():
            rows[f"{name}: {k}"] = v["accuracy"]
    return rows


def categories_plot(path, series: dict[str, dict], *, title: str, chance: float) -> None:
    """One horizontal bar chart of the per-category accuracies, one bar per series (real and
    each control), the chance level dashed: where the model listens is where real stands
    clear of the controls."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..files import atomic_path

    rows = list(category_rows(next(iter(series.values()))))
    y = np.arange(len(rows))
    height = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.28 * len(rows) * max(1, len(series) / 2)))
    for i, (label, b) in enumerate(series.items()):
        values = category_rows(b)
        ax.barh(y + i * height, [values.get(r, 0.0) for r in rows], height, label=plot_text(label))
    ax.axvline(chance, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_yticks(y + height * (len(series) - 1) / 2, [plot_text(r) for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.set_title(plot_text(title), fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
