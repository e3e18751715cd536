"""SmolLM2 training steps on the CPU, before and after issue 32's levers, in one run.

    .venv/bin/python benchmarks/bench_step_levers.py DATA CACHE [--old-rev 2445387] [--steps 25]
        [--json out.json]

DATA is a demo's data folder (`musilingo demo` writes it: qa.json, captions.csv, mcq.csv),
CACHE its feature cache. Every configuration is the real trainer (`musilingo train --config
demo_instruct`, stage 2: Q&A, captions and four-option questions, equal mixing, batch 8, seed
0, SmolLM2-135M-Instruct in its chat template, LoRA rank 16 on q/k/v/o, lr 3e-3), run as its own
process, in this order:

    before      the code at --old-rev (before issue 32), fp32, the template's default system turn
    after       this code: bf16, an empty system turn, length-grouped batches
    fp32        this code with the old settings (same losses as `before`: a regression check)
    +bf16       ... the frozen LLM in bf16
    +system     ... and an empty system turn
    before, after   again, to see the drift of a shared machine

Samples/s is the median over steps 4..N of each run's own `samples_per_s` (the trainer's step
time: batch building, forward, backward, optimizer). The ratio after/before is taken within one
round. Then the FLOPs of the `after` steps are counted (torch's FlopCounterMode, one process, no
timing) and set against the matmul peak this machine reaches in fp32 and bf16 (square GEMMs at
the trainer's thread count), so the fraction of the machine a step uses is stated, not guessed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMON = ["llm=smollm2", "batch_size=8", "mixing=equal", "lr=3e-3", "warmup_steps=2",
          "prompt=chat", "lora_rank=16", "lora_targets=q_proj,k_proj,v_proj,o_proj",
          "progress=false", "seed=0"]
NEW = {"before": None, "after": ["dtype=bf16", "system_prompt=none", "group_by_length=true"],
       "fp32": ["dtype=fp32"], "+bf16": ["dtype=bf16"],
       "+system": ["dtype=bf16", "system_prompt=none"]}
ORDER = ["before", "after", "fp32", "+bf16", "+system", "before", "after"]


def data_args(data: Path, cache: Path) -> list[str]:
    return [f"datasets.0.annotations={data}", f"datasets.1.annotations={data / 'captions.csv'}",
            f"datasets.2.annotations={data / 'mcq.csv'}", f"cache={cache}"]


def timed_run(code: Path, args: list[str], out: Path) -> dict:
    """One `musilingo train` process of `code`; its per-step rates and losses."""
    env = dict(os.environ, PYTHONPATH=str(code), HF_HUB_OFFLINE="1")
    recipe = code / "musilingo" / "configs" / "train" / "demo_instruct.yaml"
    cmd = [sys.executable, "-m", "musilingo", "train", "--config", str(recipe), *args,
           f"out={out}"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in rows[3:]]
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates),
            "losses": [r["loss"] for r in rows], "wall_s": time.perf_counter() - t}


def matmul_peak(dtype, n: int = 2048, reps: int = 10) -> float:
    """Best GFLOP/s of an n x n x n matmul over `reps` tries."""
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    best = float("inf")
    for _ in range(reps + 1):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def count_flops(args: list[str], out: Path, steps: int) -> list[float]:
    """FLOPs of each of the first `steps` optimizer steps of this code's trainer (forward +
    backward + optimizer), counted by torch, not timed."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(REPO))
    from musilingo.train.config import TrainConfig
    from musilingo.train.trainer import Trainer

    recipe = REPO / "musilingo" / "configs" / "train" / "demo_instruct.yaml"
    trainer = Trainer(TrainConfig.from_yaml(recipe, [*args, f"out={out}"]), log=lambda *a: None)
    trainer.setup()
    trainer.engine.train()
    batches = iter(trainer.job.loader(0))
    flops = []
    for _ in range(steps):
        with FlopCounterMode(display=False) as counter:
            trainer.train_step([next(batches)])
        flops.append(float(counter.get_total_flops()))
    torch.distributed.destroy_process_group()
    return flops


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("cache", type=Path)
    ap.add_argument("--old-rev", default="2445387", help="the code before issue 32")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    base = [*COMMON, f"max_steps={a.steps}", *data_args(a.data.absolute(), a.cache.absolute())]
    results: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old),
                        a.old_rev], check=True, capture_output=True)
        try:
            for i, name in enumerate(ORDER):
                code = old if NEW[name] is None else REPO
                extra = ["dtype=fp32"] if NEW[name] is None else NEW[name]
                r = timed_run(code, base + extra, Path(tmp) / f"run{i}")
                results.setdefault(name, []).append(r)
                print(f"{name:8s} {r['median']:6.2f} samples/s (min {r['min']:.2f}, max "
                      f"{r['max']:.2f}), first losses {[round(x, 5) for x in r['losses'][:3]]}",
                      flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)],
                           capture_output=True)
        flops = count_flops(base + NEW["after"], Path(tmp) / "flops", a.steps)
    import torch

    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    ratios = [af["median"] / bf["median"] for bf, af in zip(results["before"], results["after"])]
    same = max(abs(x - y) for x, y in zip(results["before"][0]["losses"],
                                          results["fp32"][0]["losses"]))
    after = results["after"][0]
    # Achieved: the mean FLOPs of the timed steps over the median step time of `after`.
    achieved = statistics.mean(flops[3:]) * after["median"] / 8 / 1e9
    summary = {"ratios_after_over_before": ratios, "max_loss_diff_before_vs_fp32": same,
               "flops_per_step": statistics.mean(flops[3:]), "achieved_gflops": achieved,
               "matmul_peak_gflops": peak, "threads": torch.get_num_threads(),
               "results": results, "date": time.strftime("%Y-%m-%d"), "steps": a.steps,
               "old_rev": a.old_rev}
    print(f"after / before: {', '.join(f'{r:.2f}x' for r in ratios)} (rounds 1 and 2)")
    print(f"before vs fp32 (old code vs this code, same settings): losses differ by {same:.2e}")
    print(f"after: {summary['flops_per_step'] / 1e9:.1f} GFLOP per step, {achieved:.1f} GFLOP/s "
          f"achieved; matmul peak {peak['fp32']:.1f} GFLOP/s fp32, {peak['bf16']:.1f} bf16 "
          f"({torch.get_num_threads()} threads)")
    if a.json:
        a.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
