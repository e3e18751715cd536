"""Benchmark a training step with cached features against online features, at equal shapes.

    .venv/bin/python benchmarks/bench_train.py                    # CPU: MERT-95M shape + SmolLM2, ~3-5 min
    .venv/bin/python benchmarks/bench_train.py --json out.json --steps 5 --online-steps 3

What is timed is the trainer's own step (musilingo.train): build the micro-batch (`MicroBatches`:
tokenise, fetch features, collate), the DeepSpeed engine's forward, backward and optimizer step.
Both modes train the same adapter on the same batches in the same order; they differ only in
where a clip's window means come from:
- cached: `CacheSource` reads the clip's row from a Zarr cache made beforehand by the real
  extraction job (`run_extract`), so the encoder never runs during training;
- online: `EncoderSource` decodes the audio and runs the frozen encoder on it in the step (the
  reference code's way, minus its live SpecAugment).
Each mode runs in its own subprocess, so each peak RSS (ru_maxrss) is that mode's own: the cached
process never loads the encoder. The first step of each mode is a warmup and is not timed.

Shapes (CPU): a random HubertModel with MERT-v1-95M's layout (12 layers, 768 wide, 13 hidden
states; no real MERT weights exist offline, and a forward's cost depends on the shape only),
10 s synthetic clips at 24 kHz (MusicCaps length: 3 audio tokens at t = 325), the real
SmolLM2-135M-Instruct (fp32), the instruct template, 4 clips per step, ZeRO-0, one torch thread
(--threads; on a shared 2-core machine two OpenMP threads mostly wait for each other).
The cache build is timed too: it is what the cache costs once, against what online pays per
epoch.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# ---------------------------------------------------------------------- shared harness
def random_encoder(layout: str, *, device="cpu", dtype=torch.float32, seed: int = 0, **sizes):
    """A FrozenEncoder around a random HubertModel with MERT's layout (kept in memory)."""
    from transformers import HubertModel, Wav2Vec2FeatureExtractor

    from musilingo.models.encoders.hubert import MERT_SAMPLE_RATE, FrozenEncoder, mert_config

    torch.manual_seed(seed)
    model = HubertModel(mert_config(layout, **sizes)).to(device=device, dtype=dtype)
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=MERT_SAMPLE_RATE, padding_value=0.0,
                                  do_normalize=True, return_attention_mask=True)
    return FrozenEncoder(model, fe, f"random-mert-{layout}")


def prepare(work: Path, encoder, *, clips: int, seconds: float, stride: int = 325,
            store_dtype: str = "float16", batch_size: int = 4) -> dict:
    """Synthetic clips + their cache made by the extraction job; returns paths and the build time."""
    from musilingo.data import read_dataset
    from musilingo.synth import generate
    from musilingo.extract.job import ExtractConfig, run_extract
    from musilingo.extract.plan import clip_list

    synth = generate(work / "synth", n_train=clips, n_test=0, seconds=seconds, workers=2)
    cache = work / "cache.zarr"
    enc_dtype = {torch.float32: "float32", torch.bfloat16: "bfloat16",
                 torch.float16: "float16"}[encoder.dtype]
    cfg = ExtractConfig(out=str(cache), stride=stride, segment_seconds=seconds,
                        storage_dtype=store_dtype,
                        encoder_dtype=enc_dtype, batch_size=batch_size, decode_workers=1,
                        progress=False, shard_rows=16, device=str(encoder.device).split(":")[0])
    t = time.perf_counter()
    run_extract(clip_list(read_dataset("synth", synth, None)), cfg, {"name": "synth"},
                encoder=encoder, log=lambda *a: None)
    return {"synth": str(synth), "cache": str(cache), "extract_seconds": time.perf_counter() - t,
            "clips": clips, "clip_seconds": seconds}


def trainer_parts(model, *, precision: str, micro: int, steps: int, stage: str = "instruct"):
    """A DeepSpeed engine on `model` exactly as `musilingo.train` builds it (ZeRO-0)."""
    from musilingo.train.config import TrainConfig
    from musilingo.train.engine import build_engine, init_distributed, resolve_ds_config

    device = "cpu" if model.adapter.proj.weight.device.type == "cpu" else "cuda"
    init_distributed(device)
    cfg = TrainConfig(stage=stage, dtype=precision, deepspeed="zero0", batch_size=micro,
                      grad_accum=1, lr=1e-4, min_lr=8e-5, warmup_lr=1e-6)
    ds = resolve_ds_config(cfg, device)
    engine, _ = build_engine(model, cfg, ds, warmup_steps=1, total_steps=max(steps, 2))
    return engine


