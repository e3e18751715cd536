"""`musilingo import-checkpoint | export | compare`: the verbs that make, ship and compare run
folders.

    musilingo import-checkpoint stage2.pth --llm /models/vicuna-7b --out runs/reference
    musilingo import-checkpoint m-a-p/MusiLingo-short-v1 --llm /models/vicuna-7b --out runs/short
    musilingo export runs/instruct --out hub/musilingo-demo [--push-to-hub my-lab/name]
    musilingo compare runs/linear runs/mlp runs/lora --out compare/

Configured like every verb (musilingo/options.py): a recipe, a flag per field, key=value
overrides. The work is in import_checkpoint.py, export.py and compare.py.
"""
from __future__ import annotations

from dataclasses import dataclass

import click

from ..errors import UserError
from ..options import config_options, load_config_args, option as _opt
from ..vocabulary import Normalize


@dataclass
class ImportConfig:
    out: str | None = _opt(None, "run folder to write adapter.safetensors + adapter_config.json "
                                 "into (required)")
    llm: str | None = _opt(None, "the LLM the adapter was trained with (the paper: Vicuna-7B v0, "
                                 "merged; a folder or hub id); must be as wide as the adapter's "
                                 "output. Default for a published model: its config's "
                                 "llama_model")
    encoder: str | None = _opt(None, "encoder the adapter was trained on (preset, hub id or "
                                     "folder; default: mert-330m, or a published model's "
                                     "mert_model)")
    layers: int | None = _opt(None, "hidden states averaged (default: the encoder's layers + 1, 25 "
                                    "for mert-330m)")
    stride: int = _opt(325, "window stride in frames the features are pooled at")
    t: int = _opt(325, "frames per audio token (the reference code's 325)")
    normalize: Normalize = _opt("auto", "wave normalisation the adapter was trained with, "
                                        "recorded for inference on raw audio: auto (the "
                                        "encoder's preprocessor_config.json), on or off")
    overwrite: bool = _opt(False, "replace an adapter already in --out")

    def validate(self) -> "ImportConfig":
        if not self.out:
            raise UserError("--out is required: the run folder to write")
        if self.layers is not None and self.layers < 1:
            raise UserError(f"--layers {self.layers}: give the number of hidden states (>= 1)")
        for key in ("stride", "t"):
            if getattr(self, key) < 1:
                raise UserError(f"--{key} {getattr(self, key)} must be at least 1")
        return self


@dataclass
class ExportConfig:
    out: str | None = _opt(None, "folder to write (adapter, config, model card); required")
    overwrite: bool = _opt(False, "write into a non-empty --out")
    push_to_hub: str | None = _opt(None, "also upload to this Hub repository (owner/name) with "
                                         "huggingface_hub")

    def validate(self) -> "ExportConfig":
        if not self.out:
            raise UserError("--out is required: the folder to write")
        return self


@click.command("import-checkpoint")
@config_options(ImportConfig, "import-checkpoint", args="args")
def import_checkpoint(recipe, args, **flags):
    """Convert a MusiLingo adapter into a run folder: a reference-code CHECKPOINT (.pth), or a
    published model's folder or hub id (only its adapter tensors are read; no code runs).

    ARGS: CHECKPOINT, then any KEY=VALUE overrides."""
    from .import_checkpoint import import_checkpoint as run_import

    (checkpoint,), cfg = load_config_args(ImportConfig, "import-checkpoint", recipe, flags, args,
                                          count=1,
                                          usage="give one CHECKPOINT (.pth, folder or hub id)")
    folder, notes = run_import(checkpoint, cfg.out, llm=cfg.llm, encoder=cfg.encoder,
                               layers=cfg.layers, stride=cfg.stride, t=cfg.t,
                               overwrite=cfg.overwrite,
                               normalize={"on": True, "off": False}.get(cfg.normalize))
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {folder}/adapter.safetensors and adapter_config.json; try: musilingo ask "
               f"--run {folder} AUDIO \"What instrument is playing?\"")


@click.command("export")
@config_options(ExportConfig, "export", args="args")
def export(recipe, args, **flags):
    """Package a run's adapter with a model card, ready for the Hugging Face Hub.

    ARGS: RUN (a run folder), then any KEY=VALUE overrides."""
    from .export import export_run, push_to_hub

    (run,), cfg = load_config_args(ExportConfig, "export", recipe, flags, args, count=1,
                                   usage="give one RUN folder")
    folder = export_run(run, cfg.out, overwrite=cfg.overwrite)
    click.echo(f"exported {run} -> {folder} (README.md is the model card)")
    if cfg.push_to_hub:
        click.echo(f"pushed: {push_to_hub(folder, cfg.push_to_hub)}")


@dataclass
class CompareConfig:
    out: str | None = _opt(None, "folder to write compare.md, compare.json and losses.png into")


@click.command("compare")
@config_options(CompareConfig, "compare", args="args")
def compare(recipe, args, **flags):
    """One table of several runs: their variants, final losses and every recorded evaluation
    with its protocol and shuffled-audio control; with --out, the loss curves as a PNG.

    ARGS: RUN folders, then any KEY=VALUE overrides."""
    from .compare import compare_runs

    runs, cfg = load_config_args(CompareConfig, "compare", recipe, flags, args)
    result = compare_runs(runs, cfg.out)
    click.echo(result["markdown"])
    if cfg.out:
        click.echo(f"wrote {cfg.out}/compare.md, compare.json and losses.png", err=True)
