"""Training configuration: dataclasses whose `help` metadata is also the CLI help.

A run is described by a YAML recipe (musilingo/configs/*.yaml) plus `key=value` overrides:

    musilingo train --config pretrain_msd cache=msd.zarr max_steps=100
    musilingo train --config instruct_mi_short datasets.0.cache=mi.zarr init_adapter=runs/stage1

Dotted keys reach into the data-set list (`datasets.0.caption_field=caption_summary`). Values are
parsed as YAML (`lr=3e-5`, `normalize=true`, `datasets=[...]`). The resolved configuration is
written to the run folder as config.yaml, and `--resume` refuses a folder whose config.yaml
differs in anything that changes the result.
"""
from __future__ import annotations

import math

import dataclasses
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

import yaml

from ..errors import UserError
from ..options import help_of, option as _opt


@dataclass
class DataSpec:
    """One training data set: annotations joined with cached (or online) features."""

    name: str = _opt("msd", "data-set reader: msd, musiccaps, musicinstruct, musicqa, synth")
    annotations: str | None = _opt(None, "annotation file/folder (or hub id for msd)")
    audio_root: str | None = _opt(None, "audio folder (needed for --features online)")
    split: str | None = _opt("train", "keep only this split (train, valid, test; null = all)")
    caption_field: str = _opt("caption_writing", "MSD caption used as the target")
    cache: str | None = _opt(None, "feature cache of this data set (default: the top-level cache)")
    question: str | None = _opt(None, "question for caption data in the instruct stage "
                                "(default: the reference code's 'Please give a caption to the music.')")
    weight: float = _opt(1.0, "relative share of batches under mixing=weighted")


