"""Fixtures for the scoring tests: offline hub access, NLTK data, the MiniLM model."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    # Scoring must never reach a hub; a stray download attempt fails fast instead of hanging.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _need(reason: str):
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def nltk_ready():
    """WordNet and punkt_tab, prepared from local sources if needed (scripts/install.sh does it)."""
    from musilingo.evaluate.wordnet import ensure_nltk_data

    status = ensure_nltk_data(prepare=True)
    if status.wordnet is None:
        _need(f"METEOR needs WordNet: {status.wordnet_reason}")
    if status.punkt is None:
        _need(f"lp-musiccaps METEOR needs punkt_tab: {status.punkt_reason}")
    return status


@pytest.fixture(scope="session")
def minilm_folder():
    from musilingo.evaluate.bertscore import BertScoreUnavailable, minilm_folder

    try:
        return minilm_folder()
    except BertScoreUnavailable as exc:
        _need(str(exc))
