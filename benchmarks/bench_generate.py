"""Generation throughput (answers/s): batched against one at a time, tiny models on the CPU.

    python benchmarks/bench_generate.py [--n 48] [--max-new-tokens 32] [--threads 1] \\
        [--batch-sizes 1,4,8,16,32] [--json out.json]

Model: tiny-llama (2 layers, width 64, SmolLM2's 49k vocabulary) behind a random adapter for
the tiny encoder's features (3 hidden states x 128, stride 65 re-pooled to t = 325); each item is
a 30 s clip (7 audio tokens) and one of several questions, in the stage-2 template. Features are
precomputed, so this times generation alone (`musilingo.infer.generate_for_items`, the path the
score mode and the demo take). A random LM never writes `###`, so every answer is exactly
--max-new-tokens long and all batch sizes do the same work. Greedy answers must be identical for
every batch size (checked), so batching is pure speed.

One thread by default: the machines this was written on share 2 cores between several jobs,
and one thread makes the comparison less noisy; each setting runs --repeat times, best kept.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

QUESTIONS = ["What instrument is playing?", "What is the tempo of this piece?",
             "Is it in a major or a minor key?", "Describe the mood of the music.",
             "Please give a caption to the music.", "Which register is the melody in?"]


def build(n: int):
    from musilingo.features import PooledSegment
    from musilingo.infer.items import Item
    from musilingo.models.adapter_config import AdapterConfig
    from musilingo.models.musilingo import MusiLingo
    from musilingo.models.prompts import get_template

    model = MusiLingo.build(AdapterConfig(llm="tiny-llama", encoder_dim=128, num_layers=3,
                                          stride=65, t=325, template=get_template("instruct")))
    rng = np.random.default_rng(0)
    features, items = {}, []
    for i in range(n):
        clip = f"clip{i:03d}"
        counts = np.full(35, 65, np.int32)
        counts[-1] = 2249 - 34 * 65          # a 30 s clip: 2249 frames, last window short
        features[clip] = [PooledSegment(rng.standard_normal((3, 35, 128)).astype(np.float32),
                                        counts, 0.0, 30.0)]
        items.append(Item(f"{clip}:0", clip, QUESTIONS[i % len(QUESTIONS)]))
    return model, items, features


def run(model, items, features, batch_size: int, max_new: int, repeat: int):
    from musilingo.infer import GenerationConfig, generate_for_items

    cfg = GenerationConfig(max_new_tokens=max_new)
    best, answers = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        answers = generate_for_items(model, items, features, config=cfg, batch_size=batch_size)
        best = min(best, time.perf_counter() - t0)
    return best, answers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48, help="answers per setting")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-sizes", default="1,4,8,16,32")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, items, features = build(args.n)
    run(model, items[:4], features, 4, 4, 1)   # warm-up: first-call allocations, tokenizer
    results, reference = [], None
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        seconds, answers = run(model, items, features, bs, args.max_new_tokens, args.repeat)
        reference = reference if reference is not None else answers
        same = answers == reference
        results.append({"batch_size": bs, "seconds": round(seconds, 3),
                        "answers_per_s": round(args.n / seconds, 2),
                        "tokens_per_s": round(args.n * args.max_new_tokens / seconds, 1),
                        "same_answers_as_first": same})
    base = results[0]["answers_per_s"]
    print(f"{args.n} answers x {args.max_new_tokens} new tokens, greedy, tiny-llama, "
          f"{args.threads} thread(s), best of {args.repeat}")
    print("| batch size | seconds | answers/s | tokens/s | speed-up | same answers |")
    print("|---:|---:|---:|---:|---:|:-:|")
    for r in results:
        print(f"| {r['batch_size']} | {r['seconds']:.2f} | {r['answers_per_s']:.2f} | "
              f"{r['tokens_per_s']:.0f} | {r['answers_per_s'] / base:.1f}x | "
              f"{'yes' if r['same_answers_as_first'] else 'NO'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=2)
    if not all(r["same_answers_as_first"] for r in results):
        raise SystemExit("batched greedy answers differ from one-at-a-time answers")


if __name__ == "__main__":
    main()
