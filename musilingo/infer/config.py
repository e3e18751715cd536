"""Decoding settings and the command-line options shared by caption/ask/chat and `score --run`.

Kept free of torch and transformers imports: `musilingo score --help` builds its options from
here, and a verb's help should not pay for loading a deep-learning stack.

    cfg = GenerationConfig()                  # greedy, at most 300 new tokens, seed 0
    cfg = GenerationConfig.reference()        # the reference evaluation's sampling
    @generation_options                       # adds --decoding, --num-beams, --top-p, ...
    def cmd(**kw): cfg = generation_from_options(kw)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import click

from ..errors import UserError
from ..options import (DEVICE_HELP, check_positive, dtype_name, field_options, from_dict, help_of,
                       option as _opt, resolve_device)

DECODINGS = ("greedy", "beam", "sampling")
CONTROLS = ("shuffled-audio",)  # grounding controls of `score --run`


@dataclass
class GenerationConfig:
    """How answers are decoded; the field help texts are the CLI's option help."""

    decoding: str = _opt("greedy", "greedy (deterministic, default), beam, or sampling (the "
                                   "reference code's: with the default top-p/temperature)")
    num_beams: int = _opt(4, "beams for --decoding beam")
    top_p: float = _opt(0.5, "nucleus mass for --decoding sampling (reference: 0.5)")
    temperature: float = _opt(0.1, "temperature for --decoding sampling (reference: 0.1)")
    max_new_tokens: int = _opt(300, "at most this many generated tokens per answer (reference: "
                                    "300)")
    seed: int = _opt(0, "seed of the sampling RNG, set before every batch")

    @classmethod
    def reference(cls) -> "GenerationConfig":
        """The reference evaluation's settings (it set no seed; we fix one)."""
        return cls(decoding="sampling", top_p=0.5, temperature=0.1, max_new_tokens=300)

    @staticmethod
    def help(name: str) -> str:
        return help_of(GenerationConfig, name)

    def validate(self) -> "GenerationConfig":
        if self.decoding not in DECODINGS:
            raise UserError(f"--decoding {self.decoding!r}: use one of {', '.join(DECODINGS)}")
        if self.max_new_tokens < 1:
            raise UserError("--max-new-tokens must be at least 1")
        if self.decoding == "beam" and self.num_beams < 2:
            raise UserError("--num-beams must be at least 2 for --decoding beam")
        if self.decoding == "sampling" and not (0 < self.top_p <= 1 and self.temperature > 0):
            raise UserError("--decoding sampling needs 0 < --top-p <= 1 and --temperature > 0")
        return self

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
        return asdict(self)


@dataclass
class RuntimeConfig:
    """Where and how the models run: shared by caption/ask/chat and `score --run`."""

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


def generation_options(fn):
    """Click options for every GenerationConfig field, plus `--sampling reference`."""
    fn = field_options(GenerationConfig, choices={"decoding": DECODINGS})(fn)
    return click.option("--sampling", "sampling_preset", type=click.Choice(["reference"]),
                        default=None, help="the reference code's sampling: --decoding sampling "
                                           "--top-p 0.5 --temperature 0.1 --max-new-tokens 300")(fn)


def runtime_options(fn):
    """RuntimeConfig's options, then the decoding options (one flag per field, same defaults in
    every verb that generates)."""
    return field_options(RuntimeConfig)(generation_options(fn))


def _given(kw: dict, cls) -> dict:
    """Pop `cls`'s fields out of click kwargs; only the ones given (not None)."""
    values = {f.name: kw.pop(f.name) for f in fields(cls) if f.name in kw}
    return {k: v for k, v in values.items() if v is not None}


def runtime_from_options(kw: dict) -> RuntimeConfig:
    """Pop the runtime options out of a click kwargs dict into a validated config."""
    return from_dict(RuntimeConfig, _given(kw, RuntimeConfig), "score").validate()


def generation_from_options(kw: dict) -> GenerationConfig:
    """Pop the generation options out of a click kwargs dict into a validated config."""
    preset = kw.pop("sampling_preset", None)
    values = _given(kw, GenerationConfig)
    if preset == "reference":
        ref = GenerationConfig.reference()
        values.update(decoding=ref.decoding, top_p=ref.top_p, temperature=ref.temperature,
                      max_new_tokens=ref.max_new_tokens)
    return from_dict(GenerationConfig, values, "score").validate()
