"""Items from Records: the one place annotation rows become what is learned and asked.

    items = record_items(records, question=CAPTION_QUESTION)       # every record, in order
    item = record_item(record, k=0, question=None)                  # stage 1: captions only

An `Item` (records.py) is one question about one clip with its answer. Training learns the
answer; generation asks the question and scores against the answer. Training (`train/data.py`),
scoring (`score/run.py`) and the demo (`demo/evaluation.py`) all make theirs here, so they share
- the id: `<clip id>:<k>`, the k-th record of that clip in the order given (stable across runs:
  a resumed scoring pass finds its predictions by it);
- the caption question: captions are asked `question` (the reference code's "Please give a
  caption to the music.", docs/REFERENCE.md section 2), or nothing under a stage-1 template;
- MuChoMusic's four-option layout (docs/REFERENCE.md, "MuChoMusic"): the question, the options
  in a seeded order (`options_seed`, the item's id as key), and the answer phrase. The answer a
  model is trained to give is the right option's text; the reference it is scored against is
  the lettered option (`mcq_answer`). The reading rule that scores a reply is evaluate/mcq.py's.
Text only: nothing here knows models or audio.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from .records import Item, Record

# What the reference code asks when a captioning set is used for instruction tuning.
CAPTION_QUESTION = "Please give a caption to the music."
LETTERS = ("A", "B", "C", "D")
ANSWER_PHRASE = "The correct answer is:"
# MuChoMusic's three distractor columns, in order (docs/REFERENCE.md, "MuChoMusic").
DISTRACTOR_TYPES = ("incorrect_but_related", "correct_but_unrelated", "incorrect_and_unrelated")
# The worked example the benchmark's default configuration puts before every question (its YAML
# string after folding: the line breaks inside it are " \n " as in the question layout).
WORKED_EXAMPLE = ("Question: What rhythm pattern do the digital drums primarily follow in this "
                  "pop music piece? \n Options: (A) Four on the floor. (B) Off-beat syncopation. "
                  "(C) Scat singing. (D) E-guitar playing a simple melody. \n The correct answer "
                  "is: A")


@dataclass(frozen=True)
class MCQLayout:
    """How a four-option question is put to a model: the benchmark's worked example before it
    (`shots` 1, its default configuration, the one behind the published table) or not (0), which
    distractor types are offered beside the answer, and the seed of each question's option
    order. Scoring uses the published default; training and the demo use `TRAINED` (0-shot:
    what a small model learns to answer)."""

    shots: int = 1
    distractors: tuple[str, ...] = DISTRACTOR_TYPES
    seed: int = 0

    def __post_init__(self):
        if self.shots not in (0, 1):
            raise UserError(f"shots={self.shots}: MuChoMusic's layouts are 0-shot and 1-shot "
                            "(its worked example); use 0 or 1")
        unknown = [d for d in self.distractors if d not in DISTRACTOR_TYPES]
        if unknown or not self.distractors or len(set(self.distractors)) < len(self.distractors):
            raise UserError(f"distractors={','.join(self.distractors)}: give one or more of "
                            f"{', '.join(DISTRACTOR_TYPES)}, each once")
        if self.seed < 0:
            raise UserError(f"options_seed={self.seed}: give a seed >= 0")

    @classmethod
    def parse(cls, shots: int, distractors: str, seed: int) -> "MCQLayout":
        """From the CLI's values: `distractors` a comma list of types (or all)."""
        names = tuple(d.strip() for d in distractors.split(",") if d.strip())
        return cls(shots, DISTRACTOR_TYPES if names == ("all",) else
                   tuple(sorted(names, key=lambda d: DISTRACTOR_TYPES.index(d)
                                if d in DISTRACTOR_TYPES else -1)), seed)

    @property
    def n_options(self) -> int:
        return 1 + len(self.distractors)

    def describe(self) -> str:
        """The protocol's name, as every table prints it."""
        kinds = ("all 3 distractor types" if self.distractors == DISTRACTOR_TYPES else
                 "distractors " + ", ".join(self.distractors))
        return (f"MuChoMusic, {self.shots}-shot, {self.n_options} options ({kinds}), options "
                f"seed {self.seed}")

    def to_dict(self) -> dict:
        return {"benchmark": "muchomusic", "shots": self.shots,
                "distractors": list(self.distractors), "options_seed": self.seed}


