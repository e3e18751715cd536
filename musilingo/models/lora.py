"""LoRA on the frozen LLM, through `peft`: trained together with the audio adapter.

    add_lora(model, rank=8, alpha=16, dropout=0.0, targets="q_proj,v_proj")   # in place
    save_lora(folder, model, state)       # folder/lora/: PEFT's own adapter_config.json + weights
    load_lora(model, folder)              # PeftModel.from_pretrained over the model's LLM

Only the low-rank matrices train; the base weights stay frozen and are never saved. The files
are PEFT's own format (`adapter_config.json` + `adapter_model.safetensors` in the run folder's
`lora/`), so `peft.PeftModel.from_pretrained(base_llm, "RUN/lora")` loads them without
musilingo. The weights are written from the state the trainer assembles (under ZeRO-3 the
LLM's parameters are partitioned, so PEFT's own save would write empty tensors).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError

LORA_FOLDER = "lora"


def _linear_names(llm) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name, m in llm.named_modules()
                   if isinstance(m, torch.nn.Linear)})


def add_lora(model, *, rank: int, alpha: float, dropout: float, targets: str) -> int:
    """Wrap `model.llm` in LoRA (rank `rank` on the Linear layers named in `targets`); returns
    the number of trainable LoRA parameters. Unknown target names get one line listing the
    LLM's Linear layer names."""
    from peft import LoraConfig, get_peft_model

    names = [t.strip() for t in targets.split(",") if t.strip()]
    known = _linear_names(model.llm)
    unknown = [n for n in names if n not in known]
    if not names or unknown:
        raise UserError(f"lora_targets={targets!r}: {', '.join(unknown) or 'no name'} is not a "
                        f"Linear layer of {model.llm_name}; use some of {', '.join(known)}")
    config = LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=float(dropout),
                        target_modules=names, bias="none", task_type="CAUSAL_LM")
    model.llm = get_peft_model(model.llm, config)
    params = [p for n, p in model.llm.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    return sum(p.numel() for p in params)


def _peft_key(name: str) -> str:
    """Our parameter name -> PEFT's saved key (the adapter name `default` dropped)."""
    return name.replace(".default.", ".")


def save_lora(folder: str | Path, model, state: dict) -> Path:
    """PEFT's adapter_config.json and adapter_model.safetensors under `folder`/lora (atomically
    per file); `state` holds the LoRA tensors by our parameter names."""
    import os

    from safetensors.torch import save_file

    out = Path(folder) / LORA_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    model.llm.peft_config["default"].save_pretrained(str(out))
    tmp = out / f".adapter_model.safetensors.tmp{os.getpid()}"
    save_file({_peft_key(k): v.detach().float().cpu().contiguous() for k, v in state.items()},
              str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / "adapter_model.safetensors")
    return out


def load_lora(model, folder: str | Path) -> None:
    """Put the run's LoRA matrices on `model.llm` (PEFT's loader; no code runs)."""
    from peft import PeftModel

    path = Path(folder) / LORA_FOLDER
    if not (path / "adapter_model.safetensors").is_file():
        raise UserError(f"{folder}: the adapter config names LoRA weights but {path} has no "
                        "adapter_model.safetensors; restore the run folder or re-train")
    try:
        model.llm = PeftModel.from_pretrained(model.llm, str(path), is_trainable=False)
    except Exception as exc:  # a damaged file, or weights for other layer shapes
        raise UserError(f"{path}: the LoRA weights cannot be loaded onto {model.llm_name} "
                        f"({type(exc).__name__}: {str(exc)[:160]})") from None
    bad = [n for n, v in model.llm.named_parameters() if "lora_" in n and not v.isfinite().all()]
    if bad:
        raise UserError(f"{path}: {bad[0]} holds NaN or Inf values (a diverged or damaged "
                        "LoRA); re-train, or use an earlier run folder")
    model.llm.eval()
