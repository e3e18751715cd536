"""The encoder contract every music encoder fulfils.

    class MyEncoder(Encoder): ...          # encoders/hubert.py (transformers), encoders/musicnn.py

Extraction, the cache, training and inference see an encoder only through `Encoder`: a sample
rate, a frame rate, `num_frames(samples)`, `min_samples`, L+1 hidden states of width
`hidden_size`, `encode` / `encode_pooled`, and `identity()`, which the cache records (what the
encoder is, config and weights hashes, its input processing) and compares on resume.
"""
from __future__ import annotations

import hashlib
import json

import typing

import numpy as np
import torch

from ...vocabulary import Normalize

NORMALIZE_CHOICES = typing.get_args(Normalize)


class Encoder(torch.nn.Module):
    """The encoder contract. A subclass sets `model` (a frozen torch module), `name`, `loader`,
    `normalize`, `sample_rate`, `frame_rate`, `hidden_size`, `num_hidden_states`, `architecture`
    and `preprocessing`, and implements `num_frames`, `min_samples`, `_inputs` (equal-length
    waves -> the model's input tensor) and `hidden_states` (input -> the L+1 states
    [batch, frames, dim], each through `transform` as soon as it exists)."""

    architecture = "unknown"
    preprocessing = ""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _check_waves(self, waves) -> list[np.ndarray]:
        waves = [np.asarray(w, dtype=np.float32) for w in waves]
        if len({len(w) for w in waves}) != 1:
            raise ValueError("encode() needs equal-length waves; batch segments by length")
        if len(waves[0]) < self.min_samples:
            raise ValueError(f"audio shorter than one encoder frame ({self.min_samples} samples)")
        return waves

    @torch.inference_mode()
    def encode(self, waves: np.ndarray | list[np.ndarray]) -> torch.Tensor:
        """Equal-length float32 waves at `sample_rate` -> float32 [batch, L+1, frames, dim]."""
        return torch.stack(self.hidden_states(self._inputs(waves)), dim=1).float()

    @torch.inference_mode()
    def encode_pooled(self, waves, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Equal-length waves -> (float32 window means [batch, L+1, W, dim] on the encoder's
        device, int32 frame counts [W]): what the cache stores. Each hidden state is pooled the
        moment its layer produces it, so memory holds L+1 pooled states, never L+1 full ones
        (a 30 s MERT-330M batch of 8 would otherwise stack 1.8 GB of float32)."""
        from ...features.pooling import window_pool

        counts = []

        def pool(hidden):
            means, c = window_pool(hidden.float(), stride)
            counts.append(c)
            return means

        means = self.hidden_states(self._inputs(waves), transform=pool)
        return torch.stack(means, dim=1), counts[0]

    def config_dict(self) -> dict:
        """The architecture's configuration (hashed into `identity()`)."""
        raise NotImplementedError

    def identity(self) -> dict:
        """What makes two caches comparable: the encoder's name, config hash and weights hash
        (computed once: hashing MERT-330M's weights takes seconds), what it is and how its
        input is prepared."""
        if getattr(self, "_identity", None) is None:
            cfg = self.config_dict()
            config_hash = hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode())
            h = hashlib.sha256()
            for key, tensor in sorted(self.model.state_dict().items()):
                h.update(key.encode())
                h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
            self._identity = {
                "encoder": self.name, "architecture": self.architecture,
                "config_sha256": config_hash.hexdigest()[:16],
                "weights_sha256": h.hexdigest()[:16], "sample_rate": self.sample_rate,
                "frame_rate": self.frame_rate, "hidden_size": self.hidden_size,
                "num_hidden_states": self.num_hidden_states, "normalize": self.normalize,
                "loader": self.loader, "preprocessing": self.preprocessing}
        return dict(self._identity)