def batches_for(source, data: dict, model, *, micro: int, steps: int, stage: str):
    """The trainer's micro-batches (same plan for every source): a lazy, indexable Dataset."""
    from musilingo.train.config import DataSpec
    from musilingo.train.data import MicroBatches, build_trainset, epoch_plan

    annotations = data["synth"] if stage == "instruct" else str(Path(data["synth"]) / "captions.csv")
    ts = build_trainset(DataSpec(name="synth", annotations=annotations), stage, source, 0.0)
    plan = epoch_plan([len(ts.examples)], np.array([1.0]), steps, micro, seed=0, epoch=0)
    return MicroBatches([ts], plan, rank=0, micro=micro, tokenizer=model.tokenizer,
                        template=model.template, seed=0, epoch=0, factor=model.adapter.factor,
                        mode="random", max_audio_tokens=64)


def time_steps(engine, batches, *, warmup: int, sync=lambda: None) -> dict:
    """Run the trainer's step over every batch; time all but the first `warmup`."""
    times, losses = [], []
    for i in range(len(batches)):
        sync()
        t = time.perf_counter()
        b = batches[i]                              # features: cache read or encoder run
        b["loss_norm"] = float((b["labels"] != -100).sum())
        loss = engine(b)
        engine.backward(loss)
        engine.step()
        losses.append(float(loss.detach().float()))
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    step = float(np.median(times))
    return {"step_seconds_median": step, "step_seconds": times, "losses": losses,
            "samples_per_second": batches.micro / step}


# ------------------------------------------------------------------------------- CPU main
def measure_cpu(mode: str, data: dict, args) -> dict:
    from musilingo.models.adapter_config import AdapterConfig
    from musilingo.models.musilingo import MusiLingo
    from musilingo.models.prompts import get_template
    from musilingo.cache import FeatureCache
    from musilingo.features.sources import CacheSource, EncoderSource

    torch.set_num_threads(args.threads)
    cached = CacheSource(FeatureCache.open(data["cache"]))
    if mode == "cached":
        source = cached
    else:
        encoder = random_encoder("95m")
        source = EncoderSource(encoder, stride=cached.stride, segment_seconds=data["clip_seconds"],
                               keep=0)
    model = MusiLingo.build(AdapterConfig(llm="smollm2", encoder_dim=cached.dim,
                                          num_layers=cached.layers, stride=cached.stride, t=325,
                                          template=get_template("instruct")), dtype="fp32")
    steps = args.steps if mode == "cached" else args.online_steps
    engine = trainer_parts(model, precision="fp32", micro=args.micro, steps=steps)
    out = time_steps(engine, batches_for(source, data, model, micro=args.micro, steps=steps,
                                         stage="instruct"), warmup=1)
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: Linux carries ru_maxrss across
    exec, so a child would report its parent's peak at fork time."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6, help="cached steps (first is warmup)")
    ap.add_argument("--online-steps", type=int, default=3, help="online steps (first is warmup)")
    ap.add_argument("--micro", type=int, default=4, help="clips per step")
    ap.add_argument("--clips", type=int, default=8, help="distinct clips (cycled by the plan)")
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: stable numbers on a shared 2-core machine)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--mode", choices=["cached", "online"], help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if args.mode:  # a child: one mode, one process, print JSON
        print("RESULT " + json.dumps(measure_cpu(args.mode, json.loads(args.data), args)))
        return

    from musilingo.models.llm import smollm2_folder

    smollm2_folder()  # convert the GGUF once, outside any timing
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        torch.set_num_threads(args.threads)
        encoder = random_encoder("95m")
        data = prepare(Path(tmp), encoder, clips=args.clips, seconds=args.seconds)
        del encoder
        results = {"load_average": os.getloadavg(), "threads": args.threads, **data}
        for mode in ("cached", "online"):
            cmd = [sys.executable, __file__, "--mode", mode, "--data", json.dumps(data),
                   *[f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                     if k in ("steps", "online_steps", "micro", "threads")]]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
            if proc.returncode or not line:
                sys.exit(f"{mode} failed:\n{proc.stderr[-3000:]}")
            results[mode] = json.loads(line[-1][7:])
        results["load_average_after"] = os.getloadavg()
    c, o = results["cached"], results["online"]
    per_clip_extract = results["extract_seconds"] / results["clips"]
    print(f"\nMERT-95M shape -> SmolLM2-135M, {args.micro} x {args.seconds:g} s clips per step, "
          f"fp32, {args.threads} threads (load {results['load_average'][0]:.1f})")
    print(f"{'mode':8} {'step s (median)':>16} {'samples/s':>10} {'peak RSS MB':>12}")
    for name, r in (("cached", c), ("online", o)):
        print(f"{name:8} {r['step_seconds_median']:16.3f} {r['samples_per_second']:10.2f} "
              f"{r['peak_rss_mb']:12.0f}")
    print(f"online / cached step time: {o['step_seconds_median'] / c['step_seconds_median']:.1f}x; "
          f"cache build: {per_clip_extract:.2f} s per clip (once)")
    n = min(len(c["losses"]), len(o["losses"]))
    print(f"same batches, same losses: max |diff| over {n} steps = "
          f"{max(abs(a - b) for a, b in zip(c['losses'][:n], o['losses'][:n])):.2e}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
