"""LoRA on the frozen LLM, through `peft`: trained together with the audio adapter.

    add_lora(model, LoraConfig(r=8, alpha=16, targets=("q_proj", "v_proj")))   # in place
    save_lora(folder, model, state)   # folder/lora/: PEFT's own adapter_config.json + weights
    load_lora_weights(model, folder)  # the saved matrices onto the model's fresh LoRA layers

`MusiLingo.build` adds the LoRA layers whenever its `AdapterConfig` names a `LoraConfig`, so a
run and a loaded run folder get the same modules; loading then fills them from the run's file,
which must hold exactly those matrices (nothing else reaches the frozen LLM). Only the low-rank
matrices train; the base weights stay frozen and are never saved. The files are PEFT's own
format (`adapter_config.json` + `adapter_model.safetensors` in the run folder's `lora/`), so
`peft.PeftModel.from_pretrained(base_llm, "RUN/lora")` loads them without musilingo. The weights
are written from the state the trainer assembles (under ZeRO-3 the LLM's parameters are
partitioned, so PEFT's own save would write empty tensors).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UserError
from ..files import atomic_path, atomic_write
from .adapter_config import LoraConfig

LORA_FOLDER = "lora"
WEIGHTS = "adapter_model.safetensors"


def _linear_names(llm) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name, m in llm.named_modules()
                   if isinstance(m, torch.nn.Linear)})


def add_lora(model, lora: LoraConfig) -> int:
    """Wrap `model.llm` in LoRA as `lora` says; returns the number of trainable LoRA
    parameters. Unknown target names get one line listing the LLM's Linear layer names."""
    from peft import get_peft_model

    known = _linear_names(model.llm)
    unknown = [n for n in lora.targets if n not in known]
    if unknown:
        raise UserError(f"lora_targets={','.join(lora.targets)!r}: {', '.join(unknown)} is not "
                        f"a Linear layer of {model.llm_name}; use some of {', '.join(known)}")
    narrowest = min(min(m.in_features, m.out_features) for name, m in model.llm.named_modules()
                    if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in lora.targets)
    if lora.r > narrowest:  # a rank past the layer's width is no longer low-rank, only larger
        raise UserError(f"lora_rank={lora.r} is wider than the narrowest targeted layer of "
                        f"{model.llm_name} ({narrowest}): use lora_rank <= {narrowest} (commonly "
                        "8-64)")
    model.llm = get_peft_model(model.llm, peft_lora_config(lora))
    params = [p for n, p in model.llm.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    return sum(p.numel() for p in params)


def peft_lora_config(lora: LoraConfig, base: str | None = None):
    """PEFT's config for `lora`: the one place it is built, for training, loading and export."""
    from peft import LoraConfig as PeftLoraConfig

    return PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=list(lora.targets), bias="none", task_type="CAUSAL_LM",
                          base_model_name_or_path=base)


def peft_config_text(config) -> str:
    """PEFT's adapter_config.json as `save_pretrained` writes it, but with its sets sorted (PEFT
    keeps target_modules as a set, so its own file changes order from process to process)."""
    body = {k: sorted(v) if isinstance(v, set) else v for k, v in config.to_dict().items()}
    return json.dumps(body, indent=2, sort_keys=True)


def _peft_key(name: str) -> str:
    """Our parameter name -> PEFT's saved key (the adapter name `default` dropped)."""
    return name.replace(".default.", ".")


def save_lora(folder: str | Path, model, state: dict) -> Path:
    """PEFT's adapter_config.json and adapter_model.safetensors under `folder`/lora (atomically
    per file); `state` holds the LoRA tensors by our parameter names."""
    from safetensors.torch import save_file

    out = Path(folder) / LORA_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS) as tmp:
        save_file({_peft_key(k): v.detach().float().cpu().contiguous() for k, v in state.items()},
                  str(tmp), metadata={"format": "pt"})
    # PEFT's save_pretrained writes in place (a kill mid-write would leave half a file)
    atomic_write(out / "adapter_config.json", peft_config_text(model.llm.peft_config["default"]))
    return out


