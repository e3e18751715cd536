"""What of a run may leave this machine (how it is written into Markdown is markdown.py's).

    hub_model("mert-330m")         # 'm-a-p/MERT-v1-330M'; a local folder -> None
    public_recipe(config_yaml)     # local paths replaced by '<local path>'

A model card and an exported config.yaml are published: every value in them came from a run
folder, and so from file names, annotation files and the command line. A folder name with a
backtick and a newline must not become a heading, raw HTML or a `javascript:` link on the Hub,
and a path on the machine that trained the run (a home folder, a private data set, a bucket)
must not be published at all. Names are shown only when they mean something elsewhere: a hub
id, a preset, a data set's hub id.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..models.hub import HUB_ID

LOCAL = "<local path>"
# Presets whose published equivalent is known (the encoders' own table is the other source).
LLM_HUB_IDS = {"smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}
_SNAPSHOT = re.compile(r"models--([^/]+)--([^/]+)/snapshots/[^/]+/?$")


def is_local(value: str) -> bool:
    """A path of this machine (absolute, relative, ~, an existing file) or an object-store URL;
    not a hub id (`org/name` that does not exist here) nor a bare preset name."""
    if not isinstance(value, str) or not value:
        return False
    if re.match(r"^[a-z][a-z0-9+.-]*://", value):
        return True
    if value.startswith(("/", "~", "./", "../")) or "\\" in value:
        return True
    if any(c.isspace() for c in value) or not ("/" in value or "." in value):
        return False  # prose (a question) or a bare name (a preset, a split, a field)
    if "/" in value and value.lower().endswith(FILE_ENDINGS):
        return True
    try:
        if Path(value).exists():
            return True
    except (OSError, ValueError):
        return True
    return "/" in value and not HUB_ID.match(value)


def hub_model(name) -> str | None:
    """The hub id a model name stands for, or None (a local folder of unknown origin)."""
    from ..models.encoders.hubert import PRESETS as ENCODERS

    if not name or not isinstance(name, str):
        return None
    known = {**ENCODERS, **LLM_HUB_IDS}
    if name in known:
        return known[name]
    snapshot = _SNAPSHOT.search(name.replace("\\", "/"))
    if snapshot:  # a folder in the hub cache: its repository is in the folder's name
        return f"{snapshot.group(1)}/{snapshot.group(2)}"
    return name if HUB_ID.match(name) and not is_local(name) else None


def public_name(name) -> str:
    """What a card may say about a model or file: its hub id, a preset, or "a local folder"."""
    if not name:
        return "?"
    return hub_model(name) or ("a local folder" if is_local(str(name)) else str(name))


def hub_datasets(training: dict) -> list[str]:
    """The hub data sets a run's recipe really read: a reader given a hub id, never one given
    the user's own file in the same format."""
    out = []
    for spec in training.get("datasets") or []:
        if not isinstance(spec, dict):
            continue
        source = spec.get("annotations")
        if isinstance(source, str) and HUB_ID.match(source) and not is_local(source):
            out.append(source)
    return list(dict.fromkeys(out))


# Recipe fields that only ever hold a place on this machine (a run folder, a cache, audio, the
# DeepSpeed config): never published, whatever they look like; `runs/s1` could pass for a hub id.
PATH_FIELDS = frozenset({"out", "cache", "audio_root", "init_adapter", "resume"})
# Endings of files, never of hub repositories (which may hold dots: `org/model-v1.5`).
FILE_ENDINGS = (".pth", ".pt", ".bin", ".safetensors", ".json", ".jsonl", ".yaml", ".yml", ".zarr",
                ".csv", ".parquet", ".wav", ".mp3", ".flac", ".h5", ".txt")


def public_recipe(value, key: str | None = None):
    """The recipe with every local path and object-store URL replaced by LOCAL."""
    if isinstance(value, dict):
        return {k: public_recipe(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public_recipe(v, key) for v in value]
    if isinstance(value, str) and (is_local(value) or (key in PATH_FIELDS and value)):
        return LOCAL
    return value
