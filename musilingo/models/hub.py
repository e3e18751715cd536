"""Files of a model given as a local folder or a Hugging Face hub id, fetched one by one.

    path = model_file("m-a-p/MusiLingo-short-v1", "config.json")   # cached download, or None
    path = model_file("/models/vicuna-7b", "tokenizer.model")        # the local file, or None

Callers that need only some files of a large repository (a tokenizer, an adapter's shard) ask
for those; nothing here downloads a whole snapshot. With no network (or HF_HUB_OFFLINE=1), a hub
id answers from the local hub cache or not at all.

Without a network, huggingface_hub retries every request with back-off (about 23 s per file,
over a minute and a half for one LLM) before the error. So the hub is probed once per process
(one TCP connection, 3 s at most): when it cannot be reached, this process goes offline (cached
files load at once), and `require_model` refuses a model that is neither local nor cached at
once, naming the setting that avoids the download.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import UserError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TRUE = ("1", "true", "yes", "on")
_reachable: bool | None = None


def offline_by_setting() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _go_offline() -> None:
    """This process stops asking the network (huggingface_hub reads the constant per call)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True
    except ImportError:  # pragma: no cover - huggingface_hub is a transformers dependency
        pass


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub (HF_ENDPOINT, default huggingface.co) accepts a connection; once per
    process. Behind a proxy the answer is assumed yes: the proxy, not us, reaches the hub."""
    global _reachable
    if _reachable is False or offline_by_setting():
        return False
    if _reachable is None:
        import socket
        from urllib.parse import urlparse

        if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")):
            _reachable = True
        else:
            url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
            port = url.port or (80 if url.scheme == "http" else 443)
            try:
                socket.create_connection((url.hostname, port), timeout=timeout).close()
                _reachable = True
            except OSError:
                _reachable = False
        if not _reachable:
            _go_offline()
    return _reachable


def _cached(source: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    return any(isinstance(try_to_load_from_cache(source, name), str)
               for name in ("config.json", "tokenizer_config.json", "preprocessor_config.json"))


def require_model(source: str, what: str, instead: str) -> None:
    """Nothing, when `source` is a local path, a hub id the cache holds, or a hub id and the hub
    answers; else one line now (not after a minute of retries) naming `instead`."""
    if is_local(source) or not HUB_ID.match(source) or hub_reachable() or _cached(source):
        return
    why = "the hub cannot be reached" if _reachable is False else "HF_HUB_OFFLINE is set"
    raise UserError(f"{what} {source!r} is neither a local folder nor in the Hugging Face cache, "
                    f"and {why}: download it where there is a network (`hf download {source}`), "
                    f"or {instead}")


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
