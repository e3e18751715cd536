"""Settings of the verbs that generate text (caption, ask, chat, serve, `score --run`).

Kept free of torch and transformers imports: building a verb's --help must stay fast.

Three option groups, shared as litgpt shares its argument groups, and each verb's config is the
union of the groups it needs plus its own fields (flat keys: `top_p=0.9`, `--top-p 0.9`):

| group | fields |
|---|---|
| `ModelConfig` | run, llm, cache, encoder: which adapter, LLM and features |
| `RuntimeConfig` | device, dtype, batch_size, segment_seconds, trust_remote_code |
| `GenerationConfig` | decoding, num_beams, top_p, temperature, max_new_tokens, seed, sampling |

    cfg = load_config(CaptionConfig, "caption", recipe, flags, overrides)
    part(cfg, GenerationConfig)      # the decoding group alone

A `GenerationConfig` is checked when it is made (`__post_init__`, also as part of a verb's
config), so every function that receives one can trust it.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from ..errors import UserError
from ..options import check_choices, help_of, option as _opt
from ..vocabulary import DEVICE_HELP, check_positive, dtype_name, resolve_device

# Grounding controls of `score --run`: every item again hearing another clip, silence, noise, or
# no audio at all.
CONTROLS = ("shuffled-audio", "silence", "noise", "text-only")


def part(cfg, cls):
    """The `cls` group of a verb config (a new instance holding the group's fields)."""
    return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)})


def validate_groups(cfg, *groups) -> None:
    """Validate each group of `cfg` and take back the values validation normalised (a device
    resolved, a dtype spelled fp32)."""
    for cls in groups:
        checked = part(cfg, cls).validate()
        for f in fields(cls):
            setattr(cfg, f.name, getattr(checked, f.name))


@dataclass
class GenerationConfig:
    """How answers are decoded; the field help texts are the CLI's option help."""

    decoding: Literal["greedy", "beam", "sampling"] = _opt(
        "greedy", "greedy (deterministic, default), beam, or sampling (the reference code's: "
                  "with the default top-p/temperature)")
    num_beams: int = _opt(4, "beams for --decoding beam")
    top_p: float = _opt(0.5, "nucleus mass for --decoding sampling (reference: 0.5)")
    temperature: float = _opt(0.1, "temperature for --decoding sampling (reference: 0.1)")
    max_new_tokens: int = _opt(300, "at most this many generated tokens per answer (reference: "
                                    "300)")
    seed: int = _opt(0, "seed of the sampling RNG, set before every batch")
    sampling: Literal["reference"] | None = _opt(None, "reference: the reference code's "
                                                       "sampling (decoding sampling, top_p 0.5, "
                                                       "temperature 0.1, 300 new tokens)")

    def __post_init__(self):
        """The preset applied and every rule checked, once, when the settings are made."""
        if self.sampling == "reference":
            self.decoding, self.top_p, self.temperature, self.max_new_tokens = \
                "sampling", 0.5, 0.1, 300
        check_choices(self, GenerationConfig)
        if self.max_new_tokens < 1:
            raise UserError("--max-new-tokens must be at least 1")
        if self.decoding == "beam" and self.num_beams < 2:
            raise UserError("--num-beams must be at least 2 for --decoding beam")
        if self.decoding == "sampling" and not (0 < self.top_p <= 1 and self.temperature > 0):
            raise UserError("--decoding sampling needs 0 < --top-p <= 1 and --temperature > 0")

    @classmethod
    def reference(cls) -> "GenerationConfig":
        """The reference evaluation's settings (it set no seed; we fix one)."""
        return cls(sampling="reference")

    @staticmethod
    def help(name: str) -> str:
        return help_of(GenerationConfig, name)

    def validate(self) -> "GenerationConfig":
        return self  # checked when made (__post_init__)

    def generate_kwargs(self) -> dict:
        """Keyword arguments of `transformers` `generate` for these settings."""
        kw = dict(max_new_tokens=self.max_new_tokens, do_sample=self.decoding == "sampling",
                  num_beams=self.num_beams if self.decoding == "beam" else 1)
        if self.decoding == "sampling":
            kw.update(top_p=self.top_p, temperature=self.temperature)
        else:  # silence models whose generation_config carries sampling defaults
            kw.update(top_p=None, temperature=None, top_k=None)
        return kw

    def to_dict(self) -> dict:
        """The decoding settings (the preset's name is not one: its values are)."""
        out = {f.name: getattr(self, f.name) for f in fields(GenerationConfig)}
        out.pop("sampling")
        return out


@dataclass
class RuntimeConfig:
    """Where and how the models run."""

    device: str = _opt("auto", DEVICE_HELP)
    dtype: str = _opt("fp32", "LLM weights dtype: fp32, bf16 or fp16")
    batch_size: int = _opt(8, "answers generated together (left-padded batches)")
    segment_seconds: float = _opt(30.0, "long audio is encoded in segments this long")
    trust_remote_code: bool = _opt(False, "allow models that ship their own code (MERT on the "
                                          "hub, only where the native loader refuses)")

    def validate(self) -> "RuntimeConfig":
        self.device = resolve_device(self.device, "--device")
        self.dtype = dtype_name(self.dtype, "--dtype")
        check_positive(self, ("batch_size", "segment_seconds"))
        return self


@dataclass
class ModelConfig:
    """Which trained adapter answers, and what it runs with."""

    run: str | None = _opt(None, "run folder with adapter.safetensors + adapter_config.json (from "
                                 "`musilingo train` or `import-checkpoint`), or that config file")
    llm: str | None = _opt(None, "LLM preset, folder or hub id instead of the one in "
                                 "adapter_config.json (same width)")
    cache: str | None = _opt(None, "read features from this feature cache instead of audio; "
                                   "clips are then named by their cache clip ids")
    encoder: str | None = _opt(None, "encoder instead of the one named in adapter_config.json")


@dataclass
class GenerateConfig(ModelConfig, RuntimeConfig, GenerationConfig):
    """The settings every generating verb shares: the three groups."""

    def validate(self):
        if not self.run:
            raise UserError("--run is required: a run folder from `musilingo train` or "
                            "`musilingo import-checkpoint`")
        validate_groups(self, RuntimeConfig)
        return self


@dataclass
class RowsConfig:
    """Where caption and ask write their rows."""

    out: str | None = _opt(None, "write rows to this file (default: stdout)")
    format: Literal["jsonl", "csv"] = _opt("jsonl", "row format: jsonl or csv")


@dataclass
class CaptionConfig(GenerateConfig, RowsConfig):
    whole_track: bool = _opt(False, "one caption per file over all its segments (when they fit the "
                                    "LLM's context), instead of one per segment")


@dataclass
class AskConfig(GenerateConfig, RowsConfig):
    per_segment: bool = _opt(False, "answer each segment separately even when the whole track "
                                    "fits")


@dataclass
class ChatConfig(GenerateConfig):
    """chat answers one line at a time: a batch size means nothing to it."""

    HELP = {"cache": "read the features from this feature cache: AUDIO is then a clip id of the "
                     "cache, not a file"}
