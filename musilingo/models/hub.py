"""Files of a model given as a local folder or a Hugging Face hub id, fetched one by one.

    path = model_file("m-a-p/MusiLingo-short-v1", "config.json")   # cached download, or None
    path = model_file("/models/vicuna-7b", "tokenizer.model")        # the local file, or None

Callers that need only some files of a large repository (a tokenizer, an adapter's shard) ask
for those; nothing here downloads a whole snapshot. With no network (or HF_HUB_OFFLINE=1), a hub
id answers from the local hub cache or not at all.
"""
from __future__ import annotations

from pathlib import Path


def is_local(source: str) -> bool:
    return Path(source).expanduser().exists()


def model_file(source: str, name: str) -> str | None:
    """The path of `name` in a local folder or hub repository; None when it has no such file."""
    local = Path(source).expanduser()
    if local.is_dir():
        return str(local / name) if (local / name).is_file() else None
    if local.exists():  # a file, not a folder: it holds no named files
        return None
    try:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(source, name)
    except Exception:  # no such file in the repository, no such repository, or no network
        return None
