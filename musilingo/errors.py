"""The exception types for faults that are not bugs, and the guard around every large write.

Anything a user can fix (a bad path, a malformed annotation row, a cache made with another
encoder) raises `UserError` with a one-line message that names the file, row or field and says
what to do. The CLI turns it into `error: <message>` and exit status 2. A fault of the machine
(disk full, a quota, a file-size limit) is an `OSError` with its errno or an `EnvironmentFault`:
exit status 3. Everything else is a bug and keeps its traceback.

    with writing(folder / "step-00000010"):     # torch.save / safetensors inside
        engine.save_checkpoint(...)
"""
from __future__ import annotations

import contextlib
import errno
import re
import shutil
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input or environment, explained in one line."""


class EnvironmentFault(Exception):
    """The machine refused something (a write) and no errno says why; one line, exit 3."""


# How the writers report a failed write without an OSError: torch's zip writer (a RuntimeError
# "PytorchStreamWriter failed writing file ..." or "... unexpected pos N vs M") and safetensors'
# Rust writer (SafetensorError "... IoError(Os { code: 28, kind: StorageFull ... })").
_WRITE_FAILED = re.compile(r"PytorchStreamWriter failed|unexpected pos \d+|file write failed|"
                           r"IoError|Os \{ code: \d+")
_OS_CODE = re.compile(r"Os \{ code: (\d+)")
LOW_SPACE = 64 << 20


def write_fault(path, exc: BaseException) -> Exception | None:
    """The environment error behind a writer's failure to write `path`, or None (not a write)."""
    text = str(exc)
    if isinstance(exc, OSError) or not _WRITE_FAILED.search(text):
        return None
    code = _OS_CODE.search(text)
    if code:
        number = int(code.group(1))
        return OSError(number, errno.errorcode.get(number, "write failed"), str(path))
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        free = None
    if free is not None and free < LOW_SPACE:
        return OSError(errno.ENOSPC, "No space left on device", str(path))
    return EnvironmentFault(f"writing {path} failed ({text.strip().splitlines()[0][:120]}): the "
                            "file system refused the write (a quota or a file-size limit?); fix "
                            "it, then run the same command again (finished work is kept)")


@contextlib.contextmanager
def writing(path):
    """Turn a writer's failure to write `path` into the environment error it is (exit 3)."""
    try:
        yield
    except Exception as exc:
        fault = write_fault(path, exc)
        if fault is None:
            raise
        raise fault from exc
