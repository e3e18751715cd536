"""The frozen music encoder: MERT-v1 (loaded natively), musicnn, or any transformers audio model.

    enc = load_encoder("tiny")                             # built-in random MERT-layout model
    enc = load_encoder("mert-330m")                        # m-a-p/MERT-v1-330M, no remote code
    enc = load_encoder("musicnn-mtt")                      # pretrained musicnn (models/encoders/musicnn.py)
    enc = load_encoder("/models/MERT-v1-95M", normalize="off")
    hidden = enc.encode(np.stack(waves))                   # [batch, L+1, frames, dim]

Every encoder is an `Encoder` (models/encoders/base.py, the contract the rest of the package
knows); `load_encoder` picks the implementation from the name or the folder's config.

MERT is a HuBERT-style model (conv feature extractor, 320x downsampling to 75 frames/s at
24 kHz, then L transformer layers). MERT-v1 checkpoints are read by `models.mert` into
transformers' own `HubertModel`, without executing the checkpoint's code; other models load with
`AutoModel` (their own code only with `trust_remote_code`).

`FrozenEncoder` wraps the transformers (HuBERT-family) models. Its L+1 hidden states are
collected by hooks on the encoder's layers, not from `output_hidden_states`, so they mean what
they meant under transformers 4.x, where MusiLingo was trained, whatever this transformers
version returns: state 0 is the input of the first layer, state i the output of layer i, and
the last one is the model's `last_hidden_state`, which for a pre-LN ("stable layer norm")
encoder such as MERT-v1-330M comes after the final LayerNorm (docs/REFERENCE.md, "MERT-v1
checkpoints").

The encoder is frozen: eval mode (so SpecAugment masking is off, unlike the reference code,
which left MERT in train mode) and `torch.inference_mode`. Waves are normalised (zero mean, unit
variance per segment) when the checkpoint's `preprocessor_config.json` says `do_normalize`, or as
`normalize="on"|"off"` forces; the choice is part of `identity()`, so caches record it. A batch
must hold segments of equal length: padding would leak into the conv positional embedding and the
last window, so the extraction job batches equal-length segments and runs a clip's short tail
on its own.

The `tiny` preset is a randomly initialised `HubertModel` with MERT-v1-95M's layout at small sizes
(fixed seed), saved once as an ordinary local model folder: tests and the demo load it through
the same `from_pretrained` path as the real checkpoints.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ...errors import UserError
from ..home import build_folder, check_if_built, models_home, save_model
from ..hub import require_model
from .base import NORMALIZE_CHOICES, Encoder

# Hub ids of the real encoders (MERT-v1: loaded natively, see models/encoders/mert.py).
PRESETS = {
    "mert-330m": "m-a-p/MERT-v1-330M",
    "mert-95m": "m-a-p/MERT-v1-95M",
}
MERT_SAMPLE_RATE = 24000

# MERT-v1's architectures in transformers' HubertConfig terms: the released 95M config and the
# official conversion template of the 330M (both: a group-norm conv extractor without conv bias;
# the 330M has a pre-LN "stable layer norm" encoder).
MERT_LAYOUTS = {
    "330m": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                 intermediate_size=4096, feat_extract_norm="group", do_stable_layer_norm=True,
                 conv_dim=[512] * 7, conv_bias=False),
    "95m": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072, feat_extract_norm="group", do_stable_layer_norm=False,
                conv_dim=[512] * 7, conv_bias=False),
}
MERT_COMMON = dict(conv_kernel=[10, 3, 3, 3, 3, 2, 2], conv_stride=[5, 2, 2, 2, 2, 2, 2],
                   num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
                   feat_extract_activation="gelu", hidden_act="gelu", layer_norm_eps=1e-5)
# The tiny preset: MERT-95M's layout, shrunk (docs/REFERENCE.md section 6 shows its features carry
# the demo's musical attributes).
TINY_SIZES = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=256, conv_dim=[64] * 7, num_conv_pos_embeddings=32,
                  num_conv_pos_embedding_groups=4)


def mert_config(layout: str = "95m", **overrides):
    """A transformers `HubertConfig` with MERT's values (`layout` 95m or 330m), for random models."""
    from transformers import HubertConfig

    values = {**MERT_COMMON, **MERT_LAYOUTS[layout], **overrides}
    # Frozen feature extraction: no dropout or SpecAugment anywhere.
    values.update(hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                  feat_proj_dropout=0.0, final_dropout=0.0, layerdrop=0.0,
                  mask_time_prob=0.0, mask_feature_prob=0.0)
    return HubertConfig(**values)