@dataclass
class TrainConfig:
    stage: str = _opt("pretrain", "pretrain (captions, stage 1) or instruct (Q&A, stage 2)")
    datasets: list = _opt([], "data sets to mix (see DataSpec); a recipe lists them")
    cache: str | None = _opt(None, "feature cache (Zarr) made by `musilingo extract`, for every "
                             "data set without its own")
    features: str = _opt("cache", "cache (read pooled features) or online (run the encoder on audio "
                         "every step, as the reference code did)")
    encoder: str | None = _opt(None, "online mode: encoder preset/hub id/folder (default: the "
                               "cache's encoder, else tiny)")
    encoder_dtype: str = _opt("fp32", "online mode: encoder compute dtype (fp32, bf16, fp16)")
    segment_seconds: float = _opt(30.0, "online mode without a cache: segment length in seconds")
    online_stride: int | None = _opt(None, "online mode: pooling stride (default: the cache's, else t)")
    llm: str = _opt("smollm2", "frozen LLM: smollm2, tiny-llama, a hub id or a local folder")
    trust_remote_code: bool = _opt(False, "allow the LLM's/encoder's own modelling code")
    t: int = _opt(325, "frames per audio token; a multiple of the cache stride")
    layer_aggregation: str = _opt("mean", "mean (paper) or learned (softmax weights, start at the mean)")
    normalize: bool = _opt(False, "standardise adapter inputs per dimension with statistics of "
                           "the training clips (fixed, saved with the adapter)")
    normalize_clips: int = _opt(512, "clips sampled for the normalisation statistics")
    adapter_init: str = _opt("default", "default (nn.Linear's, as the paper) or embedding-scale "
                             "(audio tokens start at the LLM's word-embedding size: faster "
                             "learning with standardised inputs)")
    segments: str = _opt("random", "clips with several segments: random (one per epoch, the "
                         "paper's random crop) or concat (in order, up to max_audio_tokens)")
    max_audio_tokens: int = _opt(64, "concat mode: most audio tokens per example")
    mixing: str = _opt("equal", "several data sets: equal (each batch from one set, equal "
                       "probability: paper), proportional (to size) or weighted (DataSpec.weight)")
    max_text_tokens: int | None = _opt(None, "target truncation (default: 32 pretrain, 160 instruct)")
    max_missing_fraction: float = _opt(0.05, "fail if more than this fraction of annotation rows "
                                       "has no features (they are skipped and counted otherwise)")
    micro_batch_size: int = _opt(8, "examples per process per forward pass")
    grad_accum: int = _opt(1, "micro-batches accumulated per optimizer step")
    epochs: int = _opt(1, "epochs (each steps_per_epoch optimizer steps)")
    steps_per_epoch: int | None = _opt(None, "optimizer steps per epoch (paper: 5000 iterations); "
                                       "default: one pass over the data")
    max_steps: int | None = _opt(None, "stop after this many optimizer steps in total (and decay "
                                 "the learning rate over them)")
    lr: float = _opt(1e-4, "peak learning rate (paper: 1e-4 stage 1, 3e-5 stage 2)")
    min_lr: float = _opt(8e-5, "learning rate at the end of the cosine (paper: 8e-5, 1e-5)")
    warmup_lr: float = _opt(1e-6, "learning rate at step 0; rises linearly to lr")
    warmup_steps: int | None = _opt(None, "linear warmup steps (default: one epoch, as the paper)")
    weight_decay: float = _opt(0.05, "AdamW weight decay (not on biases or 1-d parameters)")
    betas: list = _opt([0.9, 0.999], "AdamW betas")
    grad_clip: float = _opt(1.0, "clip the gradient norm to this (0 = off)")
    precision: str = _opt("bf16", "bf16, fp16 (GPU only) or fp32 (LLM weights and compute)")
    deepspeed: str = _opt("zero0", "zero0, zero2, zero3, zero2_offload, zero3_offload (shipped in "
                          "configs/deepspeed/) or a path to a DeepSpeed JSON")
    seed: int = _opt(42, "seed of the adapter's initialisation and of the data order")
    init_adapter: str | None = _opt(None, "start from this adapter (a stage-1 run folder)")
    out_dir: str = _opt("runs/musilingo", "run folder: adapter, config, logs, resume state")
    resume: bool = _opt(False, "continue the run in out_dir from its latest resume state")
    save_every: int = _opt(500, "write the resume state and the adapter every N optimizer steps")
    log_every: int = _opt(1, "log loss and learning rate every N optimizer steps")
    num_workers: int = _opt(2, "DataLoader workers reading the cache (online mode uses 0)")
    device: str | None = _opt(None, "cpu or cuda (default: cuda when available)")
    progress: bool = _opt(True, "draw a tqdm progress bar")
    stop_after: int | None = _opt(None, "end the process after this many steps as if killed "
                                  "(testing resume); the schedule still spans the whole run")

    # Fields that do not change what a run computes: a resumed run may change them.
    RESUMABLE = ("out_dir", "resume", "save_every", "log_every", "num_workers", "progress",
                 "stop_after", "device")

    def __post_init__(self):
        self.datasets = [d if isinstance(d, DataSpec) else _spec(d) for d in self.datasets]

    @staticmethod
    def help(name: str) -> str:
        return help_of(TrainConfig, name)

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown config key(s) {', '.join(unknown)}; see "
                            "`musilingo train --help` for the keys")
        return cls(**{k: _coerce(cls, k, v) for k, v in d.items()})

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: list[str] = ()) -> "TrainConfig":
        data = {} if path is None else load_recipe(path)
        for item in overrides:
            apply_override(data, item)
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def result_keys(self) -> dict:
        """The settings that decide what a run computes (compared on --resume)."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RESUMABLE}


def _spec(d) -> DataSpec:
    if not isinstance(d, dict):
        raise UserError(f"a datasets entry must be a mapping with name/annotations/..., got {d!r}")
    known = {f.name for f in fields(DataSpec)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise UserError(f"unknown data-set key(s) {', '.join(unknown)}; use {', '.join(sorted(known))}")
    return DataSpec(**{k: _coerce(DataSpec, k, v) for k, v in d.items()})


def _coerce(cls, name: str, value):
    """Strings to the field's number/bool type (YAML reads `3e-5` as a string: no dot); numbers
    checked against it: an int field refuses 2.5, a float field refuses nan and inf."""
    kind = str({f.name: f.type for f in fields(cls)}[name])
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, str):
        if kind.startswith("int") and float(value) != int(value):
            raise UserError(f"{name}={value!r} is not a whole number")
        if kind.startswith("float") and not math.isfinite(value):
            raise UserError(f"{name}={value!r} must be a finite number")
        return int(value) if kind.startswith("int") else value
    if not isinstance(value, str) or kind.startswith("str"):
        return value
    try:
        if kind.startswith("bool"):
            if value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
                return value.lower() in ("true", "yes", "on", "1")
            raise ValueError
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            number = float(value)
            if not math.isfinite(number):
                raise UserError(f"{name}={value!r} must be a finite number")
            return number
    except ValueError:
        raise UserError(f"{name}={value!r} is not a {kind.split()[0]}") from None
    return value


def recipe_path(name: str | Path) -> Path:
    """A recipe file: a path, or the name of a shipped recipe (`pretrain_msd`, `configs/x.yaml`)."""
    p = Path(name).expanduser()
    if p.is_file():
        return p
    shipped = resources.files("musilingo") / "configs"
    stem = Path(str(name)).name
    for candidate in (stem, stem + ".yaml"):
        f = shipped / candidate
        if f.is_file():
            return Path(str(f))
    names = sorted(x.name[:-5] for x in shipped.iterdir() if x.name.endswith(".yaml"))
    raise UserError(f"no recipe {name!r}: give a YAML path or one of {', '.join(names)}")


def load_recipe(name: str | Path) -> dict:
    path = recipe_path(name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a mapping of config keys")
    return data


def apply_override(data: dict, item: str) -> None:
    """Apply one `key=value` (dotted keys reach into mappings and lists) to a raw config dict."""
    if "=" not in item:
        raise UserError(f"override {item!r} is not key=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    parts = key.strip().split(".")
    target = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(target, list):
            target = _index(target, part, key)
        else:
            if part not in target or target[part] is None:
                target[part] = [] if parts[i + 1].isdigit() else {}
            target = target[part]
    last = parts[-1]
    if isinstance(target, list):
        idx = int(last) if last.isdigit() else None
        if idx is None or idx > len(target):
            raise UserError(f"override {key}: {last!r} is not an index of the list")
        if idx == len(target):
            target.append(value)
        else:
            target[idx] = value
    else:
        target[last] = value


def _index(lst: list, part: str, key: str):
    if not part.isdigit():
        raise UserError(f"override {key}: {part!r} is not a list index")
    i = int(part)
    if i == len(lst):
        lst.append({})
    if i >= len(lst):
        raise UserError(f"override {key}: index {i} is past the end of the list ({len(lst)} items)")
    return lst[i]
