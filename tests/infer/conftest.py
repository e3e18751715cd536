"""Fixtures for the inference tests: the tiny encoder, short generated audio, and a run folder.

The run folder is what `musilingo train` writes (adapter.safetensors + adapter_config.json via
`models.adapter_file.save_adapter`), made directly from `MusiLingo.build` with tiny-llama and the tiny
encoder's dimensions, pooled at stride 65 and re-pooled to t = 325 (so the exact re-pooling path
runs). Its weights are random, scaled up so that what the model hears visibly changes what it
writes. Generation is capped at a few tokens: a random LM never writes `###` by itself.
"""
from __future__ import annotations

import pytest
import soundfile as sf

from infer_helpers import CLIPS, MAX_NEW, save_run, tone


@pytest.fixture(scope="session")
def encoder():
    from musilingo.models.encoder import FrozenEncoder

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
def run_dir(tmp_path_factory, encoder):
    meta = dict(encoder.identity(), encoder="tiny")
    return save_run(tmp_path_factory.mktemp("run") / "run", encoder_dim=encoder.hidden_size,
                    num_layers=encoder.num_hidden_states, encoder_meta=meta)


@pytest.fixture(scope="session")
def predictor(run_dir):
    from musilingo.infer import GenerationConfig, Predictor

    return Predictor.load(run_dir, generation=GenerationConfig(max_new_tokens=MAX_NEW),
                          batch_size=4)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory, audio_dir, encoder):
    """A stride-65 feature cache of clips/ (the clip ids are the file stems)."""
    from musilingo.extract.job import ExtractConfig, run_extract
    from musilingo.extract.plan import clips_from_paths

    out = tmp_path_factory.mktemp("cache") / "clips.zarr"
    clips = clips_from_paths(sorted((audio_dir / "clips").glob("*.wav")), root=audio_dir / "clips")
    cfg = ExtractConfig(out=str(out), stride=65, segment_seconds=30.0, dtype="float32",
                        num_workers=0, progress=False, threads=None)
    run_extract(clips, cfg, {"name": "test"}, encoder=encoder, log=lambda *_: None)
    return out
