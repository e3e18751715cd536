"""Benchmark a training step at paper scale on one GPU: cached against online features.

    python benchmarks/bench_train_gpu.py                 # a GPU: MERT-330M + 7B LLaMA shapes, bf16, < 5 min
    python benchmarks/bench_train_gpu.py --dry-run       # anywhere: tiny shapes on the CPU, ~1 min
    python benchmarks/bench_train_gpu.py --json out.json --steps 8 --micro 8

Paper scale: a random HubertModel with MERT-v1-330M's layout (24 layers, 1024 wide, 25 hidden
states) and a random LlamaForCausalLM with Vicuna-7B's shape (4096 wide, 32 layers, 32 heads,
11008 MLP; its vocabulary is the SmolLM2 tokenizer's 49,152 rather than LLaMA's 32,000, +1% of
parameters), both bf16 on the GPU; 30 s clips (LP-MusicCaps-MSD previews: 7 audio tokens at
t = 325); stage 1's caption template; 8 clips per step (the paper's per-GPU batch); ZeRO-0.
Random weights: a step's cost depends on the shapes only.

Same harness as bench_train.py (the trainer's own micro-batch building and DeepSpeed step), in
one process: the 7B model and its engine are built once and both modes train it in turn (cached
first, then online; losses continue across them, which does not change a step's cost). Peak GPU
memory is `torch.cuda.max_memory_allocated`, reset before each mode; the online mode holds the
encoder too. The cache is built first by the real extraction job with the same encoder on the GPU
(fp16 rows): its time per clip is the one-off cost that online training pays every epoch.
Budget on an H100: ~1 min to build the models, ~1 min extraction, well under a minute of steps.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_train import batches_for, prepare, random_encoder, time_steps, trainer_parts  # noqa: E402

LLAMA_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048,
                rms_norm_eps=1e-5, tie_word_embeddings=False)
LLAMA_TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-5)


def random_llm(shape: dict, tokenizer, *, device, dtype):
    """A random LlamaForCausalLM built directly on the device in `dtype` (no disk round trip)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         **shape)
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(old)
    return model.eval().requires_grad_(False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU (checks the script)")
    ap.add_argument("--steps", type=int, default=8, help="steps per mode (the first 2 are warmup)")
    ap.add_argument("--micro", type=int, default=8, help="clips per step")
    ap.add_argument("--clips", type=int, default=16, help="distinct 30 s clips (cycled)")
    ap.add_argument("--tokenizer", default="tiny-llama",
                    help="LLM tokenizer: a preset or a folder of tokenizer files (the GPU "
                         "session carries SmolLM2's in .devcarry/tokenizer)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

    from musilingo.models.encoders.hubert import TINY_SIZES
    from musilingo.models.llm import load_tokenizer
    from musilingo.models.adapter_config import AdapterConfig
    from musilingo.models.adapters import build_adapter
    from musilingo.models.musilingo import MusiLingo
    from musilingo.models.prompts import get_template
    from musilingo.cache import FeatureCache
    from musilingo.features.sources import CacheSource, EncoderSource

    if args.dry_run:
        device, dtype, precision = "cpu", torch.float32, "fp32"
        enc_layout, enc_sizes, llm_shape, seconds = "95m", TINY_SIZES, LLAMA_TINY, 3.0
        args.steps, args.micro, args.clips = min(args.steps, 3), min(args.micro, 2), min(args.clips, 4)
    else:
        if not torch.cuda.is_available():
            sys.exit("no GPU visible: run with --dry-run to check the script on a CPU")
        device, dtype, precision = "cuda", torch.bfloat16, "bf16"
        enc_layout, enc_sizes, llm_shape, seconds = "330m", {}, LLAMA_7B, 30.0
    warmup = 1 if args.dry_run else 2
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    results = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
               "dry_run": args.dry_run, "micro": args.micro, "clip_seconds": seconds}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_train_gpu_") as tmp:
        encoder = random_encoder(enc_layout, device=device, dtype=dtype, **enc_sizes)
        data = prepare(Path(tmp), encoder, clips=args.clips, seconds=seconds, batch_size=args.micro)
        results["extract_seconds_per_clip"] = data["extract_seconds"] / data["clips"]
        cached = CacheSource(FeatureCache.open(data["cache"]))
        tok = load_tokenizer(args.tokenizer)  # SmolLM2's (offline): the LLM itself is random
        t = time.perf_counter()
        llm = random_llm(llm_shape, tok, device=device, dtype=dtype)
        results["llm_params"] = sum(p.numel() for p in llm.parameters())
        results["llm_build_seconds"] = time.perf_counter() - t
        torch.manual_seed(0)
        adapter = build_adapter(AdapterConfig(
            llm="random-llama", encoder_dim=cached.dim, llm_dim=llm.config.hidden_size,
            num_layers=cached.layers, stride=cached.stride, t=325,
            template=get_template("caption"))).to(device)
        model = MusiLingo(llm, tok, adapter)
        engine = trainer_parts(model, precision=precision, micro=args.micro, steps=2 * args.steps)
        sources = {"cached": cached,
                   "online": EncoderSource(encoder, stride=cached.stride, segment_seconds=seconds,
                                            keep=0)}
        for mode, source in sources.items():
            if device == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            batches = batches_for(source, data, model, micro=args.micro, steps=args.steps,
                                  stage="pretrain")
            r = time_steps(engine, batches, warmup=warmup, sync=sync)
            if device == "cuda":
                r["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
            results[mode] = r
    results["total_seconds"] = time.perf_counter() - t0
    c, o = results["cached"], results["online"]
    print(f"\n{results['device']}: encoder {enc_layout} shape, LLM {results['llm_params'] / 1e9:.2f}B "
          f"params, {precision}, {args.micro} x {seconds:g} s clips per step")
    print(f"{'mode':8} {'step s (median)':>16} {'samples/s':>10} {'peak GPU MB':>12}")
    for name, r in (("cached", c), ("online", o)):
        print(f"{name:8} {r['step_seconds_median']:16.4f} {r['samples_per_second']:10.2f} "
              f"{r.get('peak_gpu_mb', float('nan')):12.0f}")
    print(f"online / cached step time: {o['step_seconds_median'] / c['step_seconds_median']:.2f}x; "
          f"cache build {results['extract_seconds_per_clip']:.3f} s per clip (once); "
          f"total {results['total_seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
