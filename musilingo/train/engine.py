"""DeepSpeed plumbing: process group, the shipped JSON configs, the engine, the LR schedule.

One process (`musilingo train ...`), several on one machine (`torchrun --nproc_per_node N -m
musilingo train ...`, or the `deepspeed` launcher) and CPU or GPU all take the same path: a
launcher's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) makes DeepSpeed join that
group (gloo on CPU, nccl on GPU); a single process gets a one-member group of its own.

Only the adapter's parameters reach the optimizer: a client `torch.optim.AdamW` (no C++ op to
build), weight decay on matrices only. DeepSpeed's CPU shared-memory all-reduce is a C++ op that
DeepSpeed compiles with gcc on first use (25-80 s) and whose bf16 kernel needs AVX-512; on CPU this
module turns it off (set MUSILINGO_DS_SHM=1 to keep it), and gloo does the (tiny) all-reduces.
"""
from __future__ import annotations

import copy
import json
import math
import os
from importlib import resources
from pathlib import Path

import torch

from ..errors import UserError
from ..processes import process_env

SHIPPED = ("zero0", "zero2", "zero3", "zero2_offload", "zero3_offload")


def _disable_cpu_shm_op() -> None:
    if os.environ.get("MUSILINGO_DS_SHM") == "1":
        return
    import deepspeed.ops as ops

    class _Ops(dict):
        """DeepSpeed's op table as seen by its comm backend: the CPU comm ops are off."""

        def get(self, key, default=None):
            return False

    ops.__dict__["__compatible_ops__"] = _Ops()


def init_distributed(device: str) -> tuple[int, int, int]:
    """Join (or, alone, create) the process group that DeepSpeed runs on.

    A single process gets a one-member group on an in-memory store: no TCP port, and nothing
    written to the environment but LOCAL_RANK (which DeepSpeed reads), so processes this one
    starts later are not mistaken for members of its group."""
    rank, world, local_rank, _ = process_env()
    backend = "gloo" if device == "cpu" else "nccl"
    if device == "cpu":
        _disable_cpu_shm_op()
    import deepspeed

    os.environ.setdefault("LOCAL_RANK", str(local_rank))
    if not torch.distributed.is_initialized():
        if world == 1 and "MASTER_ADDR" not in os.environ:
            torch.distributed.init_process_group(backend, store=torch.distributed.HashStore(),
                                                 rank=0, world_size=1)
        else:
            deepspeed.init_distributed(dist_backend=backend, verbose=False)
    deepspeed.init_distributed(dist_backend=backend, verbose=False)  # wraps the existing group
    return rank, world, local_rank


def load_ds_config(name: str) -> tuple[dict, str]:
    """A shipped config by name, or a JSON file; returns (dict, where it came from)."""
    if name in SHIPPED:
        f = resources.files("musilingo") / "configs" / "deepspeed" / f"{name}.json"
        return json.loads(f.read_text()), f"configs/deepspeed/{name}.json"
    p = Path(name).expanduser()
    if not p.is_file():
        raise UserError(f"deepspeed={name!r}: use one of {', '.join(SHIPPED)} or a JSON file path")
    try:
        return json.loads(p.read_text()), str(p)
    except json.JSONDecodeError as exc:
        raise UserError(f"{p} is not valid JSON: {exc}") from None


def resolve_ds_config(cfg, device: str) -> dict:
    """Fill the "auto" fields from the training config; refuse explicit values that disagree."""
    ds, where = load_ds_config(cfg.deepspeed)
    ds = copy.deepcopy(ds)
    if cfg.dtype not in ("bf16", "fp16", "fp32"):
        raise UserError(f"dtype={cfg.dtype!r}: use bf16, fp16 or fp32")
    if cfg.dtype == "fp16" and device == "cpu":
        raise UserError("dtype=fp16 needs a GPU (DeepSpeed has no fp16 on CPU): use bf16 or fp32")
    wanted = {("train_micro_batch_size_per_gpu",): cfg.batch_size,
              ("gradient_accumulation_steps",): cfg.grad_accum,
              ("gradient_clipping",): float(cfg.grad_clip),
              ("bf16", "enabled"): cfg.dtype == "bf16",
              ("fp16", "enabled"): cfg.dtype == "fp16"}
    for path, value in wanted.items():
        node = ds
        for key in path[:-1]:
            node = node.setdefault(key, {})
        have = node.get(path[-1], "auto")
        if have == "auto":
            node[path[-1]] = value
        elif have != value and not (isinstance(value, float) and float(have) == value):
            raise UserError(f"{where} sets {'.'.join(path)}={have!r} but the training config asks "
                            f"for {value!r}: set it to \"auto\" in the JSON or change the config")
    ds.pop("train_batch_size", None)  # derived by DeepSpeed from micro batch x accumulation x ranks
    ds.setdefault("zero_force_ds_cpu_optimizer", False)
    ds.setdefault("steps_per_print", 10 ** 9)
    if "optimizer" in ds or "scheduler" in ds:
        raise UserError(f"{where} defines an optimizer/scheduler: musilingo passes its own "
                        "(AdamW on the adapter, warmup + cosine); remove those sections")
    return ds


def zero_stage(ds: dict) -> int:
    return int(ds.get("zero_optimization", {}).get("stage", 0))


def lr_at(step: int, *, lr: float, min_lr: float, warmup_lr: float, warmup_steps: int,
          total_steps: int) -> float:
    """The reference code's linear warmup + cosine (LAVIS `LinearWarmupCosineLRScheduler`).

    Linear from warmup_lr to lr over the warmup steps; then lr -> min_lr along a cosine whose
    phase counts ALL steps (step / total_steps), as in the reference, not only those after warmup.
    """
    if step < warmup_steps:
        return min(lr, warmup_lr + (lr - warmup_lr) * step / max(warmup_steps, 1))
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * step / max(total_steps, 1)))


def param_groups(adapter: torch.nn.Module, weight_decay: float,
                 lora_lr: float | None = None) -> list[dict]:
    """The trainable parameters of `adapter` (a module: the adapter, or the whole model with its
    LoRA matrices); decay matrices only: biases and 1-d parameters (layer weights) are not.
    With `lora_lr`, the LoRA matrices form groups of their own at that peak learning rate."""
    groups = {}
    for name, p in adapter.named_parameters():
        if not p.requires_grad:
            continue
        lora = lora_lr is not None and "lora_" in name
        decays = not (p.ndim < 2 or name.endswith("bias"))
        groups.setdefault((lora, decays), []).append(p)
    out = []
    for (lora, decays), params in sorted(groups.items(), key=lambda kv: (kv[0][0], not kv[0][1])):
        group = {"params": params, "weight_decay": weight_decay if decays else 0.0}
        if lora:
            group["lr"] = lora_lr
        out.append(group)
    return out


def build_engine(model, cfg, ds: dict, *, warmup_steps: int, total_steps: int):
    """(engine, scheduler) for `model` (a MusiLingo); the LLM stays frozen but for LoRA."""
    import deepspeed

    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay, cfg.lora_lr), lr=cfg.lr,
                                  betas=tuple(cfg.betas), eps=1e-8)

    def factor(step: int) -> float:
        return lr_at(step, lr=cfg.lr, min_lr=cfg.min_lr, warmup_lr=cfg.warmup_lr,
                     warmup_steps=warmup_steps, total_steps=total_steps) / cfg.lr

    def scheduler(opt):
        return torch.optim.lr_scheduler.LambdaLR(opt, factor)

    engine, _, _, sched = deepspeed.initialize(model=model, optimizer=optimizer, config=ds,
                                               lr_scheduler=scheduler)
    return engine, sched
