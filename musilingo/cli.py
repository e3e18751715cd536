"""The one command line: `musilingo <verb> ...`.

Each verb is a click command defined next to the code it drives (`musilingo/<package>/command.py`)
and imported only when used, so `musilingo --help` stays fast and a reader finds a verb's options
beside its implementation. User mistakes (`UserError`) print one `error:` line and exit 2.
"""
from __future__ import annotations

import importlib
import os
import sys

import click

from . import __version__
from .errors import UserError

# verb -> "module:attribute" of its click command, in the order of the data flow.
VERBS = {
    "extract": "musilingo.extract.command:extract",
    "cache": "musilingo.cache.command:cache",
    "train": "musilingo.train.command:train",
    "caption": "musilingo.infer.command:caption",
    "ask": "musilingo.infer.command:ask",
    "chat": "musilingo.infer.command:chat",
    "import-checkpoint": "musilingo.infer.command:import_checkpoint",
    "score": "musilingo.evaluate.command:score",
    "demo": "musilingo.demo.command:demo",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(VERBS)

    def get_command(self, ctx, name):
        target = VERBS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:  # a verb whose package is not built yet
            if exc.name and exc.name.startswith("musilingo"):
                return None
            raise


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="musilingo")
def cli():
    """Train MusiLingo-style music-language models from a cached music-encoder embedding.

    Data flows: extract (audio -> encoder -> Zarr cache) -> train (cache -> adapter -> LLM)
    -> caption/ask/chat -> score. `musilingo demo` runs all of it on generated music.
    """


def main(argv: list[str] | None = None) -> None:
    # Quiet the libraries' own progress bars and advice; our jobs draw their own.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        cli.main(args=argv, prog_name="musilingo", standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: finished work is saved; run the same command again to resume",
                   err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
