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
from ..models.lora import save_lora
from ..models.prompts import IGNORE
from ..runs.adapter_file import model_config, save_adapter
from ..options import resolve_device
from .checkpoint import (full_adapter_state, full_lora_state, latest_resume, load_resume,
                         save_resume)
from .config import TrainConfig
from .engine import build_engine, init_distributed, lr_at, pick_device, resolve_ds_config, zero_stage
from .setup import prepare
from .validation import Validation

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


def _check_run_dir(cfg: TrainConfig, run_dir: Path, rank: int) -> None:
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


def run(cfg: TrainConfig, *, log=print) -> RunResult:
    """Train (or resume) the adapter described by `cfg`; returns where everything went."""
    import torch.distributed as dist

    requested = resolve_device(cfg.device)
    device_kind = "cpu" if requested == "cpu" else "cuda"
    rank, world, local_rank = init_distributed(device_kind)
    device = pick_device(requested, local_rank)
    say = log if rank == 0 else (lambda *a, **k: None)
    run_dir = Path(cfg.out).expanduser().absolute()
    _check_run_dir(cfg, run_dir, rank)
    dist.barrier()
    ds = resolve_ds_config(cfg, device_kind)
    job = prepare(cfg, ds, device=device, rank=rank, world=world, say=say)
    steps_per_epoch, total_steps, warmup = job.steps_per_epoch, job.total_steps, job.warmup_steps
    say(f"starting DeepSpeed (ZeRO stage {zero_stage(ds)}, {world} process"
        f"{'es' if world > 1 else ''}) ...")
    engine, sched = build_engine(job.model, cfg, ds, warmup_steps=warmup, total_steps=total_steps)
    del job.hf_ds_config  # ZeRO-3 loading is done: later loads in this process are ordinary

    metrics_path = run_dir / METRICS
    start_step = 0
    if cfg.resume and (state_dir := latest_resume(run_dir)) is not None:
        state = load_resume(state_dir, engine, rank=rank)
        if state["world_size"] != world and zero_stage(ds) > 0:
            raise UserError(f"{run_dir} was trained by {state['world_size']} processes with ZeRO "
                            f"stage {zero_stage(ds)}; resume it with the same number ({world})")
        if state["global_micro_batch"] != cfg.batch_size * world:
            raise UserError(f"{run_dir} used {state['global_micro_batch']} examples per global "
                            f"micro-batch; now {cfg.batch_size} x {world} processes differ")
        start_step = int(state["step"])
        say(f"resuming {run_dir} at step {start_step} of {total_steps}")
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG).write_text(cfg.to_yaml())
        _truncate_metrics(metrics_path, start_step)
    dist.barrier()

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step or None)
    check = None
    if job.validation_batches is not None:
        check = Validation(run_dir, cfg, job.validation_batches, rank=rank, start_step=start_step)
    ga, micro = cfg.grad_accum, cfg.batch_size
    per_step = micro * ga * world
    losses: list[float] = []
    step, loss_value, stopped, early = start_step, None, False, False
    bar = None
    if rank == 0 and cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)
    t0 = time.perf_counter()
    engine.train()
    loader = job.loader(step * ga)  # one loader, one set of workers, for every epoch
    batches = iter(loader)
    while step < total_steps and not stopped and not early:
        epoch, first = divmod(step, steps_per_epoch)
        for _ in range(first, steps_per_epoch):
            if step >= total_steps:
                break
            t_step = time.perf_counter()
            micro_batches = [next(batches) for _ in range(ga)]
            counts = torch.tensor([float(sum(int((b["labels"] != IGNORE).sum()) for b in micro_batches))],
                                  dtype=torch.float64, device=device)  # NCCL reduces GPU tensors only
            dist.all_reduce(counts)
            tokens = max(float(counts.item()), 1.0)
            nll = torch.zeros(1, dtype=torch.float64, device=device)
            for b in micro_batches:
                b["loss_norm"] = tokens / (ga * world)
                loss = engine(b)
                engine.backward(loss)
                engine.step()
                nll += float(loss.detach().float()) * b["loss_norm"]
            dist.all_reduce(nll)
            lr = lr_at(step, lr=cfg.lr, min_lr=cfg.min_lr, warmup_lr=cfg.warmup_lr,
                       warmup_steps=warmup, total_steps=total_steps)
            step += 1
            loss_value = float(nll.item() / tokens)
            if not math.isfinite(loss_value):  # the same on every rank (all-reduced)
                _diverged(step, f"the loss is {loss_value}", run_dir, cfg)
            losses.append(loss_value)
            rate = per_step / max(time.perf_counter() - t_step, 1e-9)
            if rank == 0 and (step % cfg.log_every == 0 or step == total_steps):
                row = {"step": step, "epoch": epoch, "loss": loss_value, "lr": lr,
                       "samples_per_s": rate, "target_tokens": int(tokens),
                       "seconds": time.perf_counter() - t0}
                with metrics_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                writer.add_scalar("train/loss", loss_value, step)
                writer.add_scalar("train/lr", lr, step)
                writer.add_scalar("train/samples_per_s", rate, step)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", samples_s=f"{rate:.1f}")
            if check is not None and check.due(step, total_steps):
                val, early = check.run(engine, step, lambda folder: _save_adapter(
                    folder, engine, job, cfg, rank, step, run_dir))
                say(f"step {step}: validation loss {val:.4f} (best {check.best:.4f})"
                    + (f"; no new best in {cfg.early_stop} validations: stopping early"
                       if early else ""))
                if writer is not None:
                    writer.add_scalar("val/loss", val, step)
            if step % cfg.save_every == 0 and step < total_steps and not early:
                _save(run_dir, engine, job, cfg, step, world, rank)
            if early:
                break
            if cfg.stop_after is not None and step - start_step >= cfg.stop_after:
                stopped = True
                break
    del batches, loader  # stops the workers now
    seconds = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    finished_before = start_step > 0 and step == start_step  # a finished run resumed again
    if not stopped and not finished_before:  # (max_steps=0 saves the step-0 adapter)
        _save(run_dir, engine, job, cfg, step, world, rank)
    if writer is not None:
        writer.close()
    done = step - start_step
    if finished_before:  # nothing was trained now: say so rather than print a loss of nan
        last = _last_logged_loss(metrics_path)
        say(f"already finished at step {step}/{total_steps}"
            + (f" (last logged loss {last:.4f})" if last is not None else "")
            + f"; nothing to do -> {run_dir}")
    else:
        loss_text = f"loss {loss_value:.4f}" if loss_value is not None else "no step taken"
        say(f"{'stopped' if stopped else 'finished'} at step {step}/{total_steps}: {loss_text}, "
            f"{seconds:.1f} s, "
            f"{done * per_step / max(seconds, 1e-9):.2f} samples/s -> {run_dir}")
    return RunResult(run_dir=run_dir, adapter=run_dir / "adapter.safetensors",
                     config=run_dir / CONFIG, metrics=metrics_path, steps=step,
                     final_loss=loss_value, losses=losses, seconds=seconds,
                     samples_per_second=done * per_step / max(seconds, 1e-9),
                     skipped=dict(job.skipped), stopped_early=stopped, early_stopped=early,
                     val_best=check.best if check is not None else None)


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


def _save_adapter(folder: Path, engine, job, cfg: TrainConfig, rank: int, step: int,
                  run_dir: Path) -> None:
    state = full_adapter_state(engine)           # collectives under ZeRO-3: every rank
    lora = full_lora_state(engine) if cfg.lora_rank else {}
    bad = [k for k, v in {**state, **lora}.items() if not v.isfinite().all()]
    if bad:  # every rank holds the whole state here, so every rank stops
        _diverged(step, f"the adapter's {bad[0]} holds NaN or Inf", run_dir, cfg)
    if rank == 0:
        if lora:  # first: the adapter config that names the LoRA folder is written last
            save_lora(folder, job.model, lora)
        save_adapter(folder, model_config(job.model), state)


def _save(run_dir: Path, engine, job, cfg: TrainConfig, step: int, world: int, rank: int) -> None:
    _save_adapter(run_dir, engine, job, cfg, rank, step, run_dir)
    save_resume(run_dir, engine, {"step": step, "world_size": world,
                                  "global_micro_batch": cfg.batch_size * world,
                                  "steps_per_epoch": job.steps_per_epoch}, rank=rank)
