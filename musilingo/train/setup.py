"""Everything a run needs before its first step, as named steps of `prepare`: the template,
the feature sources and the `AdapterConfig` they fit, the data sets, the model (with an optional
stage-1 adapter and feature statistics), the schedule's length, and a DataLoader factory that
starts anywhere in an epoch.

Bad input is refused here, before the LLM loads: a data set without features, a cache whose
width or encoder does not match the adapter, a stride that does not divide t, an adapter kind's
own rule, a stage-1 adapter of another kind or width, an empty data set, an LLM folder without
a tokenizer.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..cache import FeatureCache
from ..cache.layout import encoder_field
from ..cache.location import Location
from ..errors import UserError
from ..features.sources import CacheSource, EncoderSource
from ..models.adapter_config import AdapterConfig
from ..models.llm import llm_width, load_tokenizer, require_llm
from ..models.musilingo import MusiLingo
from ..models.prompts import stage_template
from ..vocabulary import torch_dtype
from ..runs.adapter_file import load_adapter
from .validation import heldout_sets, validation_plan
from .data import (ColumnExamples, MicroBatches, RunBatches, build_trainset, clip_ids_of,
                   example_features, example_lengths, mixing_probs)


@dataclass
class Job:
    model: MusiLingo
    sets: list
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    loader: object
    skipped: dict = field(default_factory=dict)
    hf_ds_config: object = None
    validation_batches: object = None
    """None, or a callable giving this process's share of every held-out micro-batch."""


def feature_sources(cfg, device: str, say) -> list:
    """One FeatureSource per data set (shared where they name the same cache)."""
    if cfg.features == "cache":
        opened: dict[str, CacheSource] = {}
        out = []
        for i, spec in enumerate(cfg.datasets):
            path = spec.cache or cfg.cache
            if not path:
                raise UserError(f"data set {i} ({spec.name}) has no feature cache: pass cache=PATH "
                                f"(made by `musilingo extract`) or datasets.{i}.cache=PATH, or train "
                                "with features=online")
            loc = Location(path)
            key = loc.url if loc.remote else str(loc.path.absolute())
            if key not in opened:
                opened[key] = CacheSource(FeatureCache.open(key))
            out.append(opened[key])
        return out
    from ..models.encoders import load_encoder

    meta = {}
    if cfg.cache:  # online features shaped exactly like an existing cache's
        meta = FeatureCache.open(cfg.cache).meta
    name = cfg.encoder or (meta.get("encoder") or {}).get("encoder") or "tiny"
    dtype = torch_dtype(cfg.encoder_dtype)
    # Online features shaped like a cache are also preprocessed like it (its recorded
    # normalisation); otherwise as the checkpoint's preprocessor_config.json says.
    normalize = encoder_field(meta["encoder"], "normalize") if meta.get("encoder") else "auto"
    encoder = load_encoder(name, trust_remote_code=cfg.trust_remote_code, device=device,
                           dtype=dtype, normalize=normalize)
    stride = cfg.stride or int(meta.get("stride", cfg.t))
    seg = float(meta.get("segment_seconds", cfg.segment_seconds))
    tail = float(meta.get("min_tail_seconds", 1.0))
    say(f"online features: encoder {name} on {device}, stride {stride}, {seg:g} s segments")
    source = EncoderSource(encoder, stride=stride, segment_seconds=seg, min_tail_seconds=tail,
                           keep=0)
    source.fill_identity()
    return [source] * len(cfg.datasets)


def run_adapter(cfg, sources: list, template) -> AdapterConfig:
    """The `AdapterConfig` this run trains, from its settings and the features of its first
    data set, checked with every rule (and against every other data set's features)."""
    first = sources[0]
    config = AdapterConfig(llm=cfg.llm, encoder_dim=first.dim, num_layers=first.layers,
                           stride=first.stride, t=cfg.t, kind=cfg.adapter,
                           layer_aggregation=cfg.layer_aggregation, template=template,
                           encoder=first.identity, lora=cfg.lora()).validate()
    for source in sources[1:]:  # mixed data sets: one encoder, one stride, one --normalize
        config.check_features(layers=source.layers, dim=source.dim, stride=source.stride,
                              encoder=source.identity, where=source.describe(),
                              run=f"this run (features of {first.describe()})", restride=False)
    return config


