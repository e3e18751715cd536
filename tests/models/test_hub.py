"""A hub id that cannot be had here fails at once, naming the setting that avoids the download,
instead of a minute and a half of hub retries (the shipped recipes name lmsys/vicuna-7b-v1.5)."""
from __future__ import annotations

import socket

import pytest

from musilingo.errors import UserError
from musilingo.models import hub


@pytest.fixture
def fresh_hub(monkeypatch, tmp_path):
    monkeypatch.setattr(hub, "_reachable", None)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):   # restored after the test, even
        monkeypatch.setenv(name, "0")                          # when the probe sets it
        monkeypatch.delenv(name)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))       # an empty hub cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", constants.HF_HUB_OFFLINE)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_offline_setting_refuses_an_uncached_llm_at_once(fresh_hub, monkeypatch):
    from musilingo.models.llm import resolve_llm

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"LLM 'lmsys/vicuna-7b-v1.5' is neither a local folder "
                                        r"nor in the Hugging Face cache, and HF_HUB_OFFLINE is "
                                        r"set.*llm=smollm2"):
        resolve_llm("lmsys/vicuna-7b-v1.5")


def test_an_unreachable_hub_is_found_once_and_the_process_goes_offline(fresh_hub, monkeypatch):
    from huggingface_hub import constants

    from musilingo.models.encoders.hubert import resolve_encoder

    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(UserError, match=r"encoder 'm-a-p/MERT-v1-330M' .*the hub cannot be "
                                        r"reached.*--encoder tiny"):
        resolve_encoder("mert-330m")
    assert hub._reachable is False and constants.HF_HUB_OFFLINE is True
    assert resolve_encoder("tiny")                     # built locally: still fine


def test_a_reachable_endpoint_is_left_to_the_hub_client(fresh_hub, monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        hub.require_model("lmsys/vicuna-7b-v1.5", "LLM", "x")   # no error: the hub may have it
        assert hub._reachable is True
    finally:
        server.close()
