"""The one command line: `musilingo <verb> ...`.

Each verb is a click command defined next to the code it drives (`musilingo/<package>/command.py`)
and imported only when used, so `musilingo --help` stays fast and a reader finds a verb's options
beside its implementation.

Every failure ends in one `error:` line and an exit status that says whose it is: 2 for a user
mistake (`UserError`: bad input, a damaged cache, a wrong flag; or an OS error that says a path
names the wrong kind of thing: a file where a folder goes), 3 for the environment (disk
full, permission denied, read-only file system, out of memory: fix it and run the same command
again, finished work is kept), 130 for Ctrl-C, 1 for a bug. Tracebacks only with `--debug` (or
MUSILINGO_DEBUG=1).
"""
from __future__ import annotations

import errno
import importlib
import os
import sys
import traceback

import click

from . import __version__
from .errors import EnvironmentFault, UserError

# verb -> "module:attribute" of its click command, in the order of the data flow.
VERBS = {
    "extract": "musilingo.extract.command:extract",
    "cache": "musilingo.cache.command:cache",
    "train": "musilingo.train.command:train",
    "caption": "musilingo.infer.command:caption",
    "ask": "musilingo.infer.command:ask",
    "chat": "musilingo.infer.command:chat",
    "import-checkpoint": "musilingo.runs.command:import_checkpoint",
    "score": "musilingo.score.command:score",
    "serve": "musilingo.serve.command:serve",
    "export": "musilingo.runs.command:export",
    "compare": "musilingo.runs.command:compare",
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


EXIT_BUG, EXIT_USER, EXIT_ENVIRONMENT, EXIT_INTERRUPTED = 1, 2, 3, 130
# errno -> what the environment did, and what to do about it.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: ("the disk is full", "free some space"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space or raise the quota"),
    errno.EACCES: ("permission denied", "fix the permissions or choose another path"),
    errno.EPERM: ("operation not permitted", "fix the permissions or choose another path"),
    errno.EROFS: ("the file system is read-only", "choose a writable path"),
    errno.EMFILE: ("too many open files", "raise `ulimit -n` or use fewer --num-workers"),
    errno.EIO: ("an input/output error", "check the disk"),
}


# errno -> the user's path mistake behind it (exit 2): a folder option given a file, or the reverse.
PATH_ERRNOS = {
    errno.EEXIST: "{path} is in the way: it exists and is not the folder expected there; "
                  "choose another path or remove it",
    errno.ENOTDIR: "{path}: part of this path is a file, not a folder; choose another path",
    errno.EISDIR: "{path} is a folder where a file is expected; give a file path",
    errno.ENAMETOOLONG: "{path}: the path is too long for the file system; choose a shorter one",
}


def _chain(exc: BaseException | None):
    """The exception, then its cause or context, and theirs (each once)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _path_mistake(exc: BaseException) -> str | None:
    """One line for a path given to the wrong kind of thing (None otherwise)."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in PATH_ERRNOS and e.filename:
            return PATH_ERRNOS[e.errno].format(path=e.filename)
    return None


def _debug() -> bool:
    return os.environ.get("MUSILINGO_DEBUG", "") not in ("", "0")


def _environment_fault(exc: BaseException) -> str | None:
    """One line for an OS-level fault anywhere in the exception's chain (None otherwise)."""
    for e in _chain(exc):
        if isinstance(e, EnvironmentFault):
            return str(e)
        if isinstance(e, MemoryError):
            return "out of memory; use a smaller --batch-size or fewer --num-workers, then run " \
                   "the same command again (finished work is kept)"
        if isinstance(e, OSError) and e.errno in ENVIRONMENT_ERRNOS:
            what, todo = ENVIRONMENT_ERRNOS[e.errno]
            where = f" writing {e.filename}" if e.filename else ""
            return f"{what}{where}; {todo}, then run the same command again (finished work is kept)"
    return None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="musilingo")
@click.option("--debug", is_flag=True, help="show the full traceback of any error")
def cli(debug):
    """Train MusiLingo-style music-language models from a cached music-encoder embedding.

    Data flows: extract (audio -> encoder -> Zarr cache) -> train (cache -> adapter -> LLM)
    -> caption/ask/chat -> score. `musilingo demo` runs all of it on generated music.
    """
    if debug:
        os.environ["MUSILINGO_DEBUG"] = "1"


def launcher_args(argv: list[str]) -> list[str]:
    """argv without the `--local_rank=N` (or `--local_rank N`) that the `deepspeed` launcher adds
    unless given --no_local_rank; the rank goes to LOCAL_RANK, where torchrun also puts it."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--local_rank=") or arg.startswith("--local-rank="):
            os.environ.setdefault("LOCAL_RANK", arg.split("=", 1)[1])
        elif arg in ("--local_rank", "--local-rank") and i + 1 < len(argv):
            os.environ.setdefault("LOCAL_RANK", argv[i + 1])
            i += 1
        else:
            out.append(arg)
        i += 1
    return out


def main(argv: list[str] | None = None) -> None:
    # Quiet the libraries' own progress bars and advice; our jobs draw their own.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    argv = launcher_args(list(sys.argv[1:] if argv is None else argv))
    try:
        cli.main(args=argv, prog_name="musilingo", standalone_mode=False)
    except UserError as exc:
        if _debug():  # the traceback too, but the same exit status as without --debug
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_USER)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted: finished work is saved; run the same command again to resume",
                   err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if _debug():
            traceback.print_exc()
        fault = _environment_fault(exc)
        if fault is not None:
            click.echo(f"error: {fault}", err=True)
            sys.exit(EXIT_ENVIRONMENT)
        mistake = _path_mistake(exc)
        if mistake is not None:
            click.echo(f"error: {mistake}", err=True)
            sys.exit(EXIT_USER)
        text = str(exc).strip().splitlines()
        click.echo(f"error: unexpected {type(exc).__name__}: {text[0][:200] if text else ''} "
                   "(a bug in musilingo; `musilingo --debug ...` shows the traceback)", err=True)
        sys.exit(EXIT_BUG)


if __name__ == "__main__":
    main()
