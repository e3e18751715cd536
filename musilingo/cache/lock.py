"""One extraction per cache at a time: an advisory lock held for the whole run.

    with writer_lock("cache.zarr"):      # a second `musilingo extract --out cache.zarr` is refused
        ...

Two independent extractions into one cache would each redo every pending shard (the result is
only right because extraction is deterministic) and race on the shard files. The lock is an
`flock` on `.<name>.lock` beside the cache folder (the folder itself may not exist yet), and the
file records the owner (host, pid, start time) for the refusal message. The kernel releases an
`flock` when its process dies, however it dies, so a lock can never be left stale by a kill -9; a
lock file without a live holder is simply taken over. torchrun ranks of one job share a cache:
only rank 0 takes the lock, and each rank owns its own shards.
"""
from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError


def lock_path(cache) -> Path:
    cache = Path(cache)
    return cache.with_name(f".{cache.name}.lock")


@contextmanager
def writer_lock(cache):
    """Hold the cache's writer lock for the duration of the block, or refuse in one line.

    Local caches only: an object store has no lock a killed process releases, so a remote cache
    relies on its one job (torchrun ranks of one job share it, each owning its shards)."""
    from .location import Location

    if Location(cache).remote:
        yield None
        return
    path = lock_path(cache)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EINVAL):
            raise  # permission, read-only, disk full: the CLI names the environment fault
        raise UserError(f"--out {cache}: cannot create files in {path.parent} "
                        f"({exc.strerror}): choose an --out in a folder you can write") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{cache} is being extracted by another process ({_owner(path)}): wait "
                            "for it to finish or stop it; several processes share one extraction "
                            "only as torchrun ranks of one job") from None
        owner = {"host": socket.gethostname(), "pid": os.getpid(),
                 "started": datetime.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the flock; the file stays (unlinking it would race a waiter)


def _owner(path: Path) -> str:
    try:
        owner = json.loads(path.read_text() or "{}")
        return f"pid {owner['pid']} on host {owner['host']}, since {owner['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "owner unknown"
