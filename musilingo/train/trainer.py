"""The training run: features + annotations -> adapter, under a DeepSpeed engine.

    musilingo train --config pretrain_msd cache=msd.zarr out=runs/stage1
    torchrun --nproc_per_node 2 -m musilingo train --config pretrain_msd cache=msd.zarr
    python -c "from musilingo.train import TrainConfig, run; run(TrainConfig(...))"

Every optimizer step takes `grad_accum` micro-batches on each of the N processes. The loss is
normalised by the number of target tokens in the WHOLE step (all micro-batches, all processes;
one small all-reduce), so N processes, accumulation and one big batch give the same gradient -
unlike a per-micro-batch mean, which weights short answers more in small batches.

The run folder gets config.yaml (resolved), adapter.safetensors + adapter_config.json (every
`save_every` steps and at the end), metrics.jsonl and TensorBoard events (loss, learning rate,
samples/s per step), and resume/ (see checkpoint.py). `resume=true` continues from the latest
resume state; on CPU it reproduces the losses of an uninterrupted run exactly.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from ..errors import UserError
from ..files import atomic_write, sweep_temporaries
from ..models.lora import save_lora
from ..models.prompts import IGNORE
from ..vocabulary import rank_device, resolve_device
from ..runs.adapter_file import save_adapter
from .checkpoint import (RESUME, full_adapter_state, full_lora_state, latest_resume, load_resume,
                         save_resume)
from .config import TrainConfig
from .engine import build_engine, init_distributed, lr_at, resolve_ds_config, zero_stage
from .setup import prepare
from .validation import BEST, Validation

METRICS = "metrics.jsonl"
CONFIG = "config.yaml"


@dataclass
class RunResult:
    run_dir: Path
    adapter: Path
    config: Path
    metrics: Path
    steps: int                      # optimizer steps done in total (including resumed ones)
    final_loss: float | None
    losses: list[float] = field(default_factory=list)   # per step, this invocation
    seconds: float = 0.0            # training-loop wall time of this invocation
    samples_per_second: float = 0.0
    skipped: dict = field(default_factory=dict)          # data set -> rows without features
    stopped_early: bool = False
    early_stopped: bool = False     # validation stopped it (the run is complete, best/ kept)
    val_best: float | None = None


def _check_run_dir(cfg: TrainConfig, run_dir: Path) -> None:
    saved = run_dir / CONFIG
    if cfg.resume:
        if saved.is_file():
            old = TrainConfig.from_dict(yaml.safe_load(saved.read_text())).result_keys()
            new = cfg.result_keys()
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            if diff:
                shown = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff[:4])
                raise UserError(f"{run_dir} was started with a different config ({shown}): resume "
                                "with the same settings, or use another out")
    elif saved.is_file() or (run_dir / "resume").exists():
        raise UserError(f"{run_dir} already holds a run: pass resume=true (--resume) to continue "
                        "it, or choose another out")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines a killed run logged after the state we resume from (they are redone)."""
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["step"] <= step]
    path.write_text("".join(ln + "\n" for ln in keep))