TRAINED = MCQLayout(shots=0)


def item_id(clip_id: str, k: int) -> str:
    return f"{clip_id}:{k}"


def option_order(n: int, seed: int, key: str = "") -> list[int]:
    """A seeded permutation of n options (the benchmark's `answer_orders` row: displayed option
    j is original option order[j], original 0 the right answer). `key` (the item's id) makes
    each item's order its own but reproducible."""
    digest = np.frombuffer(key.encode("utf-8"), dtype=np.uint8).astype(np.uint64).tolist()
    return np.random.default_rng([seed, n, *digest]).permutation(n).tolist()


def ordered_options(original: list[str], seed: int, key: str = ""
                    ) -> tuple[list[str], int, list[int]]:
    """`original` (the right answer first) in its seeded order: (options as shown, where the
    right one landed, the order)."""
    order = option_order(len(original), seed, key)
    return [original[i] for i in order], order.index(0), order


def shuffled_options(correct: str, distractors: list[str], seed: int,
                     key: str = "") -> tuple[list[str], int]:
    """The correct answer and its distractors in a seeded random order, and where the correct
    one landed."""
    options, right, _ = ordered_options([correct, *distractors], seed, key)
    return options, right


def mcq_prompt(question: str, options: list[str], shots: int = 0) -> str:
    """The benchmark's layout: (1-shot) its worked example, then the question, the lettered
    options and the answer phrase, character for character."""
    head = f"{WORKED_EXAMPLE}\n Question: " if shots else "Question: "
    text = f"{head}{question}\n Options: "
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


def lettered(options: list[str], correct: int) -> str:
    """The right option as the benchmark prints it: "(B) a piano"."""
    return f"({LETTERS[correct]}) {options[correct]}"


def record_item(record: Record, k: int, *, question: str | None = CAPTION_QUESTION,
                mcq: MCQLayout = TRAINED, mcq_answer: Callable = mcq_reply) -> Item:
    """The item of `record`, the k-th record of its clip.

    A caption record is asked `question` (None: no question, the stage-1 template); a
    question/answer record its own question; a four-option record (meta "distractors") the
    benchmark's prompt laid out as `mcq` says, answered by `mcq_answer(options, correct)`
    (training: the option's text; scoring: `lettered`). Meta: the record's, with the
    distractors replaced by the shown options, the right one's index, `answer_order` (original
    index of each shown option) and `option_types` (the type of each original option)."""
    texts, ident = record.texts, item_id(record.clip_id, k)
    meta = {"source": record.source, **{m: v for m, v in record.meta.items() if m != "distractors"}}
    if "question" in texts and question is None:
        raise UserError(f"{record.source}: stage pretrain trains on captions, but this data set "
                        "has question/answer records: use it with stage instruct")
    if "rul_distractors" in record.meta:
        raise UserError(f"{record.source}: RUL-MuChoMusic is asked in several passes: score it "
                        "with `score --dataset rul-muchomusic` (it does not train)")
    if "distractors" in record.meta:
        chosen = [d for t, d in zip(DISTRACTOR_TYPES, record.meta["distractors"])
                  if t in mcq.distractors]
        options, right, order = ordered_options([texts["answer"], *chosen], mcq.seed, ident)
        asked = mcq_prompt(texts["question"], options, mcq.shots)
        answer = mcq_answer(options, right)
        meta.update(options=options, correct=right, answer_order=order,
                    option_types=["correct", *mcq.distractors])
    elif "question" in texts:
        asked, answer = texts["question"], texts["answer"]
    elif "caption" in texts:
        asked, answer = question, texts["caption"]
    else:
        raise UserError(f"{record.source}: the record has no caption or answer to learn or ask")
    return Item(ident, record.clip_id, asked, answer, audio_path=str(record.audio_path),
                meta=meta)


