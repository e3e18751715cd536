"""Validation during training: a held-out split scored every `val_every` steps with the loss,
the best adapter kept beside the last, optional early stopping, the curve in the run folder.

    val_sets = heldout_sets(cfg, sets, stage, sources)      # given split, or a clip fraction
    check = Validation(run_dir, cfg, val_sets, batches, rank=rank)
    if check.due(step, total): result = check.run(engine, step, model)  # collective

The held-out examples are either each data set's `val_split` rows (e.g. LP-MusicCaps-MSD's
"valid") or a seeded fraction of the training *clips* (`val_fraction`: every question about a
held-out clip leaves training, so no clip is seen on both sides). The loss is the training loss
(target tokens only, summed over all held-out examples and divided by their target-token
count), computed without gradients in a fixed order: the same number at any world size.

Run folder: `validation.jsonl` ({step, val_loss, best}), `best/` (adapter.safetensors,
adapter_config.json, and lora/ with LoRA: the adapter of the lowest validation loss so far).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..models.prompts import IGNORE
from .data import TrainSet, build_trainset, clip_ids_of, subset

VALIDATION = "validation.jsonl"
BEST = "best"


def _held_out(seed: int, clip_id: str, fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(f"val/{seed}/{clip_id}".encode()).digest()[:8], "little")
    return h / 2.0 ** 64 < fraction


def split_clips(sets: list[TrainSet], fraction: float, seed: int
                ) -> tuple[list[TrainSet], list[TrainSet]]:
    """(training sets, held-out sets): a seeded `fraction` of each set's clips held out."""
    train, val = [], []
    for ts in sets:
        ids = clip_ids_of(ts.examples)
        held = np.array([_held_out(seed, clip, fraction) for clip in ids], dtype=bool)
        keep = subset(ts.examples, np.flatnonzero(~held))
        out = subset(ts.examples, np.flatnonzero(held))
        if not len(keep) or not len(out):
            raise UserError(f"val_fraction={fraction}: data set {ts.name} has "
                            f"{len(set(ids))} clips, too few to hold "
                            "some out and train on the rest; change val_fraction or give "
                            "val_split")
        train.append(dataclasses.replace(ts, examples=keep))
        val.append(dataclasses.replace(ts, examples=out))
    return train, val


def heldout_sets(cfg, sets: list[TrainSet], stage: str) -> tuple[list[TrainSet], list[TrainSet]]:
    """(training sets, validation sets) under cfg.val_split / cfg.val_fraction ([] when off)."""
    if cfg.val_split:
        val = [build_trainset(dataclasses.replace(spec, split=cfg.val_split), stage, ts.features,
                              cfg.max_missing_fraction)
               for spec, ts in zip(cfg.datasets, sets)]
        return sets, val
    if cfg.val_fraction:
        return split_clips(sets, cfg.val_fraction, cfg.seed)
    return sets, []


def validation_plan(val_sets: list[TrainSet], global_micro: int) -> list[tuple[int, np.ndarray]]:
    """Every held-out example once, in order, in global micro-batches (the last one of each set
    filled up from its start, so that every rank gets a full share)."""
    plan = []
    for d, ts in enumerate(val_sets):
        n = len(ts.examples)
        for start in range(0, n, global_micro):
            idx = np.arange(start, start + global_micro) % n
            plan.append((d, idx))
    return plan


class Validation:
    """Runs the held-out loss, keeps the best adapter, decides early stopping."""

    def __init__(self, run_dir: Path, cfg, batches, *, rank: int, start_step: int):
        self.run_dir, self.cfg, self.batches, self.rank = run_dir, cfg, batches, rank
        self.path = run_dir / VALIDATION
        self.best, self.bad = float("inf"), 0
        rows = []
        if self.path.is_file():  # a resumed run: the curve up to the resume step, and its state
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if int(row.get("step", 0)) <= start_step:
                    rows.append(row)
        for row in rows:
            if row["val_loss"] < self.best:
                self.best, self.bad = row["val_loss"], 0
            else:
                self.bad += 1
        if rank == 0:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def due(self, step: int, total_steps: int) -> bool:
        return step == total_steps or (self.cfg.val_every and step % self.cfg.val_every == 0)

    @torch.no_grad()
    def loss(self, engine) -> float:
        import torch.distributed as dist

        device = next(engine.module.adapter.parameters()).device
        total = torch.zeros(2, dtype=torch.float64, device=device)   # nll sum, target tokens
        was_training = engine.module.training
        engine.eval()
        try:
            for batch in self.batches():
                n = float((batch["labels"] != IGNORE).sum())
                batch["loss_norm"] = max(n, 1.0)
                total[0] += float(engine(batch).float()) * max(n, 1.0)
                total[1] += n
        finally:
            engine.train(was_training)
        dist.all_reduce(total)
        return float(total[0] / max(float(total[1]), 1.0))

    def run(self, engine, step: int, save_best) -> tuple[float, bool]:
        """(validation loss, stop now?); `save_best(folder)` writes the adapter (a collective)."""
        value = self.loss(engine)
        improved = value < self.best
        if improved:
            self.best, self.bad = value, 0
            save_best(self.run_dir / BEST)
        else:
            self.bad += 1
        if self.rank == 0:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": step, "val_loss": value, "best": self.best}) + "\n")
        stop = bool(self.cfg.early_stop) and self.bad >= self.cfg.early_stop
        return value, stop