class Trainer:
    """One training run as named steps, like torchtune's single-device recipe:
    `setup` (process group, run folder, data, model, engine, resume state), `train_step` (one
    optimizer step over `grad_accum` micro-batches), `log_step`, `validate`, `save`, and
    `finish`; `run` wires them."""

    def __init__(self, cfg: TrainConfig, log=print):
        self.cfg, self.log = cfg.validate(), log

    # ------------------------------------------------------------------ set-up
    def setup(self) -> None:
        import torch.distributed as dist

        cfg = self.cfg
        kind = "cpu" if resolve_device(cfg.device) == "cpu" else "cuda"
        self.rank, self.world, local_rank = init_distributed(kind)
        self.device = rank_device(cfg.device, local_rank)
        if self.device.startswith("cuda"):
            torch.cuda.set_device(self.device)
        self.say = self.log if self.rank == 0 else (lambda *a, **k: None)
        self.run_dir = Path(cfg.out).expanduser().absolute()
        _check_run_dir(cfg, self.run_dir)
        dist.barrier()
        ds = resolve_ds_config(cfg, kind)
        self.job = job = prepare(cfg, ds, device=self.device, rank=self.rank, world=self.world,
                                 say=self.say)
        self.say(f"starting DeepSpeed (ZeRO stage {zero_stage(ds)}, {self.world} process"
                 f"{'es' if self.world > 1 else ''}) ...")
        self.engine, _ = build_engine(job.model, cfg, ds, warmup_steps=job.warmup_steps,
                                      total_steps=job.total_steps)
        del job.hf_ds_config  # ZeRO-3 loading is done: later loads in this process are ordinary
        self.start_step = self.resume(zero_stage(ds))
        self.metrics_path = self.run_dir / METRICS
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # files a killed run had not yet renamed into place (files.temp_path names)
            sweep_temporaries(self.run_dir, (".", "lora", RESUME, BEST, f"{BEST}/lora"))
            atomic_write(self.run_dir / CONFIG, cfg.to_yaml())
            _truncate_metrics(self.metrics_path, self.start_step)
        dist.barrier()
        self.writer = self.bar = self.check = None
        if self.rank == 0:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"),
                                        purge_step=self.start_step or None)
            if cfg.progress:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=job.total_steps, initial=self.start_step, desc="train",
                                unit="step", dynamic_ncols=True)
        if job.validation_batches is not None:
            self.check = Validation(self.run_dir, cfg, job.validation_batches, rank=self.rank,
                                    start_step=self.start_step)

    def resume(self, stage: int) -> int:
        """The step to start from: 0, or the latest resume state's (loaded into the engine)."""
        cfg, world = self.cfg, self.world
        if not cfg.resume or (state_dir := latest_resume(self.run_dir)) is None:
            return 0
        state = load_resume(state_dir, self.engine, rank=self.rank)
        if state["world_size"] != world and stage > 0:
            raise UserError(f"{self.run_dir} was trained by {state['world_size']} processes with "
                            f"ZeRO stage {stage}; resume it with the same number ({world})")
        if state["global_micro_batch"] != cfg.batch_size * world:
            raise UserError(f"{self.run_dir} used {state['global_micro_batch']} examples per "
                            f"global micro-batch; now {cfg.batch_size} x {world} processes differ")
        self.say(f"resuming {self.run_dir} at step {state['step']} of {self.job.total_steps}")
        return int(state["step"])

    # ------------------------------------------------------------------ one step
    def train_step(self, micro_batches: list[dict]) -> tuple[float, float]:
        """Forward/backward/step over the micro-batches of one optimizer step; returns (mean
        loss per target token over all processes, target tokens)."""
        import torch.distributed as dist

        ga, world, engine = self.cfg.grad_accum, self.world, self.engine
        targets = sum(int((b["labels"] != IGNORE).sum()) for b in micro_batches)
        counts = torch.tensor([float(targets)], dtype=torch.float64,
                              device=self.device)  # NCCL reduces GPU tensors only
        dist.all_reduce(counts)
        tokens = max(float(counts.item()), 1.0)
        nll = torch.zeros(1, dtype=torch.float64, device=self.device)
        for b in micro_batches:
            b["loss_norm"] = tokens / (ga * world)
            loss = engine(b)
            engine.backward(loss)
            engine.step()
            nll += float(loss.detach().float()) * b["loss_norm"]
        dist.all_reduce(nll)
        return float(nll.item() / tokens), tokens

    def log_step(self, step: int, epoch: int, loss: float, tokens: float, seconds: float) -> None:
        cfg, job = self.cfg, self.job
        lr = lr_at(step - 1, lr=cfg.lr, min_lr=cfg.min_lr, warmup_lr=cfg.warmup_lr,
                   warmup_steps=job.warmup_steps, total_steps=job.total_steps)
        rate = self.per_step / max(seconds, 1e-9)
        if self.rank == 0 and (step % cfg.log_every == 0 or step == job.total_steps):
            row = {"step": step, "epoch": epoch, "loss": loss, "lr": lr, "samples_per_s": rate,
                   "target_tokens": int(tokens), "seconds": time.perf_counter() - self.t0}
            with self.metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", lr, step)
            self.writer.add_scalar("train/samples_per_s", rate, step)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", samples_s=f"{rate:.1f}")

    def validate(self, step: int) -> bool:
        """The held-out loss when due (the best adapter kept); True: stop early."""
        check = self.check
        if check is None or not check.due(step, self.job.total_steps):
            return False
        val, early = check.run(self.engine, step,
                               lambda folder: self.save_adapter(folder, step))
        self.say(f"step {step}: validation loss {val:.4f} (best {check.best:.4f})"
                 + (f"; no new best in {self.cfg.early_stop} validations: stopping early"
                    if early else ""))
        if self.writer is not None:
            self.writer.add_scalar("val/loss", val, step)
        return early

    # ------------------------------------------------------------------ saving
    def save_adapter(self, folder: Path, step: int) -> None:
        engine = self.engine
        state = full_adapter_state(engine)           # collectives under ZeRO-3: every rank
        model = self.job.model
        lora = full_lora_state(engine) if model.config.lora is not None else {}
        bad = [k for k, v in {**state, **lora}.items() if not v.isfinite().all()]
        if bad:  # every rank holds the whole state here, so every rank stops
            _diverged(step, f"the adapter's {bad[0]} holds NaN or Inf", self.run_dir, self.cfg)
        if self.rank == 0:
            if lora:  # first: the adapter config that names the LoRA is written last
                save_lora(folder, model, lora)
            save_adapter(folder, model.config, state)

    def save(self, step: int) -> None:
        """The adapter and a resume state for `step`."""
        self.save_adapter(self.run_dir, step)
        save_resume(self.run_dir, self.engine,
                    {"step": step, "world_size": self.world,
                     "global_micro_batch": self.cfg.batch_size * self.world,
                     "steps_per_epoch": self.job.steps_per_epoch}, rank=self.rank)

    # ------------------------------------------------------------------ the loop
    def run(self) -> RunResult:
        cfg = self.cfg
        self.setup()
        job, ga = self.job, cfg.grad_accum
        self.per_step = cfg.batch_size * ga * self.world
        step, loss, stopped, early, losses = self.start_step, None, False, False, []
        self.t0 = time.perf_counter()
        self.engine.train()
        loader = job.loader(step * ga)  # one loader, one set of workers, for every epoch
        batches = iter(loader)
        while step < job.total_steps and not stopped and not early:
            t_step = time.perf_counter()
            loss, tokens = self.train_step([next(batches) for _ in range(ga)])
            step += 1
            if not math.isfinite(loss):  # the same on every rank (all-reduced)
                _diverged(step, f"the loss is {loss}", self.run_dir, cfg)
            losses.append(loss)
            self.log_step(step, (step - 1) // job.steps_per_epoch, loss, tokens,
                          time.perf_counter() - t_step)
            early = self.validate(step)
            if step % cfg.save_every == 0 and step < job.total_steps and not early:
                self.save(step)
            stopped = (not early and cfg.stop_after is not None
                       and step - self.start_step >= cfg.stop_after)
        del batches, loader  # stops the workers now
        return self.finish(step, loss, losses, stopped, early)

    def finish(self, step: int, loss: float | None, losses: list, stopped: bool,
               early: bool) -> RunResult:
        """The last save (unless stopped as if killed), the closing line, the result."""
        seconds = time.perf_counter() - self.t0
        if self.bar is not None:
            self.bar.close()
        finished_before = self.start_step > 0 and step == self.start_step  # resumed when done
        if not stopped and not finished_before:  # (max_steps=0 saves the step-0 adapter)
            self.save(step)
        if self.writer is not None:
            self.writer.close()
        done, total = step - self.start_step, self.job.total_steps
        rate = done * self.per_step / max(seconds, 1e-9)
        if finished_before:  # nothing was trained now: say so rather than print a loss of nan
            last = _last_logged_loss(self.metrics_path)
            self.say(f"already finished at step {step}/{total}"
                     + (f" (last logged loss {last:.4f})" if last is not None else "")
                     + f"; nothing to do -> {self.run_dir}")
        else:
            loss_text = f"loss {loss:.4f}" if loss is not None else "no step taken"
            self.say(f"{'stopped' if stopped else 'finished'} at step {step}/{total}: "
                     f"{loss_text}, {seconds:.1f} s, {rate:.2f} samples/s -> {self.run_dir}")
        return RunResult(run_dir=self.run_dir, adapter=self.run_dir / "adapter.safetensors",
                         config=self.run_dir / CONFIG, metrics=self.metrics_path, steps=step,
                         final_loss=loss, losses=losses, seconds=seconds,
                         samples_per_second=rate, skipped=dict(self.job.skipped),
                         stopped_early=stopped, early_stopped=early,
                         val_best=self.check.best if self.check is not None else None)


def run(cfg: TrainConfig, *, log=print) -> RunResult:
    """Train (or resume) the adapter described by `cfg`; returns where everything went."""
    return Trainer(cfg, log).run()


def _last_logged_loss(metrics_path: Path) -> float | None:
    try:
        lines = [ln for ln in metrics_path.read_text().splitlines() if ln.strip()]
        return float(json.loads(lines[-1])["loss"]) if lines else None
    except (OSError, ValueError, KeyError):
        return None


def _diverged(step: int, what: str, run_dir: Path, cfg: TrainConfig) -> None:
    """Stop on a non-finite loss or adapter, before anything of it is saved: the run folder
    keeps its last good adapter and resume state (exit 2, one line)."""
    saved = latest_resume(run_dir)
    kept = (f"the adapter and resume state of {saved.name} in {run_dir} are kept" if saved
            else "no adapter was saved yet")
    raise UserError(f"training stopped at step {step}: {what} (diverged, or features holding "
                    f"NaN/Inf); {kept}; lower lr (now {cfg.lr:g}), keep a warmup "
                    f"(warmup_steps) and grad_clip > 0 (now {cfg.grad_clip:g}), and run "
                    "`musilingo cache verify` on the cache")