def build_random_encoder(folder: str | Path, *, layout: str = "95m", seed: int = 0,
                         **overrides) -> Path:
    """A randomly initialised HubertModel with MERT's layout, as a local model folder (built by one
    process, published atomically: models/home.py)."""
    from transformers import HubertModel, Wav2Vec2FeatureExtractor

    def build(tmp: Path) -> None:
        torch.manual_seed(seed)
        model = HubertModel(mert_config(layout, **overrides)).eval()
        save_model(model, tmp)
        Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=MERT_SAMPLE_RATE,
                                 padding_value=0.0, do_normalize=True,
                                 return_attention_mask=True).save_pretrained(tmp)

    return build_folder(Path(folder), build, what=f"a random MERT-{layout} encoder")


def tiny_encoder_folder() -> Path:
    return build_random_encoder(models_home() / "encoders" / "tiny-mert-v1", layout="95m",
                                seed=0, **TINY_SIZES)


def resolve_encoder(name: str) -> str:
    """Preset name, hub id or local folder -> what `from_pretrained` takes."""
    if name == "tiny":
        return str(tiny_encoder_folder())
    source = PRESETS.get(name, name)
    require_model(source, "encoder", "pass --encoder with a local model folder, or "
                  "--encoder tiny (built locally: no download)")
    return source


def _normalize_flag(normalize: str | bool, feature_extractor) -> bool:
    """auto: the checkpoint's preprocessor_config.json `do_normalize`; on/off force it."""
    if isinstance(normalize, bool):
        return normalize
    if normalize not in NORMALIZE_CHOICES:
        raise UserError(f"--normalize {normalize}: choose auto, on or off")
    if normalize == "auto":
        return bool(getattr(feature_extractor, "do_normalize", True))
    return normalize == "on"


def _encoder_layers(model):
    """The transformer layers whose outputs are the hidden states (HuBERT/wav2vec2 family)."""
    layers = getattr(getattr(model, "encoder", None), "layers", None)
    return layers if isinstance(layers, torch.nn.ModuleList) and len(layers) else None


