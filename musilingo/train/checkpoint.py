"""Checkpoints: the adapter users keep, and the resume state a killed run continues from.

Run folder:
    adapter.safetensors     the adapter (musilingo/runs/adapter_file.py writes both files)
    adapter_config.json
    resume/latest           name of the newest complete resume state, e.g. "step-00000200"
    resume/step-00000200/   DeepSpeed engine state (adapter, optimizer, scheduler, loss scale)
                            + trainer.json (step, data position, RNG, config fingerprint)

Every write goes to a temporary name first and is renamed into place, so a run killed at any
moment leaves either the previous state or the new one, never half of one. The engine state is
DeepSpeed's own format (it knows how each ZeRO stage partitions the optimizer); it is read back
with `torch.load(weights_only=True)` forced on, allowing only DeepSpeed's plain record classes, so
a resume folder cannot run code.
"""
from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError, writing
from ..files import atomic_write, temp_path

RESUME = "resume"
LATEST = "latest"
TRAINER_STATE = "trainer.json"
ENGINE_TAG = "engine"


def full_adapter_state(engine) -> dict:
    """The adapter's fp32 weights, assembled from wherever this ZeRO stage keeps them.

    A collective under ZeRO-3 and with bf16 master weights: call it on every rank."""
    return full_trained_state(engine, engine.module.adapter)


def full_lora_state(engine) -> dict:
    """The LoRA matrices of the LLM (empty without LoRA), like `full_adapter_state`."""
    llm = engine.module.llm
    state = full_trained_state(engine, llm, buffers=False)
    return {k: v for k, v in state.items() if "lora_" in k}


def full_trained_state(engine, adapter, *, buffers: bool = True) -> dict:
    """The fp32 values of `adapter`'s trainable parameters (and its buffers)."""
    from deepspeed.utils import safe_get_full_fp32_param

    # ZeRO-0 with bf16/fp16 keeps fp32 masters in parallel lists, not in the tensor-fragment maps.
    opt = engine.optimizer
    masters = {}
    if hasattr(opt, "fp16_groups") and hasattr(opt, "fp32_groups"):
        for low, high in zip(opt.fp16_groups, opt.fp32_groups):
            if isinstance(low, (list, tuple)) and isinstance(high, (list, tuple)):
                masters.update({id(a): b for a, b in zip(low, high)})
    out = {}
    for name, p in adapter.named_parameters():
        if not buffers and not p.requires_grad:  # the frozen LLM around the LoRA matrices
            continue
        full = safe_get_full_fp32_param(p) if p.requires_grad else None
        if full is None and id(p) in masters:
            full = masters[id(p)]
        if full is None:
            import deepspeed

            with deepspeed.zero.GatheredParameters([p], enabled=hasattr(p, "ds_id")):
                full = p.detach().clone()
        out[name] = full.float().cpu()
    if buffers:
        for name, b in adapter.named_buffers():
            out[name] = b.detach().float().cpu()
    return out


# ------------------------------------------------------------------------------- RNG state
def rng_state() -> dict:
    """Python, NumPy and torch RNG state as JSON (the data order does not use them; anything
    random a user adds would)."""
    np_state = np.random.get_state()
    return {"python": repr(random.getstate()),
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "torch": torch.get_rng_state().tolist()}


def set_rng_state(state: dict) -> None:
    import ast

    random.setstate(_tuples(ast.literal_eval(state["python"])))
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))


def _tuples(x):
    return tuple(_tuples(i) for i in x) if isinstance(x, (list, tuple)) else x


# ----------------------------------------------------------------------------- resume state
def _safe_deepspeed_globals() -> list:
    """DeepSpeed's plain record classes that its checkpoints pickle (no code, just fields)."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    found = [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]
    try:
        from deepspeed.runtime.zero.offload_config import OffloadDeviceEnum

        found.append(OffloadDeviceEnum)
    except ImportError:
        pass
    return found


@contextmanager
def weights_only_loads():
    """Force `torch.load(weights_only=True)` inside DeepSpeed's loader (it passes False)."""
    old = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with torch.serialization.safe_globals(_safe_deepspeed_globals()):
            yield
    finally:
        if old is None:
            os.environ.pop("TORCH_FORCE_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = old


def save_resume(run_dir: Path, engine, trainer_state: dict, *, rank: int, keep: int = 1) -> Path:
    """Write a complete resume state for `trainer_state["step"]`; all ranks must call this."""
    import torch.distributed as dist

    resume = run_dir / RESUME
    name = f"step-{trainer_state['step']:08d}"
    tmp = temp_path(resume / name, shared=True)  # every rank writes its part into it
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier(dist)
    try:
        with writing(tmp):  # a full disk mid-file is torch's "unexpected pos": say what it is
            engine.save_checkpoint(str(tmp), tag=ENGINE_TAG, save_latest=False,
                                   exclude_frozen_parameters=True)
    except BaseException:
        if rank == 0:  # the half-written state goes; the last complete one stays LATEST
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    states = [None] * dist.get_world_size() if dist.is_initialized() else None
    mine = rng_state()
    if states is not None:
        dist.all_gather_object(states, mine)
    if rank == 0:
        body = dict(trainer_state, rng=states if states is not None else [mine])
        (tmp / TRAINER_STATE).write_text(json.dumps(body))
        final = resume / name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        atomic_write(resume / LATEST, name + "\n")
        older = sorted(p for p in resume.glob("step-*") if p.name != name)
        for p in older[: max(len(older) - (keep - 1), 0)]:
            shutil.rmtree(p, ignore_errors=True)
    _barrier(dist)
    return resume / name


def latest_resume(run_dir: Path) -> Path | None:
    marker = run_dir / RESUME / LATEST
    if not marker.is_file():
        return None
    folder = run_dir / RESUME / marker.read_text().strip()
    if not (folder / TRAINER_STATE).is_file():
        raise UserError(f"{marker} names {folder.name}, which is incomplete: delete {run_dir / RESUME}"
                        " to start over")
    return folder


def load_resume(folder: Path, engine, *, rank: int) -> dict:
    """Restore the engine from `folder` and return the trainer state (RNG restored too)."""
    state = json.loads((folder / TRAINER_STATE).read_text())
    try:
        with weights_only_loads():
            path, _ = engine.load_checkpoint(str(folder), tag=ENGINE_TAG,
                                             load_module_strict=False, load_optimizer_states=True,
                                             load_lr_scheduler_states=True)
    except pickle.UnpicklingError:
        # torch's own message suggests weights_only=False: exactly what must not happen here
        raise UserError(f"{folder}: the saved training state holds Python objects other than "
                        "tensors, which could run code when loaded, so it was refused; delete "
                        f"{folder} to resume from an earlier checkpoint, or {folder.parent} to "
                        "start over") from None
    if path is None:
        raise UserError(f"could not read the engine state in {folder}: delete "
                        f"{folder.parent} to start over")
    rngs = state.pop("rng")
    set_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])
    return state


def _barrier(dist) -> None:
    if dist.is_initialized():
        dist.barrier()
