"""The trainable part: pooled encoder features -> audio tokens in the LLM's embedding space.

    adapter = build_adapter(config)        # config: models.adapter_config.AdapterConfig
    tokens, mask = adapter(features, counts)    # [B, L+1, W, D] + [B, W] -> [B, G, llm_dim]

Every kind shares the frame of `AudioAdapter`: layer aggregation (the paper's plain mean of all
L+1 hidden states, or learned softmax weights initialised to that mean), pooling of the cache's
windows of `stride` frames into tokens of `t` frames, a fixed per-dimension standardisation
(identity until fitted on the training clips), and a network onto the LLM's width whose last
Linear is always `proj` (a linear adapter's tensors keep the reference code's names). Mean over
layers, over windows and the linear map commute, which is why a pooled cache is exact.

A kind is a subclass that overrides what differs (its layers, `project`, `pool`) and states its
own rule in `check`, plus one row in `adapter_config.ADAPTERS`:
- `LinearAdapter`: one Linear (the paper);
- `MLPAdapter`: Linear, GELU, Linear, as LLaVA-1.5's projector and OpenMU use;
- `ResamplerAdapter`: in each t-window a learned query attends over the cache's finer
  sub-windows (window-level, as SALMONN's Q-Former attends within each window), then the Linear.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..features.pooling import repool
from .adapter_config import AdapterConfig


class AudioAdapter(nn.Module):
    """[B, L+1, W, D] window means at `stride` + counts [B, W] -> [B, G, llm_dim] tokens + mask."""

    # Whether mean re-pooling is all `pool` does: then features of any stride dividing t are
    # read exactly (the model re-pools them), not only the stride it was trained on.
    repools = True

    def __init__(self, config: AdapterConfig):
        super().__init__()
        if config.llm_dim is None:
            raise ValueError("the adapter's config needs llm_dim (the LLM's width)")
        self.config = config
        # Zeros -> softmax gives equal weights, i.e. exactly the paper's mean at initialisation.
        self.layer_logits = (nn.Parameter(torch.zeros(config.num_layers))
                             if config.layer_aggregation == "learned" else None)
        # Fixed standardisation of the pooled features (identity unless fitted): features of a
        # random or real encoder have per-dimension scales far from 1 (docs/REFERENCE.md section 6).
        self.register_buffer("feature_mean", torch.zeros(config.encoder_dim))
        self.register_buffer("feature_std", torch.ones(config.encoder_dim))
        self.build_layers(config.encoder_dim, config.llm_dim)  # (in the kind's order: seeded)

    @classmethod
    def check(cls, config: AdapterConfig) -> None:
        """This kind's own rule on its config (a one-line UserError); none by default."""

    def build_layers(self, encoder_dim: int, llm_dim: int) -> None:
        self.proj = nn.Linear(encoder_dim, llm_dim)

    @property
    def factor(self) -> int:
        return self.config.factor

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.feature_mean.float()) / self.feature_std.float()

    def aggregate(self, features: torch.Tensor) -> torch.Tensor:
        """[B, L+1, W, D] -> [B, 1, W, D] float32: the layer mean or the learned weighting."""
        self.config.check_features(layers=features.shape[1], dim=features.shape[-1])
        x = features.float()
        if self.layer_logits is None:
            return x.mean(dim=1, keepdim=True)
        w = torch.softmax(self.layer_logits.float(), dim=0)
        return torch.einsum("l,blwd->bwd", w, x).unsqueeze(1)

    def pool(self, x: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, 1, W, D] aggregated windows -> standardised [B, G, D] tokens, counts [B, G]."""
        x, c = repool(x, counts, self.factor)
        return self.standardize(x[:, 0]), c

    def pooled(self, features: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer aggregation and pooling: [B, G, D] float32 adapter inputs and counts [B, G]."""
        return self.pool(self.aggregate(features), counts)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)

    def forward(self, features: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, c = self.pooled(features, counts)
        return self.project(x.to(self.proj.weight.dtype)), c > 0


class LinearAdapter(AudioAdapter):
    """One Linear(encoder_dim, llm_dim): the paper's adapter."""


class MLPAdapter(AudioAdapter):
    """Linear(encoder_dim, llm_dim) `hidden`, GELU, Linear(llm_dim, llm_dim) `proj`."""

    def build_layers(self, encoder_dim: int, llm_dim: int) -> None:
        self.hidden = nn.Linear(encoder_dim, llm_dim)
        self.proj = nn.Linear(llm_dim, llm_dim)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.hidden(x)))


class ResamplerAdapter(AudioAdapter):
    """A learned query attends over each t-window's sub-windows, then the Linear."""

    repools = False  # its keys were learned on sub-windows of the trained stride
    DIM = 64  # width of the query and keys

    @classmethod
    def check(cls, config: AdapterConfig) -> None:
        if config.factor == 1:
            raise UserError(f"adapter=resampler attends over the cache's sub-windows of each "
                            f"t-window, but stride {config.stride} = t {config.t} leaves one: use "
                            "a cache extracted with a smaller stride (e.g. t/5), or "
                            "adapter=linear")

    def build_layers(self, encoder_dim: int, llm_dim: int) -> None:
        # Zero keys: every score equal, so at initialisation the attention is exactly the
        # count-weighted mean, i.e. the linear adapter's re-pooling (see pool).
        self.query = nn.Parameter(torch.randn(self.DIM) / math.sqrt(self.DIM))
        self.keys = nn.Linear(encoder_dim, self.DIM, bias=False)
        nn.init.zeros_(self.keys.weight)
        self.proj = nn.Linear(encoder_dim, llm_dim)

    def pool(self, x: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, 1, W, D] sub-windows -> [B, G, D]: each group of `factor` sub-windows weighted by
        the softmax of query . keys(sub-window) + log(count). The log count makes equal scores
        give the count-weighted mean, so the learned part only moves weight between
        sub-windows; empty sub-windows (count 0) get none, and an empty group comes out as
        zeros."""
        x = self.standardize(x[:, 0])
        b, w, d = x.shape
        groups = math.ceil(w / self.factor)
        pad = groups * self.factor - w
        x = F.pad(x, (0, 0, 0, pad)).unflatten(1, (groups, self.factor))          # [B, G, k, D]
        c = F.pad(counts, (0, pad)).unflatten(1, (groups, self.factor)).float()  # [B, G, k]
        keys = self.keys(x.to(self.keys.weight.dtype)).float()
        scores = keys @ self.query.float() / math.sqrt(self.DIM) + c.clamp(min=1).log()
        weights = torch.softmax(scores.masked_fill(c == 0, float("-inf")), dim=-1)
        total = c.sum(-1)
        pooled = (weights.nan_to_num(0.0)[..., None] * x).sum(-2)
        return pooled.masked_fill(total[..., None] == 0, 0.0), total.to(torch.int32)


def build_adapter(config: AdapterConfig) -> AudioAdapter:
    """The adapter `config` describes (its kind's class from the registry), checked first."""
    return config.validate().module_class()(config)
