"""Reading annotation files so that every mistake in them is reported as one precise line.

Every reader funnels its parsing through here, so that a malformed file always produces a
`UserError` of the form `<file>:<line>: <what is wrong>; <what to do>`:
- `read_csv_rows` yields rows with the line each starts on, after checking the header has the
  required columns;
- `read_json_items` walks a JSON array (top level, or under a key such as MusicInstruct's "QA")
  item by item with `json.JSONDecoder.raw_decode`, so each item carries the line it starts on;
  plain `json.load` would lose that, and a user fixing row 31,207 of a 60k-item file needs it;
- `text_field` / `bool_field` check one field of one row.
"""
from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from musilingo.errors import UserError

_WHITESPACE = re.compile(r"[ \t\n\r]*")


def fail(path: Path | str, line: int | str | None, problem: str, todo: str) -> UserError:
    """Build the one-line error: `<file>:<line>: <problem>; <todo>`."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return UserError(f"{where}: {problem}; {todo}")


def require_file(path: str | Path | None, what: str) -> Path:
    """The annotation file as a Path, or a UserError naming it if it is absent."""
    if path is None:
        raise UserError(f"{what}: no annotation file given; pass the path to the {what} file")
    path = Path(path).expanduser()
    if not path.is_file():
        state = "is a directory, not a file" if path.is_dir() else "does not exist"
        raise UserError(f"{path}: annotation file {state}; pass the path to the {what} file")
    return path


def _read_text(path: Path) -> str:
    try:
        # utf-8-sig: files saved by spreadsheet programs start with a byte-order mark.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise fail(path, None, f"not UTF-8 text (byte {error.start})",
                   "save the annotation file as UTF-8") from None


# ------------------------------------------------------------------------------------------ CSV

def read_csv_rows(path: Path, required: Sequence[str], what: str
                  ) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line the row starts on, {column: value}) for every non-blank data row."""
    text = _read_text(path)  # decoded whole first: a non-UTF-8 byte is named, not a traceback
    with io.StringIO(text, newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise fail(path, 1, "the file is empty", f"use a {what} CSV with its header row") \
                from None
        except csv.Error as error:
            raise fail(path, 1, f"unreadable CSV header ({error})", f"use a {what} CSV") from None
        absent = [name for name in required if name not in header]
        if absent:
            raise fail(path, 1, f"missing column {absent[0]!r} (header has: {', '.join(header)})",
                       f"use a {what} CSV with the columns {', '.join(required)}")
        end_of_previous = reader.line_num
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                raise fail(path, end_of_previous + 1, f"unreadable CSV row ({error})",
                           "fix the quoting of that row") from None
            start = end_of_previous + 1
            end_of_previous = reader.line_num
            if not values:
                continue  # blank line
            if len(values) != len(header):
                raise fail(path, start, f"row has {len(values)} fields but the header has "
                           f"{len(header)}", "fix the row (quote fields that contain commas)")
            yield start, dict(zip(header, values))


# ----------------------------------------------------------------------------------------- JSON

class _Walker:
    """Walks JSON text item by item, counting lines as it goes (positions only move forward)."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text
        self.decoder = json.JSONDecoder()
        self._line, self._line_pos = 1, 0

    def line_at(self, pos: int) -> int:
        self._line += self.text.count("\n", self._line_pos, pos)
        self._line_pos = pos
        return self._line

    def skip(self, pos: int) -> int:
        return _WHITESPACE.match(self.text, pos).end()

    def value(self, pos: int) -> tuple[Any, int]:
        try:
            return self.decoder.raw_decode(self.text, pos)
        except json.JSONDecodeError as error:
            raise self.syntax_error(error) from None
        except RecursionError:  # arrays/objects nested thousands deep: no annotation looks so
            raise fail(self.path, self.line_at(pos), "JSON nested too deeply to be an annotation",
                       "fix the file or download it again") from None

    def expect(self, pos: int, allowed: str) -> str:
        char = self.text[pos:pos + 1]
        if not char or char not in allowed:
            wanted = " or ".join(repr(c) for c in allowed)
            raise self.syntax_error(json.JSONDecodeError(f"Expecting {wanted}", self.text, pos))
        return char

    def syntax_error(self, error: json.JSONDecodeError) -> UserError:
        return fail(self.path, error.lineno, f"invalid JSON ({error.msg}, column {error.colno})",
                    "fix the file or download it again")

    def array(self, pos: int) -> tuple[list[tuple[int, Any]], int]:
        """Items of the array starting at `pos` ('['), each with the line it starts on, and the
        position just after the array."""
        self.expect(pos, "[")
        items: list[tuple[int, Any]] = []
        pos = self.skip(pos + 1)
        if self.text.startswith("]", pos):
            return items, pos + 1
        while True:
            pos = self.skip(pos)
            item, end = self.value(pos)
            items.append((self.line_at(pos), item))
            pos = self.skip(end)
            if self.expect(pos, ",]") == "]":
                return items, pos + 1
            pos += 1

    def keyed_array(self, pos: int, key: str) -> tuple[list[tuple[int, Any]] | None, int]:
        """Items of the array under `key` in the object starting at `pos` (None if absent), and
        the position just after the object."""
        self.expect(pos, "{")
        found = None
        pos = self.skip(pos + 1)
        if self.text.startswith("}", pos):
            return None, pos + 1
        while True:
            pos = self.skip(pos)
            self.expect(pos, '"')
            name, pos = self.value(pos)
            pos = self.skip(pos)
            self.expect(pos, ":")
            pos = self.skip(pos + 1)
            if name == key and self.text.startswith("[", pos):
                found, pos = self.array(pos)
            else:
                _, pos = self.value(pos)
            pos = self.skip(pos)
            if self.expect(pos, ",}") == "}":
                return found, pos + 1
            pos += 1

    def trailing(self, pos: int) -> None:
        """Only whitespace may follow the top-level value."""
        pos = self.skip(pos)
        if pos < len(self.text):
            raise self.syntax_error(json.JSONDecodeError("Extra data", self.text, pos))


def read_json_items(path: Path, what: str, *, under_key: str | None = None
                    ) -> list[tuple[int, Any]]:
    """(line, item) for each item of a JSON array: the whole document, or `document[under_key]`."""
    text = _read_text(path)
    walker = _Walker(path, text)
    start = walker.skip(0)
    if under_key is None:
        if not text.startswith("[", start):
            raise fail(path, walker.line_at(start), "expected a JSON list at the top level",
                       f"use a {what} JSON file (a list of items)")
        items, end = walker.array(start)
        walker.trailing(end)
        return items
    if not text.startswith("{", start):
        raise fail(path, walker.line_at(start), "expected a JSON object at the top level",
                   f'use a {what} JSON file ({{"{under_key}": [...]}})')
    items, end = walker.keyed_array(start, under_key)
    walker.trailing(end)
    if items is None:
        raise fail(path, None, f"field {under_key!r} (a list) not found at the top level",
                   f'use a {what} JSON file ({{"{under_key}": [...]}})')
    return items


# --------------------------------------------------------------------------------------- fields

def text_field(row: Any, name: str, path: Path, line: int, what: str, *,
               allow_empty: bool = False) -> str:
    """row[name] as a string, or a UserError naming file, line and field."""
    if not isinstance(row, dict):
        raise fail(path, line, f"item is a {type(row).__name__}, not an object",
                   f"every {what} item must be a JSON object")
    if name not in row:
        raise fail(path, line, f"item has no {name!r} field", f"add {name!r} to the {what} item")
    value = row[name]
    if not isinstance(value, str):
        raise fail(path, line, f"field {name!r} is a {type(value).__name__}, not a string",
                   f"make {name!r} a string")
    if not allow_empty and not value.strip():
        raise fail(path, line, f"field {name!r} is empty", f"fill in {name!r} or delete the row")
    return value


def bool_field(row: dict, name: str, path: Path, line: int, what: str) -> bool:
    """row[name] as a bool: a real JSON boolean, or the strings "True"/"False" (any case)."""
    if name not in row:
        raise fail(path, line, f"item has no {name!r} field", f"add {name!r} to the {what} item")
    value = row[name]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise fail(path, line, f"field {name!r} is {value!r}, not True/False",
               f"write {name!r} as True or False")
