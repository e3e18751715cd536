"""Building a built-in model folder safely: a private build folder, our own weight writer, an
atomic publish.

    tmp = tmp_folder(folder); save_model(model, tmp); tokenizer.save_pretrained(tmp)
    publish(tmp, folder)            # one rename; a concurrent builder's identical copy may win

Used by the LLM presets (`llm.py`: SmolLM2 converted from its GGUF, tiny-llama) and `tiny-lm`
(`tiny_lm.py`), which torchrun ranks may all build at once on first use.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def tmp_folder(folder: Path) -> Path:
    """A build folder of this process alone: torchrun ranks build a missing preset together, and
    a shared temporary name let one rank publish a folder another was still writing into."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))


def save_model(model, tmp: Path) -> None:
    """config + generation config + model.safetensors, written by THIS process.

    Not `model.save_pretrained`: once torch.distributed is initialised it writes weights on rank 0
    only, so a torchrun rank building a preset would publish a folder without weights."""
    from safetensors.torch import save_file

    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(tmp)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(tmp)
    state = model.state_dict()
    if model.config.tie_word_embeddings:  # one tensor, stored once (as transformers does)
        state.pop("lm_head.weight", None)
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"),
              metadata={"format": "pt"})


def publish(tmp: Path, folder: Path) -> Path:
    """Move a finished build folder into place (atomic); a concurrent builder's copy may win."""
    try:
        os.rename(tmp, folder)
    except OSError:  # the folder exists (another process finished first): identical, keep it
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
