"""The generation mode of `musilingo score`: its options, and the call into evaluate_dataset.

    musilingo score --run runs/instruct --dataset musiccaps --annotations musiccaps-public.csv \\
        --audio-root wav/ --out eval/mc --control shuffled-audio --bertscore-model minilm

`musilingo/evaluate/command.py` owns the `score` command; it adds these options with
`@score_run_options` and hands them to `score_run` when `--run` is given, so the scoring
options (--protocol, --metrics, --bertscore-model, --out, ...) are shared by both modes. This
module imports only click (the command's help must stay fast); the model code loads on use.
"""
from __future__ import annotations

import click

from ..errors import UserError
from .config import generation_from_options, runtime_options

DATASET_NAMES = ("musiccaps", "musicinstruct-short", "musicinstruct-long", "musicqa",
                 "songdescriber")
RUN_KEYS = ("run", "dataset", "annotations", "audio_root", "cache", "control", "control_seed",
            "limit", "llm", "encoder", "device", "dtype", "batch_size", "segment_seconds",
            "trust_remote_code")


def score_run_options(fn):
    """Options of the generation mode (`--run ...`), plus the shared runtime and decoding ones."""
    opts = [
        click.option("--run", default=None, type=click.Path(),
                     help="generation mode: a run folder (adapter_config.json) to generate "
                          "answers with, instead of --predictions"),
        click.option("--dataset", type=click.Choice(DATASET_NAMES), default=None,
                     help="with --run: the data set whose test split is generated and scored"),
        click.option("--annotations", default=None, type=click.Path(),
                     help="with --run: the data set's annotation file (CSV or JSON)"),
        click.option("--audio-root", default=None, type=click.Path(file_okay=False),
                     help="with --run: where the audio files are (default: beside the "
                          "annotations)"),
        click.option("--cache", default=None, type=click.Path(),
                     help="with --run: read features from this cache instead of the audio"),
        click.option("--control", type=click.Choice(["shuffled-audio"]), default=None,
                     help="with --run: generate again with every item hearing another clip's "
                          "audio, and report the score deltas (does the model listen?)"),
        click.option("--control-seed", type=int, default=0, show_default=True,
                     help="seed of the shuffled-audio derangement"),
        click.option("--limit", type=int, default=None,
                     help="with --run: only the first N test items (quick runs); with --control, "
                          "the items of the first N clips (the control permutes clips)"),
        click.option("--llm", default=None, help="with --run: LLM instead of the run's"),
        click.option("--encoder", default=None, help="with --run: encoder instead of the run's"),
    ]
    fn = runtime_options(fn)
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def score_run(options: dict, *, predictions_path, out_dir, log, **score) -> dict:
    """Run the generation mode from the click options (`score` = protocol, metrics, ...)."""
    from .evaluate_dataset import score_generated

    options = dict(options)
    generation = generation_from_options(options)
    if predictions_path is not None:
        raise UserError("give either --predictions FILE (score existing outputs) or --run RUN "
                        "--dataset NAME (generate, then score), not both")
    if options.get("run") is None:
        raise UserError("give --predictions FILE, or --run RUN --dataset NAME to generate first")
    if options.get("dataset") is None:
        raise UserError("--run needs --dataset (musiccaps, musicinstruct-short, "
                        "musicinstruct-long, musicqa or songdescriber) and its --annotations")
    if options["device"].startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--device {options['device']}: no CUDA device is available here")
    if options["batch_size"] < 1:
        raise UserError("--batch-size must be at least 1")
    return score_generated(out=out_dir, generation=generation, log=log,
                           **{k: options[k] for k in RUN_KEYS}, **score)


def run_mode_requested(options: dict) -> bool:
    """True when any generation-mode option was given (so `score` takes this path)."""
    return options.get("run") is not None or options.get("dataset") is not None
