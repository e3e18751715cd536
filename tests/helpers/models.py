"""Adapters and models for tests, from the keyword arguments tests read best."""
from __future__ import annotations

from musilingo.models.adapter_config import AdapterConfig
from musilingo.models.adapters import build_adapter
from musilingo.models.musilingo import MusiLingo

BUILD = ("dtype", "device", "trust_remote_code", "seed")


def adapter(encoder_dim: int, llm_dim: int, num_layers: int, *, stride: int, t: int = 325,
            aggregation: str = "mean", kind: str = "linear"):
    """An `AudioAdapter` of the given widths, built from its `AdapterConfig` as a run builds it."""
    return build_adapter(AdapterConfig(llm="none", encoder_dim=encoder_dim, llm_dim=llm_dim,
                                       num_layers=num_layers, stride=stride, t=t, kind=kind,
                                       layer_aggregation=aggregation))


def build_model(llm: str, *, aggregation: str = "mean", **kw) -> MusiLingo:
    """`MusiLingo.build` of the `AdapterConfig` these keywords describe (`encoder` is the
    encoder identity; dtype, device, trust_remote_code and seed go to the build)."""
    build = {k: kw.pop(k) for k in BUILD if k in kw}
    if "encoder" in kw:
        kw["encoder"] = dict(kw["encoder"] or {})
    return MusiLingo.build(AdapterConfig(llm=llm, layer_aggregation=aggregation, **kw), **build)
