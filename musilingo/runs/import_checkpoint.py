"""Import a MusiLingo adapter as this project's run folder: a reference `.pth`, or a published model.

    musilingo import-checkpoint musilingo_stage2.pth --llm /models/vicuna-7b --out runs/ref
    musilingo import-checkpoint m-a-p/MusiLingo-short-v1 --llm /models/vicuna-7b --out runs/short
    musilingo ask --run runs/short song.wav "What instrument is playing?"

Two sources hold the same two tensors, `llama_proj.weight` [4096, 1024] and `llama_proj.bias`
[4096] (docs/REFERENCE.md, "Published MusiLingo weights"):
- the reference code's `.pth`: `{"model": {those two}, "optimizer": ..., "config": ...}` from
  `torch.save`. A `.pth` is a pickle, and unpickling runs code, so it is read with
  `torch.load(weights_only=True)`: only tensors and plain containers load; the `model` entry
  must hold exactly the two tensors;
- a published hub model (`m-a-p/MusiLingo-{short,long,musicqa}-v1`, or its folder): ~15 GB of
  sharded weights (MERT, Vicuna and the adapter, under some key prefix), remote code and a
  `config.json` naming `mert_model`, `llama_model`, `prompt_template`, `max_txt_len`, `end_sym`.
  Only the config, the shard index and the one shard holding the adapter are read, and from that
  shard only the two tensors; the remote code never runs.

Both are checked (shapes [out, in] and [out], finite values, input width against `--encoder`,
output width against `--llm` when its config can be read) before anything is written. The
adapter was trained on MERT-v1-330M (25 hidden states, width 1024), averaged over all layers and
over windows of t = 325 frames, with the stage-2 template; those are the defaults written to
adapter_config.json. The paper's Vicuna-7B v0 is a delta on LLaMA-7B, so no hub id loads it
directly: pass the merged model's folder or id as `--llm`.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from ..errors import UserError
from ..vocabulary import window_factor
from ..models.adapter_config import AdapterConfig
from .adapter_file import save_adapter
from ..models.prompts import AUDIO_MARKER, PromptTemplate, get_template

WEIGHT, BIAS = "llama_proj.weight", "llama_proj.bias"
# Known encoders: (hidden states, width), to catch a checkpoint imported with the wrong one.
KNOWN_ENCODERS = {"mert-330m": (25, 1024), "mert-95m": (13, 768)}


def read_reference_checkpoint(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(weight [out, in], bias [out], notes on ignored top-level keys) from a reference `.pth`."""
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
    weight, bias = _checked(state[WEIGHT], state[BIAS], f"{path}: 'model'")
    ignored = sorted(str(k) for k in data if k != "model")
    notes = [f"ignored top-level entries {', '.join(ignored)} (not adapter weights)"] \
        if ignored else []
    return weight, bias, notes


# ------------------------------------------------------------------ published hub models
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
# MusiLingoConfig's defaults, for fields a published config.json leaves out.
PUBLISHED_DEFAULTS = {"mert_model": "m-a-p/MERT-v1-330M",
                      "prompt_template": "###Human: {} ###Assistant: ", "max_txt_len": 32,
                      "end_sym": "\n"}


def _adapter_keys(names, where: str) -> tuple[str, str]:
    """The one key ending in llama_proj.weight and the one ending in llama_proj.bias."""
    found = []
    for suffix in (WEIGHT, BIAS):
        keys = sorted(k for k in names if k == suffix or k.endswith("." + suffix))
        if len(keys) != 1:
            what = "no key" if not keys else f"{len(keys)} keys ({', '.join(keys[:3])})"
            raise UserError(f"{where}: {what} ending in {suffix!r}: not a MusiLingo model")
        found.append(keys[0])
    return found[0], found[1]


def _read_tensors(path: str, keys: list[str] | None) -> dict | list[str]:
    """Only `keys` from one weights file (safetensors: tensor by tensor; .bin: weights_only, mmap);
    with keys=None, the names it holds. A damaged or truncated file is a user error naming it."""
    try:
        if path.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(path, framework="pt") as f:
                return list(f.keys()) if keys is None else {k: f.get_tensor(k) for k in keys}
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return list(data) if keys is None else {k: data[k].clone() for k in keys}
    except pickle.UnpicklingError:
        raise UserError(f"{path}: refused: it holds Python objects other than tensors, which "
                        "could run code when loaded") from None
    except Exception as exc:  # truncated, overwritten, or a key the index promised is absent
        raise UserError(f"{path}: damaged weights file ({type(exc).__name__}: "
                        f"{str(exc).strip()[:120]}); download the model again") from None


def _json(path: str, where: str) -> dict:
    import json

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"{where}: unreadable JSON ({type(exc).__name__}: "
                        f"{str(exc).strip()[:120]}); download the model again") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a JSON object, found {type(data).__name__}")
    return data


