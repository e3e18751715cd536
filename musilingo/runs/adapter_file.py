"""The adapter checkpoint: the one file format users keep, written and read only here.

    save_adapter("runs/stage1", model_config(model), model.adapter.state_dict())
    config, state = load_adapter("runs/stage1")
    model = load_model("runs/stage1")                          # a MusiLingo with its adapter
    folder = run_folder("runs/stage1/adapter_config.json")     # the folder, checked
    check_fits(config, layers=25, dim=1024, stride=325, where="cache x.zarr", run="runs/stage1")

A run folder holds
    adapter.safetensors   the adapter's float32 tensors: proj.weight [llm_dim, encoder_dim],
                          proj.bias (an mlp adapter: hidden.weight/bias [llm_dim, encoder_dim]
                          first, then proj [llm_dim, llm_dim]), feature_mean/feature_std (the
                          fixed standardisation), and layer_logits for learned layer aggregation
    adapter_config.json   `new_config(...)`: format, LLM, widths, hidden-state count, the stride
                          the adapter re-pools from and its window t, the adapter kind (linear or
                          mlp; absent = linear), the layer aggregation, the prompt template, and
                          the encoder identity its features came from, and "lora": "lora" when
                          the LLM has LoRA matrices
    lora/                 with LoRA: PEFT's own adapter_config.json + adapter_model.safetensors
                          (models/lora.py), loadable by `peft.PeftModel.from_pretrained`

Both files are written to a temporary name and renamed into place, so a reader sees the old
adapter or the new one, never half of one. Weights are safetensors only: loading one runs no code.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UserError, writing
from ..features.pooling import window_factor

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
FORMAT = "musilingo-adapter/1"
REQUIRED = ("llm", "encoder_dim", "num_layers", "stride", "t", "template")


def new_config(*, llm: str, llm_dim: int, encoder_dim: int, num_layers: int, stride: int, t: int,
               template: dict, encoder: dict, aggregation: str = "mean", normalized: bool = False,
               kind: str = "linear", **extra) -> dict:
    """The adapter_config.json of an adapter (trained, or imported with `extra` provenance)."""
    return {"format": FORMAT, "llm": llm, "llm_dim": int(llm_dim), "encoder_dim": int(encoder_dim),
            "num_layers": int(num_layers), "stride": int(stride), "t": int(t),
            "adapter": kind, "layer_aggregation": aggregation, "normalized": bool(normalized),
            "template": template, "encoder": dict(encoder or {}), **extra}


def model_config(model) -> dict:
    """The adapter_config.json of a `models.musilingo.MusiLingo`: all `load_model` needs."""
    from ..models.lora import LORA_FOLDER

    a = model.adapter
    lora = {"lora": LORA_FOLDER} if hasattr(model.llm, "peft_config") else {}
    return new_config(llm=model.llm_name, llm_dim=a.llm_dim, encoder_dim=a.encoder_dim,
                      num_layers=a.num_layers, stride=a.stride, t=a.t,
                      aggregation=a.aggregation, normalized=bool(model.normalized),
                      kind=a.kind, template=model.template.to_dict(), encoder=model.encoder_meta,
                      **lora)


def load_model(folder: str | Path, *, llm: str | None = None, dtype="fp32", device="cpu",
               trust_remote_code: bool = False):
    """The MusiLingo model of a run folder: its LLM (or `llm`, as wide) with the saved adapter."""
    from ..models.musilingo import MusiLingo
    from ..models.prompts import PromptTemplate

    cfg, state = load_adapter(folder)
    model = MusiLingo.build(llm or cfg["llm"], encoder_dim=cfg["encoder_dim"],
                            num_layers=cfg["num_layers"], stride=cfg["stride"], t=cfg["t"],
                            aggregation=cfg["layer_aggregation"],
                            template=PromptTemplate.from_dict(cfg["template"]),
                            encoder=cfg.get("encoder"), dtype=dtype, device=device,
                            trust_remote_code=trust_remote_code, kind=cfg.get("adapter", "linear"))
    if model.adapter.llm_dim != cfg["llm_dim"]:
        raise UserError(f"adapter in {folder} was trained for an LLM {cfg['llm_dim']} wide, "
                        f"but {model.llm_name!r} is {model.adapter.llm_dim} wide")
    dtype_now = model.adapter.proj.weight.dtype
    model.adapter.load_state_dict({k: v.to(dtype_now) for k, v in state.items()})
    model.normalized = bool(cfg.get("normalized"))
    if cfg.get("lora"):  # LoRA matrices of the LLM, in PEFT's format beside the adapter
        from ..models.lora import load_lora

        load_lora(model, folder)
    return model


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_adapter(folder: str | Path, config: dict, state: dict) -> Path:
    """Write adapter.safetensors + adapter_config.json (each atomically); returns the weights."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{ADAPTER_WEIGHTS}.tmp{os.getpid()}"
    try:
        with writing(tmp):
            save_file({k: v.detach().float().cpu().contiguous() for k, v in state.items()},
                      str(tmp), metadata={"format": "pt"})
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, folder / ADAPTER_WEIGHTS)
    atomic_write_text(folder / ADAPTER_CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")
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


def read_config(folder: str | Path) -> dict:
    """adapter_config.json of `folder`, with every field inference needs (else a UserError)."""
    path = Path(folder) / ADAPTER_CONFIG
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(cfg, dict):
            raise ValueError("not a JSON object")
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise UserError(f"{path}: not valid JSON for an adapter config ({type(exc).__name__}: "
                        f"{str(exc)[:120]}); re-save the checkpoint with `musilingo train` or "
                        "`musilingo import-checkpoint`") from None
    absent = [k for k in REQUIRED if k not in cfg]
    if absent:
        raise UserError(f"{path}: field {absent[0]!r} is missing; re-save the checkpoint with "
                        "`musilingo train` or `musilingo import-checkpoint`")
    return cfg


def load_adapter(folder: str | Path) -> tuple[dict, dict]:
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
    bad = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise UserError(f"{w_path}: tensor {bad[0]!r} holds NaN or Inf values (a diverged or "
                        "damaged adapter); re-train, or use an earlier run folder")
    return cfg, state


def check_fits(config: dict, *, layers: int, dim: int, stride: int | None, where: str,
               run: str, encoder: dict | None = None) -> None:
    """A UserError unless features of (layers, dim, stride, encoder identity) suit the adapter
    described by `config`: checked before any model is loaded, so that a checkpoint from
    MERT-95M given MERT-330M features fails in one line naming the run and the features."""
    if dim != config["encoder_dim"]:
        raise UserError(f"{run}: the adapter expects features {config['encoder_dim']} wide "
                        f"({ADAPTER_CONFIG} encoder_dim), but {where} gives {dim}: the "
                        "checkpoint was trained on another encoder; use that encoder or its cache")
    if layers != config["num_layers"]:
        raise UserError(f"{run}: the adapter expects {config['num_layers']} hidden states "
                        f"({ADAPTER_CONFIG} num_layers), but {where} gives {layers}: use the "
                        "encoder the checkpoint was trained with")
    if stride is not None:
        window_factor(config["t"], stride, t_name=f"the adapter's t ({run})",
                      stride_name=f"the stride of {where}")
    trained = config.get("encoder") or {}
    if "normalize" in trained and "normalize" in (encoder or {}) and \
            bool(trained["normalize"]) != bool(encoder["normalize"]):
        raise UserError(f"{run} was trained on features with wave normalisation "
                        f"{trained['normalize']}, but {where} has {encoder['normalize']}: use "
                        "features extracted with the training run's --normalize")
    theirs, ours = trained.get("weights_sha256"), (encoder or {}).get("weights_sha256")
    if theirs and ours and theirs != ours:
        raise UserError(f"{run} was trained on features of encoder {trained.get('encoder')!r} "
                        f"(weights {theirs}), but {where} comes from "
                        f"{(encoder or {}).get('encoder')!r} with other weights ({ours}): use "
                        "the training encoder")
