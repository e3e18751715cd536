"""The models home, and the one way a built-in model folder is made there.

    folder = models_home() / "encoders" / "tiny-mert-v1"
    build_folder(folder, lambda tmp: write_my_model(tmp), what="the tiny encoder")

Built-in models (the `tiny` encoder, musicnn converted from its TF checkpoints, SmolLM2 converted
from GGUF, `tiny-llama`, the pre-trained `tiny-lm`) are materialised once under
$MUSILINGO_HOME (default ~/.cache/musilingo) and then load like any downloaded model folder.

`build_folder` is the only builder. torchrun ranks (and unrelated processes) often ask for the
same missing folder at once, so:
- one process builds, under an exclusive file lock beside the folder; the others wait on the lock
  (saying so), then find the finished folder and build nothing;
- the build writes into a private temporary folder with `save_model`, our own weight writer, and
  is published with one atomic rename. Not `model.save_pretrained`: once torch.distributed is
  initialised it writes weights on rank 0 only, so a rank > 0 would publish a folder without them;
- the build records the sha256 of every file it wrote (`musilingo_build.json`), and every later
  use checks them (once per process): an edited or damaged file is refused with one line that
  names the folder and the `rm -r` that rebuilds it. A folder without the record (an older
  version's) is rebuilt.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import UserError
from ..files import temp_path

# Beside a built model's files: the sha256 of each, written at build time and checked at load.
BUILD_RECORD = "musilingo_build.json"


def models_home() -> Path:
    """Where built-in models are materialised ($MUSILINGO_HOME, default ~/.cache/musilingo)."""
    # An empty MUSILINGO_HOME (an unset shell variable expanded) means the default, not the cwd.
    return Path(os.environ.get("MUSILINGO_HOME") or Path.home() / ".cache" / "musilingo")


def build_folder(folder: Path, build: Callable[[Path], object], *, what: str,
                 done: str = "config.json", note: str = "") -> Path:
    """`folder`, built by `build(tmp)` once if it has no `done` file; returns the folder.

    Exactly one process runs `build` (an exclusive lock on `.<name>.lock` beside the folder);
    the others wait for it and reuse its folder. `note` is printed to stderr before a build (what
    happens and how long it takes), so a first use never looks like a hang."""
    folder = Path(folder)
    if _built(folder, done):
        return check_built(folder, what)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process that is building {what} into {folder}",
                  file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if _built(folder, done):
                return check_built(folder, what)   # built by the process we waited for
            if note:
                print(f"first use of {what}: {note} into {folder}", file=sys.stderr, flush=True)
            tmp = tmp_folder(folder)
            try:
                build(tmp)
                if not (tmp / done).is_file():
                    raise RuntimeError(f"building {what} wrote no {done}")
                _write_record(tmp, what)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if folder.exists():  # unfinished, or from a version that kept no record: replace
                shutil.rmtree(folder)
            os.rename(tmp, folder)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


def _built(folder: Path, done: str) -> bool:
    """Finished (its `done` file) and from a version that records what it built."""
    return (folder / done).is_file() and (folder / BUILD_RECORD).is_file()


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != BUILD_RECORD)


def _write_record(tmp: Path, what: str) -> None:
    import json

    files = {p.relative_to(tmp).as_posix(): _sha256(p) for p in _files(tmp)}
    (tmp / BUILD_RECORD).write_text(json.dumps({"what": what, "sha256": files}, indent=1) + "\n")


# (folder, record mtime) checked by this process: a model loaded twice is hashed once.
_CHECKED: set = set()


def check_built(folder: Path, what: str) -> Path:
    """`folder` if every file is the one this tool built (sha256 recorded at build time); else
    one line naming the folder and how to rebuild it. An edited or damaged model must never be
    used silently: a cache would record its new weights hash under the same encoder name."""
    import json

    record = folder / BUILD_RECORD
    key = (str(folder.resolve()), record.stat().st_mtime_ns)
    if key in _CHECKED:
        return folder
    fix = f"remove it to have it rebuilt: rm -r {folder}"
    try:
        want = json.loads(record.read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{folder}: {what} has an unreadable {BUILD_RECORD}; {fix}") from None
    have = {p.relative_to(folder).as_posix() for p in _files(folder)}
    for name in sorted(set(want) | have):
        if name not in want:
            raise UserError(f"{folder}: {what} holds {name}, which its build did not write; {fix}")
        path = folder / name
        if not path.is_file() or _sha256(path) != want[name]:
            raise UserError(f"{folder}: {what}'s {name} is "
                            f"{'missing' if not path.is_file() else 'not the file it built'} "
                            f"(sha256 differs from {BUILD_RECORD}); {fix}")
    _CHECKED.add(key)
    return folder


def check_if_built(source, what: str) -> None:
    """check_built for a folder given by path, when this tool built it (it holds the record)."""
    folder = Path(str(source)).expanduser()
    if folder.is_dir() and (folder / BUILD_RECORD).is_file():
        check_built(folder, what)


def tmp_folder(folder: Path) -> Path:
    """A build folder of this process alone, beside `folder` (same file system: rename works),
    named as every temporary write is (files.temp_path). The leftovers of builds of `folder`
    killed earlier (kill -9, a closed laptop) go first: the caller holds the build lock, so no
    live build of it owns one."""
    for stale in folder.parent.glob(f".{folder.name}.tmp*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = temp_path(folder)
    tmp.mkdir(parents=True)
    return tmp


def save_model(model, tmp: Path) -> None:
    """config + generation config + model.safetensors of a transformers model, written by THIS
    process whatever its torch.distributed rank."""
    from safetensors.torch import save_file

    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(tmp)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(tmp)
    state = model.state_dict()
    if getattr(model.config, "tie_word_embeddings", False):  # one tensor, stored once
        state.pop("lm_head.weight", None)
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"),
              metadata={"format": "pt"})
