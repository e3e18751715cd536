"""Read (prediction, reference) pairs from a predictions file someone else wrote.

Published evaluation outputs come in many shapes: a JSON list of objects (CMI-Bench:
`response`/`correct_answer`), a JSON object of objects keyed by item id (the captioning_eval
MusCaps file: `predictions`/`true_captions`), JSON lines, CSV, or an HF-style object of parallel
lists. The field names differ too, so we detect them from a list of known names (or take them
from the caller) and check every row. A malformed file raises `UserError` naming the file, the
row and the field, and what to do.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

# Known names, most specific first; matched case-insensitively.
PREDICTION_FIELDS = ("prediction", "predictions", "pred", "preds", "response", "responses",
                     "hypothesis", "candidate", "generated", "generated_text", "model_output",
                     "output_text", "answer_pred", "predicted_caption")
REFERENCE_FIELDS = ("ground_truth", "reference", "references", "ref", "refs", "correct_answer",
                    "true_captions", "true_caption", "target", "gold", "label", "answer",
                    "caption", "text")


@dataclass
class PredictionSet:
    """Pairs read from `path`, with the item ids (row keys or positions) and chosen fields."""

    path: Path
    predictions: list[str]
    references: list[str]
    ids: list[str]
    prediction_field: str
    reference_field: str

    def __len__(self) -> int:
        return len(self.predictions)


def read_rows(path: Path) -> list[tuple[str, str, dict]]:
    """(id, where, row) for every item; `where` names the row for error messages."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror}); check the path") from exc
    if not text.strip():
        raise UserError(f"{path}: the file is empty; give a JSON, JSONL or CSV predictions file")
    if path.suffix.lower() in (".csv", ".tsv"):
        return _csv_rows(path, text)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return _jsonl_rows(path, text)
    try:
        data = json.loads(text)
    except RecursionError:
        raise UserError(f"{path}: JSON nested too deeply to be a predictions file; fix the file "
                        "or give JSONL/CSV") from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # several JSON values: JSON lines under a .json name
            return _jsonl_rows(path, text)
        raise UserError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: "
                        f"{exc.msg}); fix the file or give JSONL/CSV") from exc
    return _json_rows(path, data)


def object_rows(path: Path, rows: list | None, items: str, fields: str = "") -> list:
    """`rows` (the file's `read_rows`, read now when None) after the checks every reader of
    them makes first: there is at least one, and each is a JSON object (`items` names what the
    file should hold, `fields` what each object should have, for the messages)."""
    rows = read_rows(path) if rows is None else rows
    if not rows:
        raise UserError(f"{path}: holds no {items}; nothing to score")
    for _, where, row in rows:
        if not isinstance(row, dict):
            raise UserError(f"{path}: {where}: is a JSON {type(row).__name__}, not an object"
                            + (f" with {fields}" if fields else ""))
    return rows


def _jsonl_rows(path: Path, text: str) -> list[tuple[str, str, dict]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except RecursionError:
            raise UserError(f"{path}: line {number}: JSON nested too deeply; fix or remove that "
                            "line") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {number}: not valid JSON ({exc.msg}, column "
                            f"{exc.colno}); fix or remove that line") from exc
        rows.append((str(len(rows)), f"line {number}", row))
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[str, str, dict]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    rows = []
    for row in reader:
        if None in row:  # more cells than header names
            raise UserError(f"{path}: row {reader.line_num}: more cells than the header has "
                            "columns; quote cells that contain the delimiter")
        rows.append((str(len(rows)), f"row {reader.line_num}", row))
    return rows


def _json_rows(path: Path, data) -> list[tuple[str, str, dict]]:
    if isinstance(data, list):
        return [(str(i), f"item {i}", row) for i, row in enumerate(data)]
    if not isinstance(data, dict):
        raise UserError(f"{path}: top level is a JSON {type(data).__name__}; expected a list of "
                        "objects or an object of objects")
    if data and all(isinstance(v, dict) for v in data.values()):
        return [(str(k), f"item {k!r}", row) for k, row in data.items()]
    lists = {k: v for k, v in data.items() if isinstance(v, list)}
    if len(lists) == 1:  # e.g. {"QA": [...]} or {"results": [...]}
        key, items = next(iter(lists.items()))
        return [(str(i), f"{key}[{i}]", row) for i, row in enumerate(items)]
    if len(lists) >= 2 and len({len(v) for v in lists.values()}) == 1:
        # parallel columns: {"predictions": [...], "references": [...]}
        n = len(next(iter(lists.values())))
        return [(str(i), f"item {i}", {k: v[i] for k, v in lists.items()}) for i in range(n)]
    raise UserError(f"{path}: cannot find the items (top-level keys: "
                    f"{', '.join(map(str, list(data)[:10]))}); expected a list of objects, an "
                    "object of objects, or parallel lists of equal length")


def _pick_field(path: Path, fields: list[str], known: tuple[str, ...], kind: str,
                exclude: str | None = None) -> str:
    by_lower = {f.lower(): f for f in fields if f != exclude}
    for name in known:
        if name in by_lower:
            return by_lower[name]
    raise UserError(f"{path}: no {kind} field found among {', '.join(fields) or '(none)'}; "
                    f"pass --{kind}-field NAME")


def _text(path: Path, where: str, row: dict, name: str, kind: str) -> str:
    if name not in row:
        raise UserError(f"{path}: {where}: field {name!r} is missing (it has "
                        f"{', '.join(map(str, row))}); fix that row or pass --{kind}-field")
    value = row[name]
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        value = value[0]  # a one-reference list, as HF-style files write references
    if isinstance(value, list):
        raise UserError(f"{path}: {where}: field {name!r} holds {len(value)} texts; these "
                        "protocols score one reference per item: keep one")
    if value is None:
        raise UserError(f"{path}: {where}: field {name!r} is empty (null, or a missing CSV "
                        "cell); fill it in or drop that row")
    if not isinstance(value, str):
        raise UserError(f"{path}: {where}: field {name!r} is {type(value).__name__}, not text; "
                        "fix that row")
    return value


def load_predictions(path: str | Path, prediction_field: str | None = None,
                     reference_field: str | None = None, *,
                     rows: list | None = None) -> PredictionSet:
    """Read a JSON / JSONL / CSV predictions file; detect the fields unless they are given
    (`rows`: its `read_rows`, when already read)."""
    path = Path(path)
    rows = object_rows(path, rows, "items", "prediction and reference fields")
    fields = list(rows[0][2])
    pred_name = prediction_field or _pick_field(path, fields, PREDICTION_FIELDS, "prediction")
    ref_name = reference_field or _pick_field(path, fields, REFERENCE_FIELDS, "reference",
                                              exclude=pred_name)
    if pred_name == ref_name:
        raise UserError(f"{path}: prediction and reference field are both {pred_name!r}; pass "
                        "--prediction-field and --reference-field")
    predictions, references, ids = [], [], []
    for item_id, where, row in rows:
        predictions.append(_text(path, where, row, pred_name, "prediction"))
        references.append(_text(path, where, row, ref_name, "reference"))
        ids.append(item_id)
    return PredictionSet(path, predictions, references, ids, pred_name, ref_name)
