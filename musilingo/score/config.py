"""Options of `musilingo score` (`ScoreConfig`: its field help is also the CLI help).

    musilingo score --predictions outputs.json --protocol both --bertscore-model minilm
    musilingo score --run runs/instruct --dataset musiccaps --annotations musiccaps-public.csv \\
        --audio-root wav/ --out eval/mc --control shuffled-audio --bertscore-model minilm
    musilingo score --config musiccaps run=runs/instruct annotations=mc.csv out=eval/mc

Two modes share the metric options (`evaluate.scoring.MetricsConfig`): score an existing
predictions file, or generate on a data set's test split with a run first (the generating verbs'
model, runtime and decoding groups, `infer.config`). Imports only click-free config code: the
command's help must stay fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..data import TEST_SETS
from ..data.items import MCQLayout
from ..errors import UserError
from ..evaluate.scoring import MetricsConfig
from ..infer.config import (CONTROLS, GenerationConfig, ModelConfig, RuntimeConfig, part,
                            validate_groups)

from ..options import option as _opt

# The one name of each data set is its reader's (as in extract and train); the split names of
# earlier releases are read for now.
OLD_TEST_SET_NAMES = {"musicinstruct-short": "musicinstruct",
                      "musicinstruct-long": "musicinstruct"}


@dataclass
class ScoreConfig(MetricsConfig, ModelConfig, RuntimeConfig, GenerationConfig):
    predictions: str | None = _opt(None, "JSON (list or object of objects), JSONL or CSV with a "
                                         "prediction and a reference per item (or --run ... to "
                                         "generate them first)")
    prediction_field: str | None = _opt(None, "field holding the model's text (default: "
                                              "detected, e.g. prediction, response, predictions)")
    reference_field: str | None = _opt(None, "field holding the reference (default: detected, "
                                             "e.g. ground_truth, correct_answer, true_captions)")
    out: str | None = _opt(None, "folder to write scores.json and scores.md into (generation "
                                 "mode: also the predictions, so a rerun resumes)")
    dataset: str | None = _opt(None, "generation mode: the data set whose test split is generated "
                                     "and scored: " + ", ".join(TEST_SETS))
    annotations: str | None = _opt(None, "generation mode: the data set's annotation file (CSV "
                                         "or JSON)")
    audio_root: str | None = _opt(None, "generation mode: where the audio files are (default: "
                                        "beside the annotations)")
    control: str | None = _opt(None, "generation mode: comma list of shuffled-audio (every item "
                                     "hears another clip's audio), silence and noise (every item "
                                     "hears the same silent or white-noise clip) and text-only "
                                     "(no audio tokens: the question alone); each generates "
                                     "again and reports the score deltas (does the model "
                                     "listen?)")
    control_seed: int = _opt(0, "seed of the shuffled-audio derangement")
    options_seed: int = _opt(0, "multiple choice (muchomusic): seed of each question's option "
                                "order, recorded with the scores")
    shots: int = _opt(1, "multiple choice (muchomusic): 1 puts the benchmark's worked example "
                         "before every question (its default configuration, the published "
                         "table's), 0 asks the question alone")
    distractors: str = _opt("all", "multiple choice (muchomusic): the distractor types offered "
                                   "beside the answer, a comma list of incorrect_but_related, "
                                   "correct_but_unrelated, incorrect_and_unrelated (all: the "
                                   "three, four options)")
    rul_protocol: Literal["leave-one-out", "all-options"] = _opt(
        "leave-one-out", "rul-muchomusic: leave-one-out (four passes per question, each without "
                         "one distractor, majority vote: the release's recommended protocol) or "
                         "all-options (one pass, five options)")
    max_items: int | None = _opt(None, "generation mode: only the first N test items (quick "
                                       "runs); with --control, the items of the first N clips "
                                       "(the control permutes clips)")

    RENAMED = {"limit": "max_items"}

    @property
    def generates(self) -> bool:
        return self.run is not None or self.dataset is not None

    def validate(self) -> "ScoreConfig":
        part(self, MetricsConfig).validate()
        if self.predictions is not None and self.generates:
            raise UserError("give either --predictions FILE (score existing outputs) or --run "
                            "RUN --dataset NAME (generate, then score), not both")
        if self.predictions is not None:
            return self
        if self.run is None:
            raise UserError("give --predictions FILE, or --run RUN --dataset NAME to generate "
                            "first")
        if self.dataset in OLD_TEST_SET_NAMES:
            import sys

            print(f"note: --dataset {self.dataset} is now --dataset "
                  f"{OLD_TEST_SET_NAMES[self.dataset]} (the annotation file says which part); "
                  "the old name is read for now", file=sys.stderr)
            self.dataset = OLD_TEST_SET_NAMES[self.dataset]
        if self.dataset is None:
            raise UserError(f"--run needs --dataset (one of {', '.join(TEST_SETS)}) and its "
                            "--annotations")
        if self.dataset not in TEST_SETS:
            raise UserError(f"--dataset {self.dataset!r}: use one of {', '.join(TEST_SETS)}")
        wrong = [c for c in (self.control or "").split(",") if c and c not in CONTROLS]
        if wrong:
            raise UserError(f"--control {self.control}: {wrong[0]!r} is not one of "
                            f"{', '.join(CONTROLS)} (give a comma list)")
        if self.max_items is not None and self.max_items < 1:
            raise UserError("--max-items must be at least 1")
        validate_groups(self, RuntimeConfig)  # (the decoding group checks itself when made)
        self.mcq_layout()
        return self

    def metrics_config(self) -> MetricsConfig:
        return part(self, MetricsConfig)

    def protocol_settings(self) -> dict:
        """What the multiple-choice protocol of this run's data set is (recorded, compared on
        resume), or {} for text data sets."""
        kind = TEST_SETS[self.dataset][1] if self.dataset in TEST_SETS else None
        if kind == "mcq":
            return {"mcq": self.mcq_layout().to_dict()}
        if kind == "rul":
            return {"mcq": {"benchmark": "rul-muchomusic", "protocol": self.rul_protocol,
                            "options_seed": self.options_seed}}
        return {}

    def protocol_name(self) -> str:
        """The multiple-choice protocol as every table names it."""
        if TEST_SETS[self.dataset][1] == "rul":
            return (f"RUL-MuChoMusic, {self.rul_protocol} "
                    + ("(4 passes of 4 options, majority vote)" if self.rul_protocol ==
                       "leave-one-out" else "(5 options)")
                    + f", options seed {self.options_seed}")
        return self.mcq_layout().describe()

    def mcq_layout(self) -> MCQLayout:
        """How four-option questions are asked (checked when the config is validated)."""
        return MCQLayout.parse(self.shots, self.distractors, self.options_seed)
