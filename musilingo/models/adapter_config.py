"""What an adapter is, in one object: `AdapterConfig` builds the model and is adapter_config.json.

    config = AdapterConfig(llm="tiny-lm", encoder_dim=128, num_layers=3, stride=65, t=325,
                           kind="mlp", lora=LoraConfig(r=8))
    config.validate()                        # every rule, before any model is loaded
    config.check_features(layers=3, dim=128, stride=65, encoder={...}, where="cache x.zarr")
    model = MusiLingo.build(config)          # models/musilingo.py: exactly this adapter
    config.to_json() / AdapterConfig.from_json(data, where="runs/x/adapter_config.json")

Like nanoGPT's `GPTConfig(**model_args)`: the same fields describe the adapter a run trains and
the adapter a run folder holds, so nothing is read back from the training recipe. Files written
before this object existed are read too: `adapter` was `kind`, `normalized` was `standardized`,
and `"lora": "lora"` named PEFT's folder, whose own config holds the rank (runs/adapter_file.py
reads it).

Adapter kinds live in one registry, `ADAPTERS`: name -> the module class (models/adapters.py,
imported only when a model is built) and a one-line description that the CLI help, the model
card, `compare` and the demo print. A new kind is one class (a subclass of `AudioAdapter`, with
its own `check`) and one `register_adapter` row. Nothing here imports torch: the CLI's help and
the checks run before any model is loaded.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Literal

from ..errors import UserError
from ..options import check_choices
from ..vocabulary import window_factor
from .prompts import PromptTemplate, get_template

FORMAT = "musilingo-adapter/2"
FORMATS = ("musilingo-adapter/1", FORMAT)  # /1: the keys of earlier releases (read, not written)
LayerAggregation = Literal["mean", "learned"]  # the paper's mean, or learned softmax weights


@dataclass(frozen=True)
class AdapterKind:
    """One row of the adapter registry."""

    name: str
    module: str | type
    """The `AudioAdapter` subclass, or "package.module:Class" (imported when a model is built)."""
    description: str
    """One line: what the kind computes, with {encoder_dim}, {llm_dim} and {stride} where the
    widths go (CLI help, model card, compare, demo)."""

    def module_class(self) -> type:
        if isinstance(self.module, str):
            path, _, attr = self.module.partition(":")
            return getattr(importlib.import_module(path), attr)
        return self.module

    def describe(self, config: "AdapterConfig | None" = None) -> str:
        """The description, with a config's widths (Markdown), or in words (the CLI's help)."""
        if config is None:
            return self.description.replace("`", "").format(
                encoder_dim="encoder width", llm_dim="LLM width", stride="< t")
        return self.description.format(encoder_dim=config.encoder_dim, llm_dim=config.llm_dim,
                                       stride=config.stride)


ADAPTERS: dict[str, AdapterKind] = {}


def register_adapter(name: str, module: str | type, description: str) -> AdapterKind:
    """Add an adapter kind (or replace the row of that name); returns the row."""
    ADAPTERS[name] = AdapterKind(name, module, description)
    return ADAPTERS[name]


def adapter_kinds() -> tuple[str, ...]:
    return tuple(ADAPTERS)


def adapter_kinds_help() -> str:
    return "; ".join(f"{k.name}: {k.describe()}" for k in ADAPTERS.values())


register_adapter("linear", "musilingo.models.adapters:LinearAdapter",
                 "`Linear({encoder_dim}, {llm_dim})` (the paper's)")
register_adapter("mlp", "musilingo.models.adapters:MLPAdapter",
                 "`Linear({encoder_dim}, {llm_dim})`, GELU, `Linear({llm_dim}, {llm_dim})` "
                 "(LLaVA-1.5's projector)")
register_adapter("resampler", "musilingo.models.adapters:ResamplerAdapter",
                 "a learned query attending over each window's cached sub-windows (stride "
                 "{stride}), then `Linear({encoder_dim}, {llm_dim})`")


@dataclass(frozen=True)
class LoraConfig:
    """LoRA on the frozen LLM (peft): rank `r` on the Linear layers named in `targets`."""

    r: int
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("q_proj", "v_proj")

    # LoRA scales its update by alpha / r; common recipes use 1-4, rsLoRA-like ones up to ~16.
    # Far beyond, the update swamps the frozen weights and the LLM emits nothing useful.
    MAX_SCALE = 256.0

    def validate(self) -> "LoraConfig":
        if self.r < 1 or not self.alpha > 0 or not 0 <= self.dropout < 1:
            raise UserError(f"lora_rank={self.r}, lora_alpha={self.alpha}, lora_dropout="
                            f"{self.dropout}: use a rank >= 1, alpha > 0 and 0 <= dropout < 1")
        if not self.alpha / self.r <= self.MAX_SCALE:  # also NaN and inf
            raise UserError(f"lora_alpha={self.alpha} with lora_rank={self.r} scales the LoRA "
                            f"update by {self.alpha / self.r:g}: use lora_alpha <= "
                            f"{self.MAX_SCALE:g} x lora_rank (commonly 1-2 x)")
        if not self.targets:
            raise UserError("lora_targets is empty: name the LLM's Linear layers that get LoRA "
                            "(e.g. q_proj,v_proj)")
        return self

    @classmethod
    def parse(cls, r: int, alpha: float, dropout: float, targets: str) -> "LoraConfig | None":
        """The LoRA of the flat training options (`lora_rank` 0: none)."""
        if not r:
            return None
        names = tuple(t.strip() for t in str(targets or "").split(",") if t.strip())
        return cls(int(r), float(alpha), float(dropout), names).validate()

    def to_json(self) -> dict:
        return {"r": self.r, "alpha": self.alpha, "dropout": self.dropout,
                "targets": list(self.targets)}


@dataclass
class AdapterConfig:
    """Everything that decides what an adapter computes, and with which models."""

    llm: str
    encoder_dim: int
    num_layers: int
    """Hidden states per feature (L+1)."""
    stride: int
    """Encoder frames per window of the features the adapter reads (the cache's stride)."""
    t: int = 325
    """Encoder frames per audio token (a multiple of `stride`)."""
    kind: str = "linear"
    layer_aggregation: LayerAggregation = "mean"
    llm_dim: int | None = None
    """The LLM's width; None until the LLM is known."""
    standardized: bool = False
    """Whether feature_mean/feature_std hold fitted statistics (else identity)."""
    template: PromptTemplate = field(default_factory=lambda: get_template("instruct"))
    encoder: dict = field(default_factory=dict)
    """The identity of the encoder the features came from (cache metadata "encoder")."""
    lora: LoraConfig | None = None
    imported_from: str | None = None

    @property
    def factor(self) -> int:
        """Feature windows per audio token."""
        return self.t // self.stride

    def describe(self) -> str:
        """What this adapter computes, with its widths (Markdown): the registry's line."""
        return ADAPTERS[self.kind].describe(self)

    def module_class(self) -> type:
        return ADAPTERS[self.kind].module_class()

    def validate(self) -> "AdapterConfig":
        """Every rule of this adapter (a one-line UserError), before any model is loaded."""
        if self.kind not in ADAPTERS:
            raise UserError(f"adapter={self.kind!r}: use one of {', '.join(ADAPTERS)}")
        check_choices(self)  # the layer aggregation
        window_factor(self.t, self.stride)
        if self.lora is not None:
            self.lora.validate()
        self.module_class().check(self)
        return self

    # ------------------------------------------------------------------ features
    def check_features(self, *, layers: int, dim: int, stride: int | None = None,
                       encoder: dict | None = None, where: str = "features",
                       run: str = "the adapter", restride: bool = True) -> None:
        """A UserError unless features of (`layers`, `dim`, `stride`, `encoder` identity) are
        what this adapter reads: the one fit check of training, inference, init_adapter and
        the model's own forward. A stride other than the trained one is read when it divides t
        and the kind only re-pools (the model is then built for it: `load_model(stride=)`), and
        `restride` says the caller can do that (one training run reads one stride); `stride`
        None: not known yet (audio, encoded at the adapter's own stride)."""
        if dim != self.encoder_dim:
            raise UserError(f"{run}: the adapter expects features {self.encoder_dim} wide "
                            f"(encoder_dim), but {where} gives {dim}: the adapter was trained on "
                            "another encoder; use that encoder or its cache")
        if layers != self.num_layers:
            raise UserError(f"{run}: the adapter expects {self.num_layers} hidden states "
                            f"(num_layers), but {where} gives {layers}: use the encoder the "
                            "adapter was trained with")
        if stride is not None and stride != self.stride:
            if not restride:
                raise UserError(f"{run} reads windows of stride {self.stride}, but {where} has "
                                f"stride {stride}: mixed data sets need caches made with one "
                                "stride")
            window_factor(self.t, stride, t_name=f"the adapter's t ({run})",
                          stride_name=f"the stride of {where}")
            if not self.module_class().repools:
                raise UserError(f"{run}: a {self.kind} adapter reads windows of the stride it was "
                                f"trained on ({self.stride}), but {where} has stride {stride}: "
                                f"use features extracted with --stride {self.stride}")
        trained, given = self.encoder or {}, encoder or {}
        if "normalize" in trained and "normalize" in given and \
                bool(trained["normalize"]) != bool(given["normalize"]):
            raise UserError(f"{run} was trained on features with wave normalisation "
                            f"{trained['normalize']}, but {where} has {given['normalize']}: use "
                            "features extracted with the training run's --normalize")
        theirs, ours = trained.get("weights_sha256"), given.get("weights_sha256")
        if theirs and ours and theirs != ours:
            raise UserError(f"{run} was trained on features of encoder {trained.get('encoder')!r} "
                            f"(weights {theirs}), but {where} comes from {given.get('encoder')!r} "
                            f"with other weights ({ours}): use the training encoder")

    # ------------------------------------------------------------------ the file
    def to_json(self) -> dict:
        """adapter_config.json."""
        out = {"format": FORMAT, "llm": self.llm, "llm_dim": self.llm_dim,
               "encoder_dim": self.encoder_dim, "num_layers": self.num_layers,
               "stride": self.stride, "t": self.t, "kind": self.kind,
               "layer_aggregation": self.layer_aggregation, "standardized": self.standardized,
               "template": self.template.to_dict(), "encoder": dict(self.encoder),
               "lora": self.lora.to_json() if self.lora else None}
        if self.imported_from:
            out["imported_from"] = self.imported_from
        return out

    @classmethod
    def from_json(cls, data: dict, where: str, lora: LoraConfig | None = None) -> "AdapterConfig":
        """The config of an adapter_config.json (old keys read; `lora`: the LoRA a /1 file
        names only by its folder)."""
        fmt = data.get("format", FORMATS[0])
        if fmt not in FORMATS:
            raise UserError(f"{where}: format {fmt!r} is newer than this musilingo reads "
                            f"({', '.join(FORMATS)}); upgrade musilingo")
        d = dict(data)
        d.setdefault("kind", d.pop("adapter", "linear"))
        d.setdefault("standardized", d.pop("normalized", False))
        raw_lora = d.pop("lora", None)
        if isinstance(raw_lora, dict):
            lora = LoraConfig(int(raw_lora["r"]), float(raw_lora["alpha"]),
                              float(raw_lora["dropout"]), tuple(raw_lora["targets"]))
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        values["template"] = PromptTemplate.from_dict(d["template"])
        for key in ("encoder_dim", "num_layers", "stride", "t"):
            values[key] = int(d[key])
        return cls(**{**values, "lora": lora, "encoder": dict(d.get("encoder") or {})})
