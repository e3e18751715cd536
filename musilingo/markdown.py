"""Values from files as Markdown that nothing interprets: one line, every markup character
escaped, code spans that cannot be closed early.

    md_text("a `b` <i>\\n# c")     # 'a \\`b\\` \\<i\\> \\# c': one line, nothing interpreted
    md_code("runs/`x`")            # '`` runs/`x` ``': a code span that cannot be closed early
    plot_text("$\\frac{$")          # a matplotlib label: a `$` must not start mathtext

Run names, categories, genres and paths reach Markdown files (model cards, score tables,
`compare`) from file names and annotation files; a `|` must not split a table cell, and a
backtick and a newline must not become a heading, raw HTML or a link.
"""
from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#!|~&])")


def one_line(value, limit: int = 200) -> str:
    text = _CONTROL.sub(" ", str(value)).strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def md_text(value) -> str:
    """`value` as plain Markdown text on one line: every character that could open emphasis, a
    link, an image, raw HTML, an entity, a heading or a table cell is backslash-escaped
    (CommonMark lets any ASCII punctuation be), so nothing is interpreted. The values never
    start a line, so list and block markers need no escape."""
    return _SPECIAL.sub(r"\\\1", one_line(value))


def md_code(value) -> str:
    """`value` as an inline code span: fenced by one backtick more than its longest run, so that
    no backtick inside can close it (CommonMark's rule); HTML is never interpreted in a span."""
    text = one_line(value)
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_fence(text: str) -> str:
    """A fence for a code block holding `text`: longer than any backtick run in it."""
    return "`" * max(3, max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)


def plot_text(value) -> str:
    """`value` as a matplotlib label that is not mathtext: a `$` in a run name or a category
    would start a formula (and an unbalanced one fails the whole plot)."""
    return one_line(value).replace("$", r"\$")
