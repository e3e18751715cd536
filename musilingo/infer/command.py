"""`musilingo caption | ask | chat | import-checkpoint`: the inference verbs.

    musilingo caption --run runs/instruct song.wav albums/ --format csv --out captions.csv
    musilingo ask --run runs/instruct song.wav "What instrument is playing?"
    printf 'What key is it in?\\nAnd the tempo?\\n' | musilingo chat --run runs/instruct song.wav
    musilingo import-checkpoint stage2.pth --llm /models/vicuna-7b --out runs/reference
    musilingo import-checkpoint m-a-p/MusiLingo-short-v1 --llm /models/vicuna-7b --out runs/short

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
from .config import generation_from_options, runtime_from_options, runtime_options

CAPTION_COLUMNS = ("clip", "start", "end", "scope", "caption")
ASK_COLUMNS = ("clip", "start", "end", "scope", "question", "answer")


def model_options(fn):
    """--run, --llm, --cache, --encoder, then the shared runtime and decoding options."""
    opts = [
        click.option("--run", "run", required=True, type=click.Path(),
                     help="run folder with adapter.safetensors + adapter_config.json (from "
                          "`musilingo train` or `import-checkpoint`), or that config file"),
        click.option("--llm", default=None, help="LLM preset, folder or hub id instead of the "
                                                 "one in adapter_config.json (same width)"),
        click.option("--cache", default=None, type=click.Path(),
                     help="read features from this cache; AUDIO arguments are then clip ids"),
        click.option("--encoder", default=None,
                     help="encoder instead of the one named in adapter_config.json"),
    ]
    fn = runtime_options(fn)
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _log(msg: str) -> None:
    click.echo(msg, err=True)


def load_predictor(kw: dict):
    """A Predictor from the shared options (popped from `kw`)."""
    from .predictor import Predictor

    generation = generation_from_options(kw)
    rt = runtime_from_options(kw)
    return Predictor.load(kw.pop("run"), llm=kw.pop("llm"), cache=kw.pop("cache"),
                          encoder=kw.pop("encoder"), device=rt.device, dtype=rt.dtype,
                          segment_seconds=rt.segment_seconds,
                          trust_remote_code=rt.trust_remote_code, generation=generation,
                          batch_size=rt.batch_size, log=_log)


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


def output_options(fn):
    fn = click.option("--out", default=None, type=click.Path(dir_okay=False),
                      help="write rows to this file (default: stdout)")(fn)
    return click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
                        show_default=True, help="row format")(fn)


@click.command()
@click.argument("audio", nargs=-1, required=True)
@click.option("--whole-track", is_flag=True,
              help="one caption per file over all its segments (when they fit the LLM's "
                   "context), instead of one per segment")
@output_options
@model_options
def caption(audio, whole_track, fmt, out, **kw):
    """Caption AUDIO files and folders (one caption per segment, with its time span)."""
    predictor = load_predictor(kw)
    writer = RowWriter(out, fmt, CAPTION_COLUMNS)
    failed: list[str] = []

    def skip(clip: str, message: str) -> None:
        failed.append(clip)
        _log(f"warning: skipped {message}")

    empty = 0
    try:
        for row in predictor.iter_caption(audio, whole_track=whole_track, on_error=skip):
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
@click.argument("audio")
@click.argument("question")
@click.option("--per-segment", is_flag=True,
              help="answer each segment separately even when the whole track fits")
@output_options
@model_options
def ask(audio, question, per_segment, fmt, out, **kw):
    """Answer QUESTION about AUDIO (whole track when it fits the LLM's context)."""
    predictor = load_predictor(kw)
    rows = predictor.ask(audio, question, whole_track=not per_segment)
    writer = RowWriter(out, fmt, ASK_COLUMNS)
    try:
        for row in rows:
            writer.write(row)
    finally:
        writer.close()


@click.command()
@click.argument("audio")
@model_options
def chat(audio, **kw):
    """Talk about AUDIO: one question per stdin line, one answer per stdout line."""
    predictor = load_predictor(kw)
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


@click.command("import-checkpoint")
@click.argument("checkpoint")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="run folder to write adapter.safetensors + adapter_config.json into")
@click.option("--llm", default=None,
              help="the LLM the adapter was trained with (the paper: Vicuna-7B v0, merged; a "
                   "folder or hub id); must be as wide as the adapter's output. Default for a "
                   "published model: its config's llama_model")
@click.option("--encoder", default=None,
              help="encoder the adapter was trained on (preset, hub id or folder; default: "
                   "mert-330m, or a published model's mert_model)")
@click.option("--layers", type=int, default=None,
              help="hidden states averaged (default: the encoder's layers + 1, 25 for mert-330m)")
@click.option("--stride", type=int, default=325, show_default=True,
              help="window stride in frames the features are pooled at")
@click.option("--t", "t", type=int, default=325, show_default=True,
              help="frames per audio token (the reference code's 325)")
@click.option("--normalize", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True,
              help="wave normalisation the adapter was trained with, recorded for inference on "
                   "raw audio (auto: the encoder's preprocessor_config.json)")
@click.option("--overwrite", is_flag=True, help="replace an adapter already in --out")
def import_checkpoint(checkpoint, out, llm, encoder, layers, stride, t, normalize, overwrite):
    """Convert a MusiLingo adapter into a run folder: a reference-code CHECKPOINT (.pth), or a
    published model's folder or hub id (only its adapter tensors are read; no code runs)."""
    from .import_checkpoint import import_checkpoint as run_import

    folder, notes = run_import(checkpoint, out, llm=llm, encoder=encoder, layers=layers,
                               stride=stride, t=t, overwrite=overwrite,
                               normalize={"on": True, "off": False}.get(normalize))
    for note in notes:
        _log(f"note: {note}")
    click.echo(f"wrote {folder}/adapter.safetensors and adapter_config.json; try: musilingo ask "
               f"--run {folder} AUDIO \"What instrument is playing?\"")
