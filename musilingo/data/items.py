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

import numpy as np

from ..errors import UserError
from .records import Item, Record

# What the reference code asks when a captioning set is used for instruction tuning.
CAPTION_QUESTION = "Please give a caption to the music."
LETTERS = ("A", "B", "C", "D")
ANSWER_PHRASE = "The correct answer is:"


def item_id(clip_id: str, k: int) -> str:
    return f"{clip_id}:{k}"


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


def lettered(options: list[str], correct: int) -> str:
    """The right option as the benchmark prints it: "(B) a piano"."""
    return f"({LETTERS[correct]}) {options[correct]}"


def record_item(record: Record, k: int, *, question: str | None = CAPTION_QUESTION,
                options_seed: int = 0, mcq_answer: Callable = mcq_reply) -> Item:
    """The item of `record`, the k-th record of its clip.

    A caption record is asked `question` (None: no question, the stage-1 template); a
    question/answer record its own question; a four-option record (meta "distractors") the
    benchmark's prompt, answered by `mcq_answer(options, correct)` (training: the option's text;
    scoring: `lettered`). Meta: the record's (distractors replaced by the shown options and the
    right one's index) and its source row."""
    texts, ident = record.texts, item_id(record.clip_id, k)
    meta = {"source": record.source, **{m: v for m, v in record.meta.items() if m != "distractors"}}
    if "question" in texts and question is None:
        raise UserError(f"{record.source}: stage pretrain trains on captions, but this data set "
                        "has question/answer records: use it with stage instruct")
    if "distractors" in record.meta:
        options, right = shuffled_options(texts["answer"], record.meta["distractors"],
                                          options_seed, key=ident)
        asked, answer = mcq_prompt(texts["question"], options), mcq_answer(options, right)
        meta.update(options=options, correct=right)
    elif "question" in texts:
        asked, answer = texts["question"], texts["answer"]
    elif "caption" in texts:
        asked, answer = question, texts["caption"]
    else:
        raise UserError(f"{record.source}: the record has no caption or answer to learn or ask")
    return Item(ident, record.clip_id, asked, answer, audio_path=str(record.audio_path),
                meta=meta)


def record_items(records: Iterable[Record], *, keep: Callable[[Record], bool] | None = None,
                 **how) -> list[Item]:
    """`record_item` of every record (in order, k counted per clip over all of them); `keep`
    drops records after their k is counted, so ids do not depend on what is left out."""
    seen: dict[str, int] = {}
    items = []
    for record in records:
        k = seen[record.clip_id] = seen.get(record.clip_id, -1) + 1
        if keep is None or keep(record):
            items.append(record_item(record, k, **how))
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