def check_init_adapter(config: AdapterConfig, folder: str, llm_dim: int
                       ) -> tuple[AdapterConfig, dict, str | None]:
    """The stage-1 adapter `folder` (config, state) after checking it fits the adapter `config`
    (as wide, of the same kind and layer aggregation, of the same encoder's features), and a
    note when its features were preprocessed differently (allowed: the reference code itself
    pre-trained on raw MSD waves and fine-tuned on normalised MusicCaps audio)."""
    old, state = load_adapter(folder)
    where = f"init_adapter {folder}"
    if old.llm_dim is not None and old.llm_dim != llm_dim:
        raise UserError(f"{where} has llm_dim={old.llm_dim} but this run needs {llm_dim} "
                        "(another LLM): start from an adapter of the same models")
    if old.kind != config.kind:
        raise UserError(f"{where} is a {old.kind} adapter but this run trains adapter="
                        f"{config.kind}: use the same adapter kind")
    if old.layer_aggregation == "learned" and config.layer_aggregation != "learned":
        raise UserError(f"{where} learned its layer weights, which layer_aggregation="
                        f"{config.layer_aggregation} would drop: train with "
                        "layer_aggregation=learned")
    # The wave normalisation may differ (the note below); everything else must match.
    identity = {k: v for k, v in config.encoder.items() if k != "normalize"}
    old.check_features(layers=config.num_layers, dim=config.encoder_dim, stride=config.stride,
                       encoder=identity, where="this run's features", run=where)
    before = encoder_field(old.encoder, "normalize")
    now = encoder_field(config.encoder, "normalize")
    note = None if before == now else (f"note: {where} was trained on features with wave "
                                       f"normalisation {before}, this run's features have {now}")
    return old, state, note


def init_from_adapter(model: MusiLingo, old: AdapterConfig, state: dict) -> None:
    """Load a checked stage-1 adapter's weights and standardisation into the new adapter."""
    own = model.adapter.state_dict()
    missing = [k for k in own if k not in state and k != "layer_logits"]
    if missing:
        raise UserError(f"init_adapter lacks {', '.join(missing)}")
    model.adapter.load_state_dict({k: state[k].to(own[k].dtype) if k in state else own[k]
                                   for k in own})
    model.config.standardized = old.standardized


def shuffle_groups(cfg, sets: list, say) -> list | None:
    """Per data set, the cache shard of each example under shuffle=shards (None: rows).

    auto means shards for a remote cache (one request per shard, not per row) and rows, the
    paper's uniform shuffle, for a local one. Shard reads are switched on to match."""
    mode = cfg.shuffle
    if mode == "auto":
        mode = "shards" if any(getattr(t.features, "remote", False) for t in sets) else "rows"
    for t in sets:
        if hasattr(t.features, "shard_reads"):
            t.features.shard_reads = mode == "shards"
            t.features.keep_shards = max(t.features.keep_shards, cfg.shuffle_window + 1)
    if mode == "rows":
        return None
    if any(not hasattr(t.features, "group") for t in sets):
        raise UserError("shuffle=shards groups examples by cache shard: it needs features=cache")
    say(f"shard-aware shuffle: cache shards in random order, {cfg.shuffle_window} at a time")
    return [t.examples.groups if isinstance(t.examples, ColumnExamples) else
            np.array([t.features.group(ex.clip_id) for ex in t.examples]) for t in sets]


@torch.no_grad()  # statistics, not part of any graph (the resampler's keys are trainable)
def fit_standardization(model: MusiLingo, sets: list, cfg) -> int:
    """Per-dimension mean/std of the adapter's inputs over up to `standardize_clips` clips."""
    seen, total, sq, n = set(), None, None, 0
    dev = model.adapter.feature_mean.device  # the adapter may already sit on a GPU
    for ts in sets:
        for ex in ts.examples:
            if len(seen) >= cfg.standardize_clips:
                break
            if ex.clip_id in seen:
                continue
            seen.add(ex.clip_id)
            f, c = example_features(ex, ts.features, mode="concat", seed=cfg.seed, epoch=0,
                                    factor=model.adapter.factor, max_audio_tokens=cfg.max_audio_tokens)
            x, cnt = model.adapter.pooled(torch.as_tensor(f, device=dev)[None],
                                          torch.as_tensor(c, device=dev)[None])
            x = x[0][cnt[0] > 0].double()
            total = x.sum(0) if total is None else total + x.sum(0)
            sq = (x * x).sum(0) if sq is None else sq + (x * x).sum(0)
            n += x.shape[0]
    mean = total / n
    std = (sq / n - mean * mean).clamp(min=0).sqrt().clamp(min=1e-6)
    model.adapter.feature_mean.copy_(mean.float())
    model.adapter.feature_std.copy_(std.float())
    model.config.standardized = True
    return len(seen)


