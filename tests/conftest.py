"""Fixtures shared across the test packages.

- `shared_data`: the real third-party test data (below).
- `tiny_encoder`: the built-in random MERT-layout encoder, loaded once.
- `audio_dir`, `run_dir`, `predictor`, `cache_dir`: short generated audio, a run folder as
  `musilingo train` writes it (random tiny-llama adapter, stride 65 re-pooled to t = 325, weights
  scaled up so that what the model hears visibly changes what it writes), its Predictor, and a
  stride-65 cache of the clips. Generation is capped at a few tokens: a random LM never writes
  `###` by itself.
- `nltk_ready`, `minilm_folder`: METEOR's WordNet and the offline BERTScore model.
- Every test runs offline: a stray hub download fails fast instead of hanging.

`shared_data` points at the real third-party test data that sits beside the project
(`../shared/data`, or `$MUSILINGO_SHARED_DATA`). It is never copied into the repo (its licences
allow testing, not shipping). In a user's clone it is absent and the tests that need it skip with
the reason; in CI (`CI=true`) it is present, and its absence is a failure, not a skip.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import soundfile as sf

from tests.helpers.runs import CLIPS, MAX_NEW, save_run, tone

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MUSILINGO_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "SOURCES.md").is_file():
        msg = (f"real test data not found at {SHARED} (set MUSILINGO_SHARED_DATA to the folder "
               "holding SOURCES.md)")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED


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


@pytest.fixture(scope="session")
def tiny_encoder():
    from musilingo.models.encoders.hubert import FrozenEncoder

    return FrozenEncoder.load("tiny")


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory):
    """long.wav (65 s, 16 kHz: resampled), and 3 s clips yt_a..yt_d (24 kHz) in clips/."""
    root = tmp_path_factory.mktemp("audio")
    sf.write(root / "long.wav", tone(65.0, 16000, 220.0, 0), 16000)
    (root / "clips").mkdir()
    for i, name in enumerate(CLIPS):
        sf.write(root / "clips" / f"{name}.wav", tone(3.0, 24000, 110.0 * (i + 2), i + 1), 24000)
    return root


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, tiny_encoder):
    meta = dict(tiny_encoder.identity(), encoder="tiny")
    return save_run(tmp_path_factory.mktemp("run") / "run", encoder_dim=tiny_encoder.hidden_size,
                    num_layers=tiny_encoder.num_hidden_states, encoder_meta=meta)


@pytest.fixture(scope="session")
def predictor(run_dir):
    from musilingo.infer import GenerationConfig, Predictor

    return Predictor.load(run_dir, generation=GenerationConfig(max_new_tokens=MAX_NEW),
                          batch_size=4)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory, audio_dir, tiny_encoder):
    """A stride-65 feature cache of clips/ (the clip ids are the file stems)."""
    from musilingo.extract.job import ExtractConfig, run_extract
    from musilingo.extract.plan import clips_from_paths

    out = tmp_path_factory.mktemp("cache") / "clips.zarr"
    clips = clips_from_paths(sorted((audio_dir / "clips").glob("*.wav")), root=audio_dir / "clips")
    cfg = ExtractConfig(out=str(out), stride=65, segment_seconds=30.0, storage_dtype="float32",
                        decode_workers=0, progress=False, threads=None)
    run_extract(clips, cfg, {"name": "test"}, encoder=tiny_encoder, log=lambda *_: None)
    return out