def read_peft_config(folder: str | Path) -> LoraConfig:
    """The LoRA of a run folder's `lora/adapter_config.json` (PEFT's file): how run folders
    written before adapter_config.json recorded the rank name it."""
    path = Path(folder) / LORA_FOLDER / "adapter_config.json"
    try:
        peft = json.loads(path.read_text(encoding="utf-8"))
        targets = peft["target_modules"]
        return LoraConfig(int(peft["r"]), float(peft["lora_alpha"]),
                          float(peft.get("lora_dropout") or 0.0),
                          tuple(sorted(targets) if not isinstance(targets, str) else [targets]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: cannot read the run's LoRA settings ({type(exc).__name__}: "
                        f"{str(exc)[:120]}); restore the run folder or re-train") from None


def read_lora_file(folder: str | Path) -> tuple[Path, dict]:
    """(path, tensors) of a run's LoRA file, or one line saying it is absent or unreadable."""
    from safetensors.torch import load_file

    path = Path(folder) / LORA_FOLDER / WEIGHTS
    if not path.is_file():
        raise UserError(f"{folder}: the adapter config names LoRA weights but {path.parent} has "
                        f"no {WEIGHTS}; restore the run folder or re-train")
    try:
        return path, load_file(str(path))
    except Exception as exc:  # truncated, not safetensors, a bad header
        raise UserError(f"{path} cannot be read as safetensors ({type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0][:120]}): restore it or re-train"
                        ) from None


def check_lora_file(folder: str | Path, lora: LoraConfig) -> None:
    """What can be checked of a run's LoRA file without the LLM (export publishes it): readable
    safetensors holding only `lora_A` / `lora_B` matrices of the recorded targets, of the
    recorded rank, finite; the LLM-side shapes are `load_lora_weights`'s."""
    path, saved = read_lora_file(folder)
    if not saved:
        raise UserError(f"{path} holds no tensors; restore the run folder or re-train")
    for key, value in saved.items():
        parts = key.split(".")
        kind = next((p for p in parts if p in ("lora_A", "lora_B")), None)
        target = parts[parts.index(kind) - 1] if kind else None
        if kind is None or target not in lora.targets or value.dim() != 2:
            raise UserError(f"{path} holds {key}, which is not a LoRA matrix of the run's "
                            f"targets ({','.join(lora.targets)}); restore the run folder or "
                            "re-train")
        rank = value.shape[0] if kind == "lora_A" else value.shape[1]
        if rank != lora.r:
            raise UserError(f"{path}: {key} has rank {rank}, the run's LoRA has rank {lora.r}; "
                            "restore the run folder or re-train")
        if not value.isfinite().all():
            raise UserError(f"{path}: {key} holds NaN or Inf values (a diverged or damaged "
                            "LoRA); re-train, or use an earlier run folder")


def load_lora_weights(model, folder: str | Path) -> None:
    """Fill the model's LoRA layers with the run's saved matrices: exactly the LoRA tensors of
    those layers, with their shapes and finite values, or a one-line UserError."""
    path, saved = read_lora_file(folder)
    own = {_peft_key(n): p for n, p in model.llm.named_parameters() if "lora_" in n}
    extra, missing = sorted(set(saved) - set(own)), sorted(set(own) - set(saved))
    if extra or missing:
        lora = model.config.lora
        what = (f"holds {extra[0]}, which the run's LoRA (rank {lora.r} on "
                f"{','.join(lora.targets)}) does not have" if extra else
                f"lacks {missing[0]}, which the run's LoRA (rank {lora.r} on "
                f"{','.join(lora.targets)}) needs")
        raise UserError(f"{path} {what}; restore the run folder or re-train")
    for key, value in saved.items():
        if value.shape != own[key].shape:
            raise UserError(f"{path}: {key} has shape {list(value.shape)}, the run's LoRA needs "
                            f"{list(own[key].shape)}; restore the run folder or re-train")
        if value.is_floating_point() and not value.isfinite().all():
            raise UserError(f"{path}: {key} holds NaN or Inf values (a diverged or damaged "
                            "LoRA); re-train, or use an earlier run folder")
    with torch.no_grad():
        for key, value in saved.items():
            own[key].copy_(value.to(own[key].dtype))
            own[key].requires_grad_(False)
    model.llm.eval()
