"""Atomic file writes: a reader sees the old file or the new one, never half of one.

    atomic_write(folder / "config.yaml", text)          # str or bytes
    with atomic_path(folder / "adapter.safetensors") as tmp:
        save_file(state, str(tmp))                       # any writer that takes a path

Every file the project keeps (adapters, LoRA weights, run configs, resume markers, cache
objects, evaluation records) is written to `temp_path(target)` in the same folder, flushed to
disk, and renamed over the target. A write that fails (a full disk, a quota) removes its
temporary file and raises the environment error it is (`errors.writing`: exit 3); a process
killed mid-write leaves a dot-file that the next write of the same target from the same process
id replaces. Folders that are published whole (a resume state, an export, a model folder) use
the same temporary name and one rename of the folder.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from .errors import writing

_TEMPORARY = re.compile(r"^\..+\.tmp\d*$")  # temp_path's names: .<target>.tmp[<pid>]


def temp_path(target: str | Path, *, shared: bool = False) -> Path:
    """The temporary name a write of `target` goes to first: a hidden sibling, this process's
    own, or (`shared`) one name that every process of a job writing parts of it agrees on."""
    target = Path(target)
    return target.with_name(f".{target.name}.tmp" + ("" if shared else str(os.getpid())))


def is_temporary(name: str) -> bool:
    """Whether a file or folder name is a `temp_path` name (a write that never finished)."""
    return name.startswith(".") and _TEMPORARY.match(name) is not None


def sweep_temporaries(folder: str | Path, subfolders=(".",)) -> int:
    """Remove what writes killed before their rename left in `folder`'s `subfolders` (files and
    folders with `temp_path` names); returns how many. Only the one process writing the folder
    may call this: another writer's live temporary would go."""
    import shutil

    swept = 0
    for sub in subfolders:
        where = Path(folder) / sub
        if not where.is_dir():
            continue
        for entry in os.scandir(where):
            if is_temporary(entry.name):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
                swept += 1
    return swept


def _sync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(target: str | Path):
    """Yield a temporary path to write `target` to; on success it replaces `target`."""
    target = Path(target)
    tmp = temp_path(target)
    try:
        with writing(tmp):
            yield tmp
            _sync(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write(target: str | Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
