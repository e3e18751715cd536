"""Decoding settings and the command-line options shared by caption/ask/chat and `score --run`.

Kept free of torch and transformers imports: `musilingo score --help` builds its options from
here, and a verb's help should not pay for loading a deep-learning stack.

    cfg = GenerationConfig()                  # greedy, at most 300 new tokens, seed 0
    cfg = GenerationConfig.reference()        # the reference evaluation's sampling
    @generation_options                       # adds --decoding, --num-beams, --top-p, ...
    def cmd(**kw): cfg = generation_from_options(kw)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import click

from ..errors import UserError
from ..options import help_of, option as _opt

DECODINGS = ("greedy", "beam", "sampling")


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


def generation_options(fn):
    """Click options for every GenerationConfig field, plus `--sampling reference`."""
    h = GenerationConfig.help
    defaults = GenerationConfig()
    opts = [
        click.option("--decoding", type=click.Choice(DECODINGS), default=defaults.decoding,
                     show_default=True, help=h("decoding")),
        click.option("--sampling", "sampling_preset", type=click.Choice(["reference"]),
                     default=None, help="the reference code's sampling: --decoding sampling "
                                        "--top-p 0.5 --temperature 0.1 --max-new-tokens 300"),
        click.option("--num-beams", type=int, default=defaults.num_beams, show_default=True,
                     help=h("num_beams")),
        click.option("--top-p", type=float, default=defaults.top_p, show_default=True,
                     help=h("top_p")),
        click.option("--temperature", type=float, default=defaults.temperature,
                     show_default=True, help=h("temperature")),
        click.option("--max-new-tokens", type=int, default=defaults.max_new_tokens,
                     show_default=True, help=h("max_new_tokens")),
        click.option("--seed", type=int, default=defaults.seed, show_default=True,
                     help=h("seed")),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


DTYPES = ("fp32", "bf16", "fp16")


def runtime_options(fn):
    """Where and how the models run, then the decoding options: shared by caption/ask/chat and
    `score --run`, so both modes take the same flags with the same defaults."""
    opts = [
        click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N"),
        click.option("--dtype", type=click.Choice(DTYPES), default="fp32", show_default=True,
                     help="LLM weights dtype"),
        click.option("--batch-size", type=int, default=8, show_default=True,
                     help="answers generated together (left-padded batches)"),
        click.option("--segment-seconds", type=float, default=30.0, show_default=True,
                     help="long audio is encoded in segments this long"),
        click.option("--trust-remote-code", is_flag=True,
                     help="allow models that ship their own code (MERT on the hub)"),
    ]
    fn = generation_options(fn)
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


GENERATION_KEYS = ("decoding", "sampling_preset", "num_beams", "top_p", "temperature",
                   "max_new_tokens", "seed")


def generation_from_options(kw: dict) -> GenerationConfig:
    """Pop the generation options out of a click kwargs dict into a validated config."""
    values = {k: kw.pop(k) for k in GENERATION_KEYS if k in kw}
    if values.pop("sampling_preset", None) == "reference":
        ref = GenerationConfig.reference()
        values.update(decoding=ref.decoding, top_p=ref.top_p, temperature=ref.temperature,
                      max_new_tokens=ref.max_new_tokens)
    return GenerationConfig(**values).validate()
