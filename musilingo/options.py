"""Configuration fields whose help text is also the CLI's help: one helper for every verb.

    @dataclass
    class ExtractConfig:
        stride: int = option(325, "base window in encoder frames")
    help_of(ExtractConfig, "stride")       # -> "base window in encoder frames"

Every verb's options are a dataclass (extract, train, score, the decoding options, the demo);
the click options and YAML recipes read the same fields, so a default or a help text lives once.
"""
from __future__ import annotations

from dataclasses import field, fields


def option(default, help: str, **metadata):
    """A dataclass field with `help` metadata (list/dict defaults are copied per instance)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default),
                     metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


def help_of(cls, name: str) -> str:
    """The help text of field `name` of dataclass `cls`."""
    return {f.name: f.metadata.get("help", "") for f in fields(cls)}[name]