def _shard_file(source: str, name, index_name: str) -> str:
    """The file an index names, refused unless it is a plain relative name inside the model
    folder: an index is input, and `/etc/passwd` or `../../x` must never be opened through it."""
    from pathlib import PurePosixPath

    from ..models.hub import model_file

    where = f"{source}/{index_name}"
    parts = PurePosixPath(name).parts if isinstance(name, str) else ()
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts or "\\" in name \
            or ":" in parts[0]:
        raise UserError(f"{where}: refused shard name {str(name)[:80]!r}: an index may only name "
                        "files inside the model folder")
    path = model_file(source, name)
    if path is None:
        raise UserError(f"{source}: {index_name} names {name}, which is missing")
    local = Path(source).expanduser()
    if local.is_dir():
        root, real = local.resolve(), Path(path).resolve()
        # A hub cache snapshot links each file to ../../blobs/<sha>: that is still its own model.
        roots = [root] + ([root.parent.parent / "blobs"] if root.parent.name == "snapshots" else [])
        if not any(real == r or r in real.parents for r in roots):
            raise UserError(f"{where}: refused shard {name!r}: it links to {real}, outside the "
                            "model folder")
    return path


def read_published_model(source: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(weight, bias, config.json) of a published MusiLingo model folder or hub id."""
    from ..models.hub import model_file

    config_path = model_file(source, "config.json")
    if config_path is None:
        raise UserError(f"{source}: no config.json (not a model folder, or the hub is unreachable)")
    config = _json(config_path, f"{source}/config.json")
    index = next(((name, p) for name in INDEX_FILES if (p := model_file(source, name))), None)
    if index is not None:
        weight_map = _json(index[1], f"{source}/{index[0]}").get("weight_map") or {}
        if not isinstance(weight_map, dict):
            raise UserError(f"{source}/{index[0]}: 'weight_map' is not an object")
        w_key, b_key = _adapter_keys(weight_map, f"{source}/{index[0]}")
        tensors = {}
        for shard in sorted({weight_map[w_key], weight_map[b_key]}, key=str):
            path = _shard_file(source, shard, index[0])
            keys = [k for k in (w_key, b_key) if weight_map[k] == shard]
            tensors.update(_read_tensors(path, keys))
    else:
        single = next(((name, p) for name in SINGLE_FILES if (p := model_file(source, name))), None)
        if single is None:
            raise UserError(f"{source}: no {' or '.join(INDEX_FILES + SINGLE_FILES)}")
        names = _read_tensors(single[1], None)
        w_key, b_key = _adapter_keys(names, f"{source}/{single[0]}")
        tensors = _read_tensors(single[1], [w_key, b_key])
    weight, bias = _checked(tensors[w_key], tensors[b_key], source)
    return weight, bias, {**PUBLISHED_DEFAULTS, **config}


def _checked(weight, bias, where) -> tuple[torch.Tensor, torch.Tensor]:
    for key, t in ((WEIGHT, weight), (BIAS, bias)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise UserError(f"{where}[{key!r}] is not a floating-point tensor")
    if weight.dim() != 2 or bias.dim() != 1 or bias.shape[0] != weight.shape[0]:
        raise UserError(f"{where}: {WEIGHT} has shape {list(weight.shape)} and {BIAS} "
                        f"{list(bias.shape)}; expected [out, in] and [out]")
    for key, t in ((WEIGHT, weight), (BIAS, bias)):
        if not torch.isfinite(t).all():
            raise UserError(f"{where}: {key} holds NaN or infinite values: the checkpoint is "
                            "damaged")
    return weight.float().contiguous(), bias.float().contiguous()


def published_template(config: dict, where: str) -> PromptTemplate:
    """The prompt template a published config names, as this project's template."""
    text = str(config.get("prompt_template") or "")
    end, max_tokens = str(config["end_sym"]), int(config["max_txt_len"])
    if not text:  # a stage-1 model: audio, then the caption
        return PromptTemplate("caption", AUDIO_MARKER, end, max_tokens)
    if text.count("{}") != 1:
        raise UserError(f"{where}: prompt_template {text!r} has no single '{{}}' for the question")
    # The reference code formats the template with "<Audio><AudioHere></Audio> " + question.
    body = text.replace("{}", "<Audio>" + AUDIO_MARKER + "</Audio> {question}")
    ours = get_template("instruct")
    name = "instruct" if body == ours.text and end == ours.end else "imported"
    return PromptTemplate(name, body, end, max_tokens)


# --------------------------------------------------------------------------- the run folder
def adapter_config(weight: torch.Tensor, *, llm: str, encoder: str, layers: int, stride: int,
                   t: int, source: str, template: PromptTemplate | None = None,
                   normalize: bool | None = None) -> AdapterConfig:
    """The `AdapterConfig` of an imported linear adapter, with where it came from."""
    llm_dim, dim = int(weight.shape[0]), int(weight.shape[1])
    identity = {"encoder": encoder, "hidden_size": dim, "num_hidden_states": layers,
                "sample_rate": 24000, "frame_rate": 75.0}
    if normalize is not None:
        identity["normalize"] = normalize
    return AdapterConfig(llm=llm, llm_dim=llm_dim, encoder_dim=dim, num_layers=layers,
                         stride=stride, t=t, template=template or get_template("instruct"),
                         encoder=identity, imported_from=source).validate()


def _config(resolve, name: str) -> dict:
    """A model's config.json as a dict, or {} when it cannot be read here (a hub id offline)."""
    from ..models.encoders.mert import read_config

    try:
        return read_config(resolve(name))
    except (UserError, OSError):
        return {}


def _int(config: dict, key: str) -> int | None:
    try:
        return int(config[key])
    except (KeyError, TypeError, ValueError):
        return None


def _check_widths(weight: torch.Tensor, source, llm: str, encoder: str) -> int | None:
    """Refuse an adapter whose widths contradict --encoder / --llm; the encoder's layer count."""
    from ..models.encoders.hubert import resolve_encoder
    from ..models.llm import resolve_llm

    dim, out = int(weight.shape[1]), int(weight.shape[0])
    known = KNOWN_ENCODERS.get(encoder)
    config = {} if known else _config(resolve_encoder, encoder)   # read once: width and layers
    width = known[1] if known else _int(config, "hidden_size")
    if width is not None and dim != width:
        other = [n for n, (_, w) in KNOWN_ENCODERS.items() if w == dim]
        hint = f"--encoder {other[0]}" if other else "the encoder it was trained on"
        raise UserError(f"{source}: {WEIGHT} takes {dim}-wide features, but --encoder "
                        f"{encoder} is {width} wide: pass {hint}")
    llm_width = _int(_config(resolve_llm, llm), "hidden_size")
    if llm_width is not None and out != llm_width:
        raise UserError(f"{source}: {WEIGHT} writes {out}-wide embeddings, but --llm {llm} is "
                        f"{llm_width} wide: pass the LLM the adapter was trained with")
    if known:
        return known[0]
    layers = _int(config, "num_hidden_layers")
    return layers + 1 if layers is not None else None


def import_checkpoint(path: str | Path, out: str | Path, *, llm: str | None = None,
                      encoder: str | None = None, layers: int | None = None, stride: int = 325,
                      t: int = 325, normalize: bool | None = None,
                      overwrite: bool = False) -> tuple[Path, list[str]]:
    """Write `out`/adapter.safetensors + adapter_config.json; returns (out, notes)."""
    from ..models.encoders.hubert import PRESETS as ENCODER_PRESETS
    from ..models.hub import is_local

    source = str(path)
    local = Path(source).expanduser()
    template = None
    if local.is_file():
        weight, bias, notes = read_reference_checkpoint(local)
        if llm is None:
            raise UserError("--llm is needed for a .pth checkpoint (it does not name its LLM)")
        origin = str(local.absolute())
    elif local.is_dir() or not is_local(source):
        weight, bias, config = read_published_model(source)
        template = published_template(config, source)
        llm = llm or str(config.get("llama_model") or "")
        if not llm:
            raise UserError(f"{source}: config.json names no llama_model: pass --llm")
        mert = str(config.get("mert_model"))
        encoder = encoder or next((k for k, v in ENCODER_PRESETS.items() if v == mert), mert)
        notes = [f"template {template.name!r} ({template.text!r}, end {template.end!r}, "
                 f"{template.max_target_tokens} target tokens) from config.json"]
        origin = str(local.absolute()) if local.is_dir() else source
    else:
        raise UserError(f"{source}: no such checkpoint file, model folder or hub id")
    encoder = encoder or "mert-330m"
    found_layers = _check_widths(weight, source, llm, encoder)
    layers = layers if layers is not None else found_layers
    if layers is None:
        raise UserError(f"--layers is needed for encoder {encoder!r} (its hidden-state count, "
                        "layers + 1)")
    window_factor(t, stride, t_name="--t", stride_name="--stride")
    out = Path(out).expanduser()
    if (out / "adapter.safetensors").exists() and not overwrite:
        raise UserError(f"{out} already holds an adapter: choose another --out or pass --overwrite")
    cfg = adapter_config(weight, llm=llm, encoder=encoder, layers=layers, stride=stride, t=t,
                         source=origin, template=template, normalize=normalize)
    dim = int(weight.shape[1])
    state = {"proj.weight": weight, "proj.bias": bias,
             "feature_mean": torch.zeros(dim), "feature_std": torch.ones(dim)}
    save_adapter(out, cfg, state)
    return out, notes
