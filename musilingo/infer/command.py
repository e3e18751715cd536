"""`musilingo caption | ask | chat`: the inference verbs.

    musilingo caption --run runs/instruct song.wav albums/ --format csv --out captions.csv
    musilingo ask --run runs/instruct song.wav "What instrument is playing?"
    printf 'What key is it in?\\nAnd the tempo?\\n' | musilingo chat --run runs/instruct song.wav
    musilingo caption --run runs/instruct song.wav decoding=beam num_beams=4

caption/ask write one row per answer ({clip, start, end, scope, caption|answer[, question]}) as
JSON lines (default) or CSV, to --out or stdout; progress and warnings go to stderr. chat reads
one question per line from stdin until EOF and prints one answer line per input line (empty for
an empty or undecodable line, which is skipped), so it works the same typed at a terminal or
piped from a file. The work is in predictor.py; these
are thin wrappers.
"""
from __future__ import annotations

import csv
import json
import sys

import click

from ..errors import UserError
from ..options import config_options, load_config_args
from .config import AskConfig, CaptionConfig, ChatConfig, GenerateConfig

CAPTION_COLUMNS = ("clip", "start", "end", "scope", "caption")
ASK_COLUMNS = ("clip", "start", "end", "scope", "question", "answer")


def _log(msg: str) -> None:
    click.echo(msg, err=True)


def load_predictor(cfg: GenerateConfig):
    from .predictor import Predictor

    return Predictor.from_config(cfg, log=_log)


class RowWriter:
    """JSON lines or CSV rows to a file or stdout, flushed per row (so partial output is usable)."""

    def __init__(self, out: str | None, fmt: str, columns: tuple[str, ...]):
        try:
            self.handle = open(out, "w", newline="", encoding="utf-8") if out else sys.stdout
        except OSError as exc:
            raise UserError(f"--out {out}: cannot write there ({exc.strerror})") from None
        self.fmt, self.columns, self.count = fmt, columns, 0
        if fmt == "csv":
            self.csv = csv.DictWriter(self.handle, fieldnames=columns, extrasaction="ignore")
            self.csv.writeheader()

    def write(self, row: dict) -> None:
        if self.fmt == "csv":
            self.csv.writerow(row)
        else:
            self.handle.write(json.dumps({k: row.get(k) for k in self.columns},
                                         ensure_ascii=False) + "\n")
        self.handle.flush()
        self.count += 1

    def close(self) -> None:
        if self.handle is not sys.stdout:
            self.handle.close()


@click.command()
@config_options(CaptionConfig, "caption", args="args")
def caption(recipe, args, **flags):
    """Caption AUDIO files and folders (one caption per segment, with its time span).

    ARGS: AUDIO files or folders (clip ids with --cache), then any KEY=VALUE overrides."""
    audio, cfg = load_config_args(CaptionConfig, "caption", recipe, flags, args, minimum=1,
                                  usage="give at least one AUDIO file or folder")
    predictor = load_predictor(cfg)
    writer = RowWriter(cfg.out, cfg.format, CAPTION_COLUMNS)
    failed: list[str] = []

    def skip(clip: str, message: str) -> None:
        failed.append(clip)
        _log(f"warning: skipped {message}")

    empty = 0
    try:
        for row in predictor.iter_caption(audio, whole_track=cfg.whole_track, on_error=skip):
            empty += not row["caption"].strip()
            writer.write(row)
    finally:
        writer.close()
    if empty:
        _log(f"warning: {empty} of {writer.count} captions are empty (an under-trained adapter?)")
    if failed:
        _log(f"{len(failed)} clips could not be read (see the warnings above)")
        if writer.count == 0:
            raise UserError("no clip could be read; nothing was captioned")


@click.command()
@config_options(AskConfig, "ask", args="args")
def ask(recipe, args, **flags):
    """Answer QUESTION about AUDIO (whole track when it fits the LLM's context).

    ARGS: AUDIO QUESTION, then any KEY=VALUE overrides."""
    (audio, question), cfg = load_config_args(
        AskConfig, "ask", recipe, flags, args, count=2,
        usage="give AUDIO and QUESTION (quote a question with spaces)")
    predictor = load_predictor(cfg)
    rows = predictor.ask(audio, question, whole_track=not cfg.per_segment)
    writer = RowWriter(cfg.out, cfg.format, ASK_COLUMNS)
    try:
        for row in rows:
            writer.write(row)
    finally:
        writer.close()


@click.command()
@config_options(ChatConfig, "chat", args="args", skip=("batch_size",))
def chat(recipe, args, **flags):
    """Talk about AUDIO: one question per stdin line, one answer per stdout line.

    ARGS: AUDIO, then any KEY=VALUE overrides."""
    (audio,), cfg = load_config_args(ChatConfig, "chat", recipe, flags, args, count=1,
                                     usage="give one AUDIO file")
    predictor = load_predictor(cfg)
    session = predictor.chat(audio)
    interactive = sys.stdin.isatty()
    stdin = getattr(sys.stdin, "buffer", None)
    number = 0
    while True:
        if interactive:
            click.echo("you> ", nl=False, err=True)
        raw = stdin.readline() if stdin is not None else sys.stdin.readline()
        if not raw:
            break  # end of input
        number += 1
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            _log(f"note: stdin line {number} is not valid UTF-8 (byte {exc.start}): skipped")
            line = ""
        # One output line per input line, whatever the model writes: a pipe reads the answer to
        # line i at line i (an empty or skipped line has an empty answer).
        if not line.strip():
            if not interactive:
                click.echo("")
            continue
        click.echo(" ".join(session.ask(line).splitlines()))
