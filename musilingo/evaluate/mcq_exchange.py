"""MuChoMusic's exchange file, both ways, and plain multiple-choice prediction files.

    write_exchange(path, items, replies)          # what the benchmark's evaluate.py reads
    questions, replies, fields = read_mcq_file(path)    # an exchange file, or a plain one

The benchmark's evaluation script reads one JSON list with an object per question
(docs/REFERENCE.md, "MuChoMusic"): `prompt` (the text the model was given), `answers` (the
options in the order shown), `answer_orders` (for each shown option, its index among the
original ones; original 0 is the right answer, then the distractor types in order),
`model_output` (the reply), `genre`, `reasoning` and `knowledge` (lists of category names), plus
`id`, `dataset` and `audio_path`. Every multiple-choice generation run writes one
(`score --run ... --dataset muchomusic`), so the benchmark's own script can check its numbers.

A plain file (JSON list, JSONL or CSV) gives per row `options` (a list; in CSV, a JSON list in
the cell), `correct` (the right option's index from 0, its letter, or its text) and the reply
(field detected as for text predictions: prediction, response, model_output, ...); the
categories are optional. Bad rows are refused with one line naming the file, the row and the
field.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..data.items import DISTRACTOR_TYPES, LETTERS
from ..errors import UserError
from .mcq import MCQQuestion
from .predictions import PREDICTION_FIELDS, object_rows

EXCHANGE_NAME = "muchomusic.json"


def exchange_row(item, reply: str) -> dict:
    """One question of a scoring run (a data/items.py four-option item) as the benchmark
    writes it."""
    m = item.meta
    return {"id": item.id, "prompt": item.question, "answers": list(m["options"]),
            "answer_orders": list(m["answer_order"]), "dataset": m.get("dataset", ""),
            "genre": m.get("genre", ""), "reasoning": list(m.get("music_reasoning", [])),
            "knowledge": list(m.get("music_knowledge", [])), "audio_path": item.audio_path or "",
            "model_output": reply}


def write_exchange(path: str | Path, items: list, replies: list[str]) -> None:
    from ..files import atomic_write

    rows = [exchange_row(it, r) for it, r in zip(items, replies)]
    atomic_write(path, json.dumps(rows, ensure_ascii=False, indent=1) + "\n")


def _bad(path, where: str, name: str, problem: str) -> UserError:
    return UserError(f"{path}: {where}: field {name!r} {problem}; fix that row")


def _string_list(path, where: str, row: dict, name: str, required: bool) -> list[str]:
    if name not in row or row[name] in (None, ""):
        if required:
            raise _bad(path, where, name, "is missing")
        return []
    value = row[name]
    if isinstance(value, str):  # a CSV cell: a JSON (or Python) list literal
        from ..data.muchomusic import categories

        if not value.strip().startswith("["):
            if required:
                raise _bad(path, where, name, "is not a list")
            return categories(value, path, where, name)
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return categories(value, path, where, name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(path, where, name, "is not a list of texts")
    return value


def _text(path, where: str, row: dict, name: str) -> str:
    value = row.get(name)
    if value is None:
        raise _bad(path, where, name, "is missing")
    if not isinstance(value, str):
        raise _bad(path, where, name, f"is {type(value).__name__}, not text")
    return value


def _order(path, where: str, row: dict, n: int) -> list[int]:
    value = row.get("answer_orders")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            value = None
    if (not isinstance(value, list) or not all(type(v) is int for v in value)
            or sorted(value) != list(range(n))):
        raise _bad(path, where, "answer_orders", f"is not a permutation of 0..{n - 1} (one "
                   "original index per shown option)")
    return value


def _correct(path, where: str, row: dict, options: list[str]) -> int:
    value = row.get("correct")
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            value = int(text)
        elif text.upper() in LETTERS[:len(options)] and len(text) == 1:
            return LETTERS.index(text.upper())
        elif text in options:
            return options.index(text)
    if type(value) is int and 0 <= value < len(options):
        return value
    raise _bad(path, where, "correct", f"is not an option's index (0..{len(options) - 1}), "
               "letter or text")


def read_mcq_file(path: str | Path, prediction_field: str | None = None, *,
                  rows: list | None = None) -> tuple[list[MCQQuestion], list[str], dict]:
    """(questions, replies, {"shape", "prediction_field", "n_options"}) from an exchange file or
    a plain multiple-choice file (`rows`: its `read_rows`, when already read)."""
    path = Path(path)
    rows = object_rows(path, rows, "questions")
    exchange = "answer_orders" in rows[0][2]
    reply_field = prediction_field or ("model_output" if exchange else next(
        (f for f in rows[0][2] if f.lower() in PREDICTION_FIELDS), None))
    if reply_field is None:
        raise UserError(f"{path}: no reply field among {', '.join(rows[0][2])}; pass "
                        "--prediction-field NAME")
    questions, replies, n_options = [], [], None
    for _, where, row in rows:
        options = _string_list(path, where, row, "answers" if exchange else "options", True)
        if n_options is None:
            n_options = len(options)
        if len(options) != n_options or not 2 <= n_options <= len(LETTERS):
            raise _bad(path, where, "answers" if exchange else "options",
                       f"holds {len(options)} options where this file's protocol has "
                       f"{n_options} (2 to {len(LETTERS)}, as the first row)")
        if exchange:
            order = _order(path, where, row, n_options)
            correct = order.index(0)
            # Original order: the answer, then the distractor columns the file was made with
            # (all three types in order when there are four options; otherwise unknown).
            types = (["correct", *DISTRACTOR_TYPES] if n_options == 4 else
                     ["correct"] + [f"distractor {i}" for i in range(1, n_options)])
        else:
            order, types, correct = None, None, _correct(path, where, row, options)
        genre = row.get("genre") or ""
        if not isinstance(genre, str):
            raise _bad(path, where, "genre", "is not text")
        kind = row.get("kind") or ""
        questions.append(MCQQuestion(
            options, correct, order, types, genre,
            _string_list(path, where, row, "knowledge", False),
            _string_list(path, where, row, "reasoning", False),
            kind if isinstance(kind, str) else ""))
        replies.append(_text(path, where, row, reply_field))
    return questions, replies, {"shape": "exchange" if exchange else "plain",
                                "prediction_field": reply_field, "n_options": n_options}