class FrozenEncoder(Encoder):
    """A frozen transformers audio model returning all hidden states of equal-length batches."""

    architecture = "hubert"
    preprocessing = ("per-segment zero-mean unit-variance normalisation (the model's "
                     "Wav2Vec2FeatureExtractor) when `normalize` is true; eval mode (no SpecAugment)")

    def __init__(self, model, feature_extractor, name: str, *, normalize: str | bool = "auto",
                 loader: str = "native"):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.feature_extractor = feature_extractor
        self.name = name
        self.loader = loader
        self.normalize = _normalize_flag(normalize, feature_extractor)
        feature_extractor.do_normalize = self.normalize
        cfg = model.config
        self.sample_rate = int(getattr(feature_extractor, "sampling_rate", MERT_SAMPLE_RATE))
        self.hidden_size = int(cfg.hidden_size)
        self.num_hidden_states = int(cfg.num_hidden_layers) + 1
        self.conv_kernel = list(cfg.conv_kernel)
        self.conv_stride = list(cfg.conv_stride)
        self.frame_rate = self.sample_rate / float(np.prod(self.conv_stride))

    @classmethod
    def load(cls, name: str = "tiny", *, trust_remote_code: bool = False,
             device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
             normalize: str | bool = "auto") -> "FrozenEncoder":
        from transformers import AutoFeatureExtractor

        from . import mert

        source = resolve_encoder(name)
        check_if_built(source, f"encoder {name!r}")
        dtype = dtype or torch.float32
        config = mert.read_config(source)
        if mert.is_mert(config):
            why = mert.unsupported(config)
            if why is None:
                model, loader = mert.load_mert(source, config, dtype=dtype), "native"
            elif trust_remote_code:
                model, loader = _auto_model(name, source, True, dtype), "remote-code"
            else:
                raise UserError(f"encoder {name!r}: {why} needs MERT's own modelling code, which "
                                "the native loader does not reproduce: pass --trust-remote-code if "
                                "you trust the checkpoint's code")
        else:
            model = _auto_model(name, source, trust_remote_code, dtype)
            loader = "remote-code" if trust_remote_code and config.get("auto_map") else "native"
        try:
            fe = AutoFeatureExtractor.from_pretrained(source)
        except (OSError, ValueError) as exc:
            raise UserError(f"encoder {name!r} has no usable preprocessor_config.json: "
                            f"{str(exc).splitlines()[0]}") from None
        enc = cls(model.to(device), fe, name, normalize=normalize, loader=loader)
        enc.source = source
        return enc

    @property
    def min_samples(self) -> int:
        """The shortest input that yields one frame (the conv stack's receptive field)."""
        n = 1
        for k, s in reversed(list(zip(self.conv_kernel, self.conv_stride))):
            n = (n - 1) * s + k
        return n

    def num_frames(self, num_samples: int) -> int:
        """Frames the conv stack produces: for MERT, floor((samples - 400) / 320) + 1."""
        n = num_samples
        for k, s in zip(self.conv_kernel, self.conv_stride):
            n = (n - k) // s + 1
        return max(n, 0)

    def _inputs(self, waves) -> torch.Tensor:
        waves = self._check_waves(waves)
        inputs = self.feature_extractor(waves, sampling_rate=self.sample_rate, return_tensors="pt")
        return inputs["input_values"].to(self.device, self.dtype)

    def hidden_states(self, x: torch.Tensor, transform=None) -> list[torch.Tensor]:
        """The L+1 hidden states of input values `x`, with transformers 4.x semantics; each
        passed through `transform` as soon as it exists, when given."""
        keep = transform or (lambda h: h)
        layers = _encoder_layers(self.model)
        if layers is None or len(layers) + 1 != self.num_hidden_states:
            out = self.model(x, output_hidden_states=True)
            if getattr(out, "hidden_states", None) is None:
                raise UserError(f"encoder {self.name!r} returned no hidden states and has no "
                                "`encoder.layers` to collect them from: not a supported model")
            return [keep(h) for h in out.hidden_states]
        states: list = [None] * self.num_hidden_states

        def first_input(_module, args, kwargs):
            states[0] = keep(args[0] if args else kwargs["hidden_states"])

        def output_of(i):
            def hook(_module, _args, out):
                if i + 1 < len(states) - 1:  # the last state is the model's output (below)
                    states[i + 1] = keep(out[0] if isinstance(out, (tuple, list)) else out)
            return hook

        handles = [layers[0].register_forward_pre_hook(first_input, with_kwargs=True)]
        handles += [layer.register_forward_hook(output_of(i)) for i, layer in enumerate(layers)]
        try:
            out = self.model(x)
        finally:
            for h in handles:
                h.remove()
        # The last state is the model's output: after the final LayerNorm of a pre-LN encoder
        # (for a post-LN one it is the last layer's output, the same tensor).
        states[-1] = keep(out[0] if isinstance(out, (tuple, list)) else out.last_hidden_state)
        return states

    def config_dict(self) -> dict:
        cfg = self.model.config.to_dict()
        for k in ("_name_or_path", "transformers_version", "output_hidden_states", "dtype",
                  "torch_dtype", "_attn_implementation_autoset"):
            cfg.pop(k, None)
        return cfg


def _auto_model(name: str, source: str, trust_remote_code: bool, dtype: torch.dtype):
    """Any other transformers audio model (its own code only with `trust_remote_code`)."""
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        return AutoModel.from_pretrained(source, config=config, dtype=dtype,
                                         trust_remote_code=trust_remote_code)
    except ValueError as exc:
        if "trust_remote_code" in str(exc) or "custom code" in str(exc):
            raise UserError(f"encoder {name!r} ships its own modelling code: pass "
                            "--trust-remote-code if you trust it") from None
        raise UserError(f"cannot load encoder {name!r}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise UserError(f"cannot load encoder {name!r} (not a local model folder, and the hub "
                        f"is unreachable or has no such model): {str(exc).splitlines()[0]}") from None