def numbered(records: Iterable[Record], keep: Callable[[Record], bool] | None = None):
    """(record, k) of every record kept, k counted per clip over all of them (in order): `keep`
    drops records after their k is counted, so ids do not depend on what is left out."""
    seen: dict[str, int] = {}
    for record in records:
        k = seen[record.clip_id] = seen.get(record.clip_id, -1) + 1
        if keep is None or keep(record):
            yield record, k


def record_items(records: Iterable[Record], *, keep: Callable[[Record], bool] | None = None,
                 **how) -> list[Item]:
    """`record_item` of every record kept (`numbered`)."""
    return [record_item(record, k, **how) for record, k in numbered(records, keep)]


# RUL-MuChoMusic ("Are you really listening?"; docs/REFERENCE.md, "RUL-MuChoMusic"): its own
# instruction and answer format, five options (A-E) or leave-one-out passes of four.
RUL_LETTERS = ("A", "B", "C", "D", "E")
RUL_INSTRUCTION = "Provide your best guess of this question. Think step by step."
RUL_PROTOCOLS = ("leave-one-out", "all-options")


def rul_prompt(question: str, options: list[str]) -> str:
    """The release's prompt, character for character (its format hint lists the letters of the
    pass: "or [[E]]" with five options, none with four)."""
    shown = " ".join(f"({letter}) {o}" for letter, o in zip(RUL_LETTERS, options))
    hint = ("[[A]], [[B]], [[C]], [[D]] or [[E]]." if len(options) == 5 else
            ", ".join(f"[[{letter}]]" for letter in RUL_LETTERS[:len(options)]) + ".")
    return (f"{RUL_INSTRUCTION}\n\nQuestion: {question}\n\nOptions: {shown}\n\nWrite out your "
            f"guess in the format of [[Letter]], such as {hint}")


def rul_items(records: Iterable[Record], *, protocol: str = "leave-one-out", seed: int = 0,
              keep: Callable[[Record], bool] | None = None) -> list[Item]:
    """The items of RUL-MuChoMusic records: per question, four leave-one-out passes (each
    without one distractor, four options; ids `<clip>:<k>/<pass>`) or one pass with all five
    options (`<clip>:<k>/all`). Options in a seeded order per pass; the reference is the right
    option lettered; meta: options, correct, question (the `<clip>:<k>` the vote groups by),
    pass, and the excluded distractor."""
    if protocol not in RUL_PROTOCOLS:
        raise UserError(f"rul_protocol={protocol}: use {' or '.join(RUL_PROTOCOLS)}")
    items = []
    for record, k in numbered(records, keep):
        base, answer = item_id(record.clip_id, k), record.texts["answer"]
        distractors = record.meta["rul_distractors"]
        passes = ([(str(p), [d for j, d in enumerate(distractors) if j != p], distractors[p])
                   for p in range(len(distractors))] if protocol == "leave-one-out" else
                  [("all", list(distractors), None)])
        for name, chosen, excluded in passes:
            options, right, _ = ordered_options([answer, *chosen], seed, f"{base}/{name}")
            meta = {"source": record.source, **{m: v for m, v in record.meta.items()
                                                if m != "rul_distractors"},
                    "options": options, "correct": right, "question": base, "pass": name,
                    "excluded": excluded}
            items.append(Item(f"{base}/{name}", record.clip_id,
                              rul_prompt(record.texts["question"], options),
                              f"[[{RUL_LETTERS[right]}]] {options[right]}",
                              audio_path=str(record.audio_path), meta=meta))
    return items


def occurrences(codes: np.ndarray) -> np.ndarray:
    """k of every row (its rank among the rows of the same clip, in order) from integer clip
    codes (one per distinct clip id, e.g. Arrow's dictionary indices), for columns too large to
    walk in Python (LP-MusicCaps-MSD's 520k rows): one stable sort."""
    codes = np.asarray(codes)
    order = np.argsort(codes, kind="stable")
    ranked = codes[order]
    first = np.r_[0, np.flatnonzero(ranked[1:] != ranked[:-1]) + 1]
    rank = np.arange(len(codes)) - np.repeat(first, np.diff(np.r_[first, len(codes)]))
    out = np.empty(len(codes), dtype=np.int64)
    out[order] = rank
    return out
