"""The real CLI in-process: `run_cli(capsys, "cache", "info", path)` -> (exit code, out, err)."""
from __future__ import annotations


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    from musilingo.cli import main

    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
