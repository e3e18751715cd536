"""Import a reference-code adapter (`.pth`) as this project's run folder.

    musilingo import-checkpoint musilingo_stage2.pth --llm /models/vicuna-7b --out runs/ref
    musilingo ask --run runs/ref song.wav "What instrument is playing?" --trust-remote-code

The reference code saves `{"model": {"llama_proj.weight": [4096, 1024], "llama_proj.bias":
[4096]}, "optimizer": ..., "config": ..., ...}` with `torch.save` (REFERENCE.md section 2). A
`.pth` is a pickle, and unpickling runs code, so it is read with `torch.load(weights_only=True)`:
only tensors and plain containers load, and anything else (e.g. an object whose `__reduce__`
calls a function) is refused before it runs. The `model` entry must hold exactly those two
tensors, of shapes [out, in] and [out]; any other content is refused with the file and the
offending key or shape named. Other top-level entries (optimizer, config, epoch) are ignored and
listed.

The reference adapter was trained on MERT-v1-330M (25 hidden states, width 1024) averaged over
all layers and over windows of t = 325 frames, with the stage-2 (instruct) template; those are
the defaults written to adapter_config.json. A weight whose input width contradicts `--encoder`
(e.g. 768 with mert-330m) is refused. The LLM must be given (`--llm`): the paper's Vicuna-7B v0
is a delta on LLaMA-7B, so no hub id loads it directly; pass the merged model's folder or id.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..errors import UserError
from ..models.prompts import get_template

WEIGHT, BIAS = "llama_proj.weight", "llama_proj.bias"
# Known encoders: (hidden states, width), to catch a checkpoint imported with the wrong one.
KNOWN_ENCODERS = {"mert-330m": (25, 1024), "mert-95m": (13, 768)}


def read_reference_checkpoint(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(weight [out, in], bias [out], ignored top-level keys) from a reference `.pth`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is a paragraph; the line naming the refused global is the useful one.
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        why = next((ln.split("error:", 1)[-1].strip() for ln in lines
                    if "GLOBAL" in ln or "Unpickler error" in ln),
                   lines[0] if lines else type(exc).__name__)
        raise UserError(f"{path}: refused: it holds Python objects other than tensors, which "
                        f"could run code when loaded ({why[:160]}); only plain weight "
                        "checkpoints are imported") from None
    except Exception as exc:  # not a torch file at all: truncated, another format, text
        raise UserError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: "
                        f"{str(exc).strip()[:120]}); give the reference code's .pth file") from None
    if not isinstance(data, dict) or "model" not in data:
        what = f"keys {', '.join(map(str, list(data)[:8]))}" if isinstance(data, dict) else \
            f"a {type(data).__name__}"
        raise UserError(f"{path}: expected a dict with a 'model' entry (the reference code's "
                        f"format), found {what}")
    state = data["model"]
    if not isinstance(state, dict):
        raise UserError(f"{path}: 'model' is a {type(state).__name__}, expected a dict of "
                        f"tensors {WEIGHT!r} and {BIAS!r}")
    extra = sorted(set(map(str, state)) - {WEIGHT, BIAS})
    if extra:
        raise UserError(f"{path}: 'model' holds unexpected key {extra[0]!r} (expected exactly "
                        f"{WEIGHT!r} and {BIAS!r}): not a MusiLingo adapter checkpoint")
    for key in (WEIGHT, BIAS):
        if key not in state:
            raise UserError(f"{path}: 'model' has no {key!r}: not a MusiLingo adapter checkpoint")
        if not isinstance(state[key], torch.Tensor) or not state[key].is_floating_point():
            raise UserError(f"{path}: 'model'[{key!r}] is not a floating-point tensor")
    weight, bias = state[WEIGHT], state[BIAS]
    if weight.dim() != 2 or bias.dim() != 1 or bias.shape[0] != weight.shape[0]:
        raise UserError(f"{path}: {WEIGHT} has shape {list(weight.shape)} and {BIAS} "
                        f"{list(bias.shape)}; expected [out, in] and [out]")
    for key, t in ((WEIGHT, weight), (BIAS, bias)):
        if not torch.isfinite(t).all():
            raise UserError(f"{path}: {key} holds NaN or infinite values: the checkpoint is "
                            "damaged")
    ignored = sorted(str(k) for k in data if k != "model")
    return weight.float().contiguous(), bias.float().contiguous(), ignored


def adapter_config(weight: torch.Tensor, *, llm: str, encoder: str, layers: int, stride: int,
                   t: int, source: str) -> dict:
    """The adapter_config.json of an imported adapter (same keys as `MusiLingo.adapter_config`)."""
    llm_dim, dim = int(weight.shape[0]), int(weight.shape[1])
    return {"format": "musilingo-adapter/1", "llm": llm, "llm_dim": llm_dim, "encoder_dim": dim,
            "num_layers": layers, "stride": stride, "t": t, "layer_aggregation": "mean",
            "normalized": False, "template": get_template("instruct").to_dict(),
            "encoder": {"encoder": encoder, "hidden_size": dim, "num_hidden_states": layers,
                        "sample_rate": 24000, "frame_rate": 75.0},
            "imported_from": source}


def import_checkpoint(path: str | Path, out: str | Path, *, llm: str, encoder: str = "mert-330m",
                      layers: int | None = None, stride: int = 325, t: int = 325,
                      overwrite: bool = False) -> tuple[Path, list[str]]:
    """Write `out`/adapter.safetensors + adapter_config.json; returns (out, ignored keys)."""
    from ..train.checkpoint import save_adapter

    weight, bias, ignored = read_reference_checkpoint(path)
    dim = int(weight.shape[1])
    known = KNOWN_ENCODERS.get(encoder)
    if known is not None:
        if dim != known[1]:
            other = [n for n, (_, w) in KNOWN_ENCODERS.items() if w == dim]
            hint = f"--encoder {other[0]}" if other else "the encoder it was trained on"
            raise UserError(f"{path}: {WEIGHT} takes {dim}-wide features, but --encoder "
                            f"{encoder} is {known[1]} wide: pass {hint}")
        layers = known[0] if layers is None else layers
    if layers is None:
        raise UserError(f"--layers is needed for encoder {encoder!r} (its hidden-state count, "
                        "layers + 1)")
    if stride < 1 or t < 1 or t % stride:
        raise UserError(f"--t {t} must be a positive multiple of --stride {stride}")
    out = Path(out).expanduser()
    if (out / "adapter.safetensors").exists() and not overwrite:
        raise UserError(f"{out} already holds an adapter: choose another --out or pass --overwrite")
    cfg = adapter_config(weight, llm=llm, encoder=encoder, layers=layers, stride=stride, t=t,
                         source=str(Path(path).expanduser().absolute()))
    state = {"proj.weight": weight, "proj.bias": bias,
             "feature_mean": torch.zeros(dim), "feature_std": torch.ones(dim)}
    save_adapter(out, cfg, state)
    return out, ignored
