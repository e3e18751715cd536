"""The adapter checkpoint: the one file format users keep, written and read only here.

    save_adapter("runs/stage1", model.config, model.adapter.state_dict())
    config, state = load_adapter("runs/stage1")     # (AdapterConfig, float32 tensors)
    model = load_model("runs/stage1")               # a MusiLingo with its adapter (and LoRA)
    folder = run_folder("runs/stage1/adapter_config.json")     # the folder, checked

A run folder holds
    adapter.safetensors   the adapter's float32 tensors: proj.weight [llm_dim, encoder_dim],
                          proj.bias (an mlp adapter: hidden.weight/bias [llm_dim, encoder_dim]
                          first, then proj [llm_dim, llm_dim]; a resampler: query, keys.weight),
                          feature_mean/feature_std (the fixed standardisation), and
                          layer_logits for learned layer aggregation
    adapter_config.json   the `AdapterConfig` (models/adapter_config.py) that builds the model:
                          LLM, widths, hidden-state count, the stride the adapter re-pools from
                          and its window t, the adapter kind, the layer aggregation, whether the
                          standardisation is fitted, the prompt template, the encoder identity
                          its features came from, and the LoRA (rank, alpha, dropout, targets)
    lora/                 with LoRA: PEFT's own adapter_config.json + adapter_model.safetensors
                          (models/lora.py), loadable by `peft.PeftModel.from_pretrained`

Both files are written atomically (files.py), so a reader sees the old adapter or the new one,
never half of one. Weights are safetensors only: loading one runs no code.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError
from ..files import atomic_path, atomic_write
from ..models.adapter_config import AdapterConfig
from ..models.lora import read_peft_config

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
REQUIRED = ("llm", "encoder_dim", "num_layers", "stride", "t", "template")


def load_model(folder: str | Path, *, llm: str | None = None, stride: int | None = None,
               dtype="fp32", device="cpu", trust_remote_code: bool = False):
    """The MusiLingo model of a run folder: its LLM (or `llm`, as wide) with the saved adapter
    and LoRA. `stride`: the stride of the features it will read, when it differs from the
    trained one (checked by `AdapterConfig.check_features` first)."""
    import dataclasses

    from ..models.lora import load_lora_weights
    from ..models.musilingo import MusiLingo

    config, state = load_adapter(folder)
    config = dataclasses.replace(config, llm=llm or config.llm, stride=stride or config.stride)
    model = MusiLingo.build(config, dtype=dtype, device=device,
                            trust_remote_code=trust_remote_code)
    check_state(folder, model.adapter.state_dict(), state)
    dtype_now = model.adapter.proj.weight.dtype
    model.adapter.load_state_dict({k: v.to(dtype_now) for k, v in state.items()})
    if config.lora is not None:  # the LLM's LoRA matrices, in PEFT's format beside the adapter
        load_lora_weights(model, folder)
    return model


def check_state(folder, own: dict, saved: dict) -> None:
    """The saved adapter tensors are exactly those the config builds, shape for shape; else one
    line naming the tensor (torch's own message is several lines and names no file)."""
    where = Path(folder) / ADAPTER_WEIGHTS
    extra, missing = sorted(set(saved) - set(own)), sorted(set(own) - set(saved))
    if extra or missing:
        what = f"holds {extra[0]!r}, which" if extra else f"lacks {missing[0]!r}, which"
        raise UserError(f"{where} {what} the adapter {ADAPTER_CONFIG} describes "
                        f"{'does not have' if extra else 'needs'}: the two files disagree; "
                        "restore the run folder or re-train")
    for key, value in saved.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise UserError(f"{where}: {key!r} has shape {list(value.shape)}, but "
                            f"{ADAPTER_CONFIG} describes {list(own[key].shape)}: the two files "
                            "disagree; restore the run folder or re-train")


def save_adapter(folder: str | Path, config: AdapterConfig, state: dict) -> Path:
    """Write adapter.safetensors + adapter_config.json (each atomically); returns the weights."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / ADAPTER_WEIGHTS) as tmp:
        save_file({k: v.detach().float().cpu().contiguous() for k, v in state.items()},
                  str(tmp), metadata={"format": "pt"})
    atomic_write(folder / ADAPTER_CONFIG,
                 json.dumps(config.to_json(), indent=2, sort_keys=True) + "\n")
    return folder / ADAPTER_WEIGHTS


def run_folder(run: str | Path) -> Path:
    """The folder holding adapter_config.json (a run folder, or the config file itself)."""
    path = Path(run).expanduser()
    if path.is_file() and path.name.endswith(".json"):
        path = path.parent
    if not (path / ADAPTER_CONFIG).is_file():
        what = "does not exist" if not path.exists() else f"has no {ADAPTER_CONFIG}"
        raise UserError(f"--run {path}: {what}; point it at a folder written by `musilingo train`"
                        " or `musilingo import-checkpoint`")
    return path


def read_config(folder: str | Path) -> AdapterConfig:
    """The `AdapterConfig` of `folder`'s adapter_config.json (files of earlier releases too),
    with every field inference needs (else a UserError)."""
    path = Path(folder) / ADAPTER_CONFIG
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise UserError(f"{path}: not valid JSON for an adapter config ({type(exc).__name__}: "
                        f"{str(exc)[:120]}); re-save the checkpoint with `musilingo train` or "
                        "`musilingo import-checkpoint`") from None
    absent = [k for k in REQUIRED if k not in data]
    if absent:
        raise UserError(f"{path}: field {absent[0]!r} is missing; re-save the checkpoint with "
                        "`musilingo train` or `musilingo import-checkpoint`")
    # Files of earlier releases named the LoRA folder only; PEFT's config there has the rank.
    lora = read_peft_config(folder) if isinstance(data.get("lora"), str) else None
    fix = "re-save the checkpoint with `musilingo train` or `musilingo import-checkpoint`"
    try:
        config = AdapterConfig.from_json(data, str(path), lora=lora)
        if config.lora is not None:
            config.lora.validate()
        return config
    except KeyError as exc:
        raise UserError(f"{path}: field {exc.args[0]!r} is missing; {fix}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"{path}: a field is malformed ({type(exc).__name__}: "
                        f"{str(exc)[:120]}); {fix}") from None
    except UserError as exc:  # a value out of range (the LoRA's): name the file
        raise UserError(f"{path}: {exc}; {fix}") from None


def load_adapter(folder: str | Path) -> tuple[AdapterConfig, dict]:
    """(adapter_config, float32 state dict) from a run folder; safetensors only."""
    from safetensors.torch import load_file

    folder = Path(folder)
    w_path = folder / ADAPTER_WEIGHTS
    if not (folder / ADAPTER_CONFIG).is_file() or not w_path.is_file():
        raise UserError(f"{folder} is not an adapter folder: it needs {ADAPTER_CONFIG} and "
                        f"{ADAPTER_WEIGHTS} (written by musilingo train)")
    cfg = read_config(folder)
    try:
        state = load_file(str(w_path))
    except Exception as exc:  # truncated, not safetensors, a bad header
        raise UserError(f"{w_path} cannot be read as safetensors ({type(exc).__name__}: "
                        f"{str(exc).strip()[:120]}): the adapter file is damaged; restore it or "
                        "re-train") from None
    if cfg.lora is None and (folder / "lora" / "adapter_model.safetensors").is_file():
        raise UserError(f"{folder}/lora holds LoRA weights but {ADAPTER_CONFIG} names no LoRA "
                        "(its 'lora' is missing or null): the run would answer without them; "
                        "restore adapter_config.json or re-train")
    bad = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise UserError(f"{w_path}: tensor {bad[0]!r} holds NaN or Inf values (a diverged or "
                        "damaged adapter); re-train, or use an earlier run folder")
    return cfg, state