def init_embedding_scale(model: MusiLingo) -> float:
    """Initialise the projection so audio tokens start at the size of the LLM's word embeddings.

    nn.Linear's default init gives audio tokens several times the norm of any text token
    (SmolLM2: ~14 against ~3.2), far outside what the frozen LLM has seen, and the adapter spends
    its first hundreds of steps shrinking them. Weights ~ N(0, (s^2 / d_in)) with zero bias give
    outputs of per-dimension std s, the embedding table's, when inputs have unit variance
    (`standardize=true`). Seeded by the run's seed like the default init.
    """
    proj = model.adapter.proj
    s = float(model.llm.get_input_embeddings().weight.float().std())
    with torch.no_grad():
        proj.weight.normal_(0.0, s / proj.in_features ** 0.5)
        proj.bias.zero_()
    return s


def run_template(cfg):
    """The prompt template of this run's stage and layout; a chat template is rendered from the
    LLM tokenizer's own (so a missing or broken one fails here, early)."""
    if cfg.prompt == "chat":
        tokenizer = load_tokenizer(cfg.llm, trust_remote_code=cfg.trust_remote_code)
        return stage_template(tokenizer, cfg.stage, "chat", cfg.max_text_tokens, cfg.system())
    return stage_template(None, cfg.stage, "vicuna", cfg.max_text_tokens)


def training_sets(cfg, sources: list, say) -> tuple[list, list, dict]:
    """(training sets, validation sets, rows skipped per data set)."""
    sets, skipped = [], {}
    for spec, source in zip(cfg.datasets, sources):
        ts = build_trainset(spec, cfg.stage, source, cfg.max_missing_fraction)
        sets.append(ts)
        skipped[spec.name] = ts.skipped
        say(f"{spec.name}: {len(ts.examples)} examples"
            + (f", {ts.skipped} rows skipped (no features)" if ts.skipped else ""))
    sets, val_sets = heldout_sets(cfg, sets, cfg.stage)
    if val_sets:
        say("validation: " + ", ".join(f"{ts.name} {len(ts.examples)} held-out examples over "
                                       f"{len(set(clip_ids_of(ts.examples)))} clips"
                                       for ts in val_sets))
    return sets, val_sets, skipped


def build_model(cfg, config: AdapterConfig, init, sets: list, *, device: str, say) -> MusiLingo:
    """The frozen LLM with a fresh adapter (and LoRA), then its start: the stage-1 adapter
    `init` ((config, state) already checked), or fitted standardisation and initial scale."""
    # A first use builds the LLM's folder and a 7B load takes minutes: say so, then how long.
    say(f"loading the frozen LLM {cfg.llm} ({cfg.dtype}) ...")
    t0 = time.perf_counter()
    model = MusiLingo.build(config, dtype=torch_dtype(cfg.dtype), device=device,
                            trust_remote_code=cfg.trust_remote_code, seed=cfg.seed)
    n = sum(p.numel() for n_, p in model.llm.named_parameters() if "lora_" not in n_)
    size = f"{n / 1e9:.1f}B" if n >= 1e9 else f"{n / 1e6:.0f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"
    say(f"LLM {cfg.llm}: {size} frozen parameters, loaded in {time.perf_counter() - t0:.0f} s")
    if config.lora is not None:
        lora = sum(p.numel() for n_, p in model.llm.named_parameters() if "lora_" in n_)
        say(f"LoRA rank {config.lora.r} on {','.join(config.lora.targets)}: {lora:,} trainable "
            "LLM parameters")
    if init is not None:
        init_from_adapter(model, *init)
        say(f"adapter initialised from {cfg.init_adapter}")
        return model
    if cfg.standardize:
        clips = fit_standardization(model, sets, cfg)
        say(f"feature standardisation fitted on {clips} clips")
    if cfg.adapter_init == "embedding-scale":
        scale = init_embedding_scale(model)
        say(f"adapter initialised at the LLM's embedding scale (output std {scale:.3g})")
    return model


