"""Helpers shared by the inference, scoring and web-app tests (fixtures: tests/conftest.py)."""
from __future__ import annotations

import numpy as np
import torch
from tests.helpers.models import build_model

MAX_NEW = 6   # generated tokens per answer: a random LM never writes `###` by itself
CLIPS = ("yt_a", "yt_b", "yt_c", "yt_d")


def tone(seconds: float, rate: int, freq: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    wave = 0.4 * np.sin(2 * np.pi * freq * t * (1 + 0.1 * np.sin(t))) + 0.05 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def save_run(folder, *, encoder_dim: int, num_layers: int, encoder_meta: dict, seed: int = 0,
             scale: float = 5.0, template: str = "instruct", kind: str = "linear",
             aggregation: str = "mean"):
    """A run folder as the trainer writes it, from a freshly built (random) adapter."""
    from musilingo.models.prompts import get_template
    from musilingo.runs.adapter_file import save_adapter

    model = build_model("tiny-llama", encoder_dim=encoder_dim, num_layers=num_layers,
                        stride=65, t=325, template=get_template(template),
                        encoder=encoder_meta, seed=seed, kind=kind, aggregation=aggregation)
    with torch.no_grad():
        model.adapter.proj.weight.mul_(scale)
    state = {k: v for k, v in model.adapter.state_dict().items()}
    save_adapter(folder, model.config, state)
    return folder
