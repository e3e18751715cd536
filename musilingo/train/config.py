"""Training configuration: dataclasses whose `help` metadata is also the CLI help.

A run is described by a YAML recipe (musilingo/configs/train/*.yaml) plus `key=value` overrides:

    musilingo train --config pretrain_msd cache=msd.zarr max_steps=100
    musilingo train --config instruct_mi_short datasets.0.cache=mi.zarr init_adapter=runs/stage1

Dotted keys reach into the data-set list (`datasets.0.caption_field=caption_summary`). Values are
parsed as YAML (`lr=3e-5`, `normalize=true`, `datasets=[...]`). The resolved configuration is
written to the run folder as config.yaml, and `--resume` refuses a folder whose config.yaml
differs in anything that changes the result.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from ..data import TRAIN_SETS
from ..errors import UserError
from ..models.adapter_config import LayerAggregation, LoraConfig, adapter_kinds, adapter_kinds_help
from ..models.prompts import Prompt
from ..options import check_choices, from_dict, help_of, option as _opt, resolve
from ..vocabulary import DEVICE_HELP, check_range, dtype_name


Stage = Literal["pretrain", "instruct"]
AdapterInit = Literal["default", "embedding-scale"]


@dataclass
class DataSpec:
    """One training data set: annotations joined with cached (or online) features."""

    WHAT = "data-set"  # how messages name an entry of `datasets`

    name: str = _opt("msd", "data-set reader: " + ", ".join(TRAIN_SETS))
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
    stage: Stage = _opt("pretrain", "pretrain (captions, stage 1) or instruct (Q&A, stage 2)")
    datasets: list[DataSpec] = _opt([], "data sets to mix (see DataSpec); a recipe lists them")
    cache: str | None = _opt(None, "feature cache (Zarr) made by `musilingo extract`, for every "
                             "data set without its own")
    features: Literal["cache", "online"] = _opt("cache", "cache (read pooled features) or online "
                                                "(run the encoder on audio every step, as the "
                                                "reference code did)")
    encoder: str | None = _opt(None, "online mode: encoder preset/hub id/folder (default: the "
                               "cache's encoder, else tiny)")
    encoder_dtype: str = _opt("fp32", "online mode: encoder compute dtype (fp32, bf16, fp16)")
    segment_seconds: float = _opt(30.0, "online mode without a cache: segment length in seconds")
    stride: int | None = _opt(None, "online mode: pooling stride in encoder frames (default: the "
                              "cache's, else t)")
    llm: str = _opt("smollm2", "frozen LLM: smollm2 (pip package), tiny-lm (built locally: the "
                            "demo's), tiny-llama (random weights), a hub id or a local folder")
    trust_remote_code: bool = _opt(False, "allow the LLM's/encoder's own modelling code")
    t: int = _opt(325, "frames per audio token; a multiple of the cache stride")
    layer_aggregation: LayerAggregation = _opt("mean", "mean (paper) or learned (softmax "
                                                       "weights, start at the mean)")
    adapter: str = _opt("linear", "adapter kind, recorded in the run folder: " +
                        adapter_kinds_help(), choices=adapter_kinds)
    lora_rank: int = _opt(0, "LoRA rank on the frozen LLM (0: no LoRA, the paper); the LoRA "
                             "matrices train with the adapter and are saved in PEFT's format")
    lora_alpha: float = _opt(16.0, "LoRA scaling numerator (the update is scaled by alpha/rank)")
    lora_dropout: float = _opt(0.0, "LoRA dropout on the LoRA branch's input")
    lora_lr: float | None = _opt(None, "peak learning rate of the LoRA matrices (default: lr; "
                                       "the schedule's shape is shared)")
    lora_targets: str = _opt("q_proj,v_proj", "comma list of the LLM's Linear layer names that "
                                              "get LoRA (Llama family: q_proj, k_proj, v_proj, "
                                              "o_proj, gate_proj, up_proj, down_proj)")
    prompt: Prompt = _opt("vicuna", "prompt layout: vicuna (the paper's ###Human: ... "
                                    "###Assistant: text) or chat (the LLM tokenizer's own chat "
                                    "template; loss on the answer and its end-of-turn token)")
    system_prompt: str = _opt("default", "prompt=chat: the system turn in front of every "
                                         "example: default (the chat template's own), none (an "
                                         "empty one: SmolLM2's default costs 21 tokens an "
                                         "example) or the text to use")
    standardize: bool = _opt(False, "standardise adapter inputs per dimension with statistics of "
                             "the training clips (fixed, saved with the adapter)")
    standardize_clips: int = _opt(512, "clips sampled for the standardisation statistics")
    adapter_init: AdapterInit = _opt("default", "default (nn.Linear's, as the paper) or "
                                                "embedding-scale (audio tokens start at the "
                                                "LLM's word-embedding size: faster learning "
                                                "with standardised inputs)")
    segments: Literal["random", "concat"] = _opt("random", "clips with several segments: random "
                                                 "(one per epoch, the paper's random crop) or "
                                                 "concat (in order, up to max_audio_tokens)")
    max_audio_tokens: int = _opt(64, "concat mode: most audio tokens per example")
    shuffle: Literal["auto", "rows", "shards"] = _opt(
        "auto", "example order: rows (a uniform permutation, the paper's), shards (cache shards "
                "in random order, shuffle_window at a time, examples shuffled within: each "
                "shard read about once per epoch) or auto (shards for a remote cache, rows "
                "otherwise)")
    shuffle_window: int = _opt(4, "shuffle=shards: cache shards whose examples are mixed together")
    mixing: Literal["equal", "proportional", "weighted"] = _opt(
        "equal", "several data sets: equal (each batch from one set, equal probability: paper), "
                 "proportional (to size) or weighted (DataSpec.weight)")
    group_by_length: bool = _opt(False, "batch examples of similar text length together (each "
                                 "data set's order sorted by length within runs of 32 "
                                 "micro-batches, the micro-batches then shuffled): less padding "
                                 "per step; off reproduces the paper's uniform order")
    max_text_tokens: int | None = _opt(None, "target truncation (default: 32 pretrain, 160 instruct)")
    max_missing_fraction: float = _opt(0.05, "fail if more than this fraction of annotation rows "
                                       "has no features (they are skipped and counted otherwise)")
    val_fraction: float = _opt(0.0, "hold out this fraction of the training clips (seeded, by "
                                    "clip) and report the loss on them (0: no validation)")
    val_split: str | None = _opt(None, "validate on this split of each data set (e.g. valid) "
                                       "instead of a fraction of the training clips")
    val_every: int = _opt(100, "with validation: its loss every N optimizer steps (and at the "
                               "end); the best adapter is kept in best/")
    early_stop: int = _opt(0, "with validation: stop after this many validations without a "
                              "new best loss (0: never)")
    batch_size: int = _opt(8, "examples per process per forward pass (DeepSpeed's micro-batch)")
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
    dtype: str = _opt("bf16", "LLM weights and compute dtype: bf16, fp16 (GPU only) or fp32")
    deepspeed: str = _opt("zero0", "zero0, zero2, zero3, zero2_offload, zero3_offload (shipped in "
                          "configs/deepspeed/) or a path to a DeepSpeed JSON")
    seed: int = _opt(42, "seed of the adapter's initialisation and of the data order")
    init_adapter: str | None = _opt(None, "start from this adapter (a stage-1 run folder)")
    out: str = _opt("runs/musilingo", "run folder: adapter, config, logs, resume state")
    resume: bool = _opt(False, "continue the run in `out` from its latest resume state")
    save_every: int = _opt(500, "write the resume state and the adapter every N optimizer steps")
    log_every: int = _opt(1, "log loss and learning rate every N optimizer steps")
    num_workers: int = _opt(2, "DataLoader workers reading the cache (online mode uses 0)")
    device: str = _opt("auto", DEVICE_HELP)
    progress: bool = _opt(True, "draw a tqdm progress bar")
    stop_after: int | None = _opt(None, "end the process after this many steps as if killed "
                                  "(testing resume); the schedule still spans the whole run")

    # Names of earlier releases, still read from recipes and run folders' config.yaml.
    RENAMED = {"out_dir": "out", "micro_batch_size": "batch_size", "online_stride": "stride",
               "normalize": "standardize", "normalize_clips": "standardize_clips",
               "precision": "dtype"}
    # Fields that do not change what a run computes: a resumed run may change them.
    RESUMABLE = ("out", "resume", "val_every", "early_stop", "save_every", "log_every",
                 "num_workers", "progress", "stop_after", "device")

    def __post_init__(self):  # data sets given as mappings (Python callers) are checked too
        self.datasets = [d if isinstance(d, DataSpec) else from_dict(DataSpec, d, "train",
                                                                     DataSpec.WHAT)
                         for d in self.datasets]

    @staticmethod
    def help(name: str) -> str:
        return help_of(TrainConfig, name)

    def validate(self) -> "TrainConfig":
        """A one-line UserError naming the first field out of range; returns self."""
        check_choices(self)
        for key in ("batch_size", "grad_accum", "epochs", "save_every", "log_every", "t",
                    "max_audio_tokens", "shuffle_window"):
            if int(getattr(self, key)) < 1:
                raise UserError(f"{key}={getattr(self, key)} must be at least 1")
        check_range(self, "num_workers", 0, 64, "DataLoader workers (0: read in the main "
                                                "process)")
        for key in ("max_steps", "steps_per_epoch", "warmup_steps", "stop_after"):
            value = getattr(self, key)
            if value is not None and int(value) < (1 if key == "steps_per_epoch" else 0):
                raise UserError(f"{key}={value} is out of range")
        if not self.datasets:
            raise UserError("no data sets: a recipe lists them under `datasets:`, or pass "
                            "--dataset NAME --annotations PATH")
        if not 0 <= self.val_fraction < 1 or self.val_every < 0 or self.early_stop < 0:
            raise UserError(f"val_fraction={self.val_fraction}, val_every={self.val_every}, "
                            f"early_stop={self.early_stop}: use 0 <= val_fraction < 1 and "
                            "counts >= 0")
        if self.val_split and self.val_fraction:
            raise UserError("give val_split or val_fraction, not both")
        if self.lora_rank < 0:
            raise UserError(f"lora_rank={self.lora_rank}: use a rank >= 0 (0: no LoRA)")
        self.lora()  # its own rules (models/adapter_config.py LoraConfig)
        if self.lr <= 0 or self.min_lr < 0 or self.warmup_lr < 0 or \
                (self.lora_lr is not None and self.lora_lr <= 0):
            raise UserError("learning rates must be positive")
        self.dtype = dtype_name(self.dtype, "dtype")
        self.encoder_dtype = dtype_name(self.encoder_dtype, "encoder_dtype")
        return self

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return from_dict(cls, d, "train")

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: list[str] = ()) -> "TrainConfig":
        return cls.from_dict(resolve(path, {}, overrides, verb="train"))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def system(self) -> str | None:
        """The chat template's system turn: None for its default, "" for an empty one."""
        return {"default": None, "none": ""}.get(self.system_prompt, self.system_prompt)

    def lora(self) -> LoraConfig | None:
        """The LoRA these flat options describe (None: lora_rank 0)."""
        return LoraConfig.parse(self.lora_rank, self.lora_alpha, self.lora_dropout,
                                self.lora_targets)

    def result_keys(self) -> dict:
        """The settings that decide what a run computes (compared on --resume)."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RESUMABLE}