def prepare(cfg, ds: dict, *, device: str, rank: int, world: int, say) -> Job:
    """Every check, then the data sets, the model and the batches of the run."""
    template = run_template(cfg)
    sources = feature_sources(cfg, device, say)
    config = run_adapter(cfg, sources, template)
    require_llm(cfg.llm)  # before the data set-up (minutes at MSD scale), not after
    init = None
    if cfg.init_adapter:
        *init, note = check_init_adapter(config, cfg.init_adapter, llm_width(cfg.llm))
        if note:
            say(note)
    sets, val_sets, skipped = training_sets(cfg, sources, say)
    hf_ds = None
    if int(ds.get("zero_optimization", {}).get("stage", 0)) == 3:
        # Load the LLM straight into ZeRO-3 partitions (a 7B model never sits whole on a rank).
        from transformers.integrations import HfDeepSpeedConfig

        hf_ds = HfDeepSpeedConfig(ds)
    model = build_model(cfg, config, init, sets, device=device, say=say)
    return schedule(cfg, model, sets, val_sets, skipped, hf_ds, rank=rank, world=world, say=say)


def schedule(cfg, model: MusiLingo, sets: list, val_sets: list, skipped: dict, hf_ds, *,
             rank: int, world: int, say) -> Job:
    """The run's length (steps per epoch, total, warm-up) and its batches: a DataLoader factory
    over every micro-batch of the run, and the held-out batches when validating."""
    global_micro = cfg.batch_size * world
    n_examples = sum(len(ts.examples) for ts in sets)
    steps_per_epoch = cfg.steps_per_epoch or max(1, n_examples // (global_micro * cfg.grad_accum))
    # max_steps=0 is meaningful: the untrained adapter is saved (a baseline for evaluation).
    total_steps = cfg.max_steps if cfg.max_steps is not None else cfg.epochs * steps_per_epoch
    warmup = min(cfg.warmup_steps if cfg.warmup_steps is not None else steps_per_epoch, total_steps)
    sizes = [len(ts.examples) for ts in sets]
    probs = mixing_probs(sizes, cfg.mixing, [s.weight for s in cfg.datasets])
    workers = 0 if cfg.features == "online" else cfg.num_workers
    groups = shuffle_groups(cfg, sets, say)
    batch_args = dict(rank=rank, micro=cfg.batch_size, tokenizer=model.tokenizer,
                      template=model.template, seed=cfg.seed, factor=model.adapter.factor,
                      mode=cfg.segments, max_audio_tokens=cfg.max_audio_tokens)
    data = RunBatches(sets, per_epoch=steps_per_epoch * cfg.grad_accum,
                      total=total_steps * cfg.grad_accum,
                      plan_args=dict(sizes=sizes, probs=probs,
                                     micro_batches=steps_per_epoch * cfg.grad_accum,
                                     global_micro=global_micro, seed=cfg.seed, groups=groups,
                                     window=cfg.shuffle_window,
                                     lanes=max(1, workers),  # each worker its own shards
                                     lengths=([example_lengths(ts.examples) for ts in sets]
                                              if cfg.group_by_length else None)),
                      batch_args=batch_args)

    def loader(start_micro: int):
        """Every micro-batch of the run from `start_micro` (a global index across epochs)."""
        # An object-store client does not survive fork (its I/O runtime's threads stay in the
        # parent): workers reading a remote cache start fresh and re-open it themselves.
        context = "spawn" if workers and any(getattr(t.features, "remote", False)
                                             for t in sets) else None
        return torch.utils.data.DataLoader(data, batch_size=None,
                                           sampler=range(start_micro, len(data)),
                                           num_workers=workers,
                                           prefetch_factor=4 if workers else None,
                                           multiprocessing_context=context,
                                           persistent_workers=bool(workers))

    def validation_batches():
        held_out = MicroBatches(val_sets, validation_plan(val_sets, global_micro), epoch=0,
                                **batch_args)
        return (held_out[i] for i in range(len(held_out)))

    say(f"{n_examples} examples, {steps_per_epoch} steps/epoch, {total_steps} steps "
        f"({cfg.batch_size} x {cfg.grad_accum} accumulation x {world} processes per step), "
        f"warmup {warmup}, {cfg.deepspeed}, {cfg.dtype}")
    return Job(model, sets, steps_per_epoch, total_steps, warmup, loader, skipped, hf_ds,
               validation_batches if val_sets else None)
