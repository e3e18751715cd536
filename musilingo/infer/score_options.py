"""The generation mode of `musilingo score`: its options (`ScoreRunConfig`), and the call into
evaluate_dataset.

    musilingo score --run runs/instruct --dataset musiccaps --annotations musiccaps-public.csv \\
        --audio-root wav/ --out eval/mc --control shuffled-audio --bertscore-model minilm
    musilingo score --config score_musiccaps run=runs/instruct annotations=mc.csv out=eval/mc

`musilingo/evaluate/command.py` owns the `score` command; it adds these options with
`@score_run_options` and hands them to `score_run` when `--run` is given, so the scoring
options (--protocol, --metrics, --bertscore-model, --out, ...) are shared by both modes. This
module imports only click (the command's help must stay fast); the model code loads on use.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from ..data import TEST_SETS
from ..errors import UserError
from ..options import field_options, from_dict, option as _opt
from .config import (CONTROLS, RuntimeConfig, generation_from_options, runtime_from_options,
                     runtime_options)


@dataclass
class ScoreRunConfig:
    """What `score --run` generates on (the runtime and decoding options come with it)."""

    run: str | None = _opt(None, "generation mode: a run folder (adapter_config.json) to "
                                 "generate answers with, instead of --predictions")
    dataset: str | None = _opt(None, "with --run: the data set whose test split is generated "
                                     "and scored: " + ", ".join(TEST_SETS))
    annotations: str | None = _opt(None, "with --run: the data set's annotation file (CSV or "
                                         "JSON)")
    audio_root: str | None = _opt(None, "with --run: where the audio files are (default: beside "
                                        "the annotations)")
    cache: str | None = _opt(None, "with --run: read features from this cache instead of the "
                                   "audio")
    control: str | None = _opt(None, "with --run: shuffled-audio generates again with every item "
                                     "hearing another clip's audio, and reports the score deltas "
                                     "(does the model listen?)")
    control_seed: int = _opt(0, "seed of the shuffled-audio derangement")
    limit: int | None = _opt(None, "with --run: only the first N test items (quick runs); with "
                                   "--control, the items of the first N clips (the control "
                                   "permutes clips)")
    llm: str | None = _opt(None, "with --run: LLM instead of the run's")
    encoder: str | None = _opt(None, "with --run: encoder instead of the run's")


def score_run_options(fn):
    """ScoreRunConfig's options, plus the shared runtime and decoding ones."""
    return field_options(ScoreRunConfig, choices={"dataset": tuple(TEST_SETS),
                                                  "control": CONTROLS})(runtime_options(fn))


def score_run(options: dict, *, predictions_path, out_dir, log, **score) -> dict:
    """Run the generation mode from the click options (`score` = protocol, metrics, ...)."""
    from .evaluate_dataset import score_generated

    options = dict(options)
    generation = generation_from_options(options)
    if predictions_path is not None:
        raise UserError("give either --predictions FILE (score existing outputs) or --run RUN "
                        "--dataset NAME (generate, then score), not both")
    run = from_dict(ScoreRunConfig, {f.name: options.pop(f.name) for f in fields(ScoreRunConfig)
                                     if options.get(f.name) is not None}, "score")
    if run.run is None:
        raise UserError("give --predictions FILE, or --run RUN --dataset NAME to generate first")
    if run.dataset is None:
        raise UserError(f"--run needs --dataset ({', '.join(TEST_SETS)}) and its --annotations")
    rt: RuntimeConfig = runtime_from_options(options)
    return score_generated(out=out_dir, generation=generation, log=log,
                           **{f.name: getattr(run, f.name) for f in fields(ScoreRunConfig)},
                           **{f.name: getattr(rt, f.name) for f in fields(RuntimeConfig)},
                           **score)


def run_mode_requested(options: dict) -> bool:
    """True when any generation-mode option was given (so `score` takes this path)."""
    return options.get("run") is not None or options.get("dataset") is not None
