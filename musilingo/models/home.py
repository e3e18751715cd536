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
  initialised it writes weights on rank 0 only, so a rank > 0 would publish a folder without them.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


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
    if (folder / done).is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process that is building {what} into {folder}",
                  file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if (folder / done).is_file():  # built by the process we waited for
                return folder
            if note:
                print(f"first use of {what}: {note} into {folder}", file=sys.stderr, flush=True)
            tmp = tmp_folder(folder)
            try:
                build(tmp)
                if not (tmp / done).is_file():
                    raise RuntimeError(f"building {what} wrote no {done}")
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            if folder.exists():  # a damaged earlier folder (no `done` file): replace it
                shutil.rmtree(folder)
            os.rename(tmp, folder)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


def tmp_folder(folder: Path) -> Path:
    """A build folder of this process alone, beside `folder` (same file system: rename works)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))


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
