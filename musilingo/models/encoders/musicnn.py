"""musicnn (Pons & Serra, 2019), pretrained on MagnaTagATune or the Million Song Dataset, in PyTorch.

    enc = load_encoder("musicnn-mtt")          # models.encoders; weights from the pip package
    feats = enc.encode([wave_16k])             # [1, 1, frames, 753] at 62.5 frames/s
    net = Musicnn.from_folder(folder); taggram = torch.sigmoid(net(logmel)["logits"])

The pip package `musicnn` (ISC licence; install it with `pip install --no-deps musicnn==0.1.0`:
its own code needs TensorFlow 1, which this module never imports) ships TF1 checkpoints. On first
use `musicnn_folder` reads them with `tf_checkpoint.py` (numpy only), maps every variable
onto the PyTorch layers below, and saves a local model folder (config.json +
model.safetensors); later loads read that folder. The network is rebuilt exactly from the
package's `models.py` (docs/musicnn.md has the layer table and the parity check):

- input: log-mel spectrogram, 16 kHz audio, 512-point STFT (periodic Hann, centred, reflect
  padding), hop 256 (62.5 frames/s), 96 Slaney mel bands, power 2, rounded to float16 (the
  training data were stored so), then log10(10000 x + 1);
- front end: batch norm, then "timbral" convolutions (7 frames x 38 and x 67 mel bands, 204
  filters each) and "temporal" ones (128, 64, 32 frames x 1 band, 51 filters each), each ReLU,
  batch norm and a max over frequency: 561 values per frame;
- mid end: three 1-D convolutions over time (7 frames, 64 filters, ReLU, batch norm), the 2nd and
  3rd residual, densely connected: 561 + 3 x 64 = 753 values per frame (musicnn's "features");
- back end: max and mean over time, batch norm, dense 200 (ReLU, batch norm: the "penultimate"
  layer), dense 50: the tag logits.

The network was trained on 3 s patches (187 frames) and its convolutions zero-pad each patch's
edges, so a clip is cut into consecutive 187-frame patches that run independently, as musicnn's
own extractor does; a shorter last patch runs on its own (the extractor drops it). The encoder's
one hidden state is the mid end's 753-d frame features.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...errors import UserError
from ..home import build_folder, check_if_built, models_home
from .base import NORMALIZE_CHOICES, Encoder

SAMPLE_RATE, N_FFT, HOP, N_MELS = 16000, 512, 256, 96
PATCH_FRAMES = 187  # 3 s: the training input length
BN_EPS = 1e-3  # tf.layers.batch_normalization's default
# preset -> the checkpoint folder inside the pip package, and its tag vocabulary's name.
PRESETS = {"musicnn-mtt": "MTT_musicnn", "musicnn-msd": "MSD_musicnn"}
PIP_HINT = "pip install --no-deps musicnn==0.1.0"


def mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] Slaney-style mel triangles with area normalisation, 0 to sr / 2
    (librosa.filters.mel's defaults, which musicnn's spectrograms used)."""
    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        lin = f / (200.0 / 3)
        log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
        return np.where(f >= 1000.0, log_part, lin)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)),
                        (200.0 / 3) * m)

    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def num_frames(num_samples: int) -> int:
    """Frames of the centred STFT: 1 + samples // hop."""
    return 1 + int(num_samples) // HOP if num_samples > N_FFT // 2 else 0


class _ConvBN(nn.Module):
    """Conv (ReLU) then batch norm: the order of musicnn's blocks (normalisation after ReLU)."""

    def __init__(self, conv: nn.Conv1d | nn.Conv2d):
        super().__init__()
        norm = nn.BatchNorm1d if isinstance(conv, nn.Conv1d) else nn.BatchNorm2d
        self.conv, self.bn = conv, norm(conv.out_channels, eps=BN_EPS)

    def forward(self, x):
        return self.bn(F.relu(self.conv(x)))


class Musicnn(nn.Module):
    """musicnn with num_filt_frontend 1.6, 64 mid-end filters and 200 back-end units."""

    # (kernel in frames, kernel in mel bands, filters, time padding before/after)
    TIMBRAL = [(7, int(0.4 * N_MELS), 204), (7, int(0.7 * N_MELS), 204)]
    TEMPORAL = [(128, 1, 51), (64, 1, 51), (32, 1, 51)]

    def __init__(self, num_classes: int = 50, midend: int = 64, backend: int = 200):
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=BN_EPS)
        self.frontend = nn.ModuleList(
            _ConvBN(nn.Conv2d(1, c, (kt, kf))) for kt, kf, c in self.TIMBRAL + self.TEMPORAL)
        self.frontend_dim = sum(c for *_, c in self.TIMBRAL + self.TEMPORAL)
        self.midend = nn.ModuleList([_ConvBN(nn.Conv1d(self.frontend_dim, midend, 7)),
                                     _ConvBN(nn.Conv1d(midend, midend, 7)),
                                     _ConvBN(nn.Conv1d(midend, midend, 7))])
        self.feature_dim = self.frontend_dim + 3 * midend
        self.pool_bn = nn.BatchNorm1d(2 * self.feature_dim, eps=BN_EPS)
        self.dense = nn.Linear(2 * self.feature_dim, backend)
        self.dense_bn = nn.BatchNorm1d(backend, eps=BN_EPS)
        self.logits = nn.Linear(backend, num_classes)
        mel = torch.from_numpy(mel_filterbank())
        self.register_buffer("mel", mel, persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)

    def log_mel(self, waves: torch.Tensor) -> torch.Tensor:
        """[batch, samples] 16 kHz -> [batch, frames, 96] musicnn's input representation."""
        # Always float32 (the buffers too, whatever dtype the network was cast to).
        spec = torch.stft(waves.float(), N_FFT, HOP, window=self.window.float(), center=True,
                          pad_mode="reflect", return_complex=True).abs().pow(2)
        mel = torch.matmul(self.mel.float(), spec).transpose(1, 2)
        return torch.log10(10000 * mel.half().float() + 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel patches [batch, frames, 96] -> frame features [batch, frames, 753]."""
        h = self.input_bn(x.unsqueeze(1))  # [B, 1, T, F]: TF's NHWC with H = time, W = mel
        front = []
        for (kt, *_), block in zip(self.TIMBRAL + self.TEMPORAL, self.frontend):
            before = (kt - 1) // 2  # TF "same" along time (the timbral blocks pad 3 / 3 by hand)
            y = block(F.pad(h, (0, 0, before, kt - 1 - before)))
            front.append(y.amax(dim=3))  # max over the mel axis -> [B, C, T]
        front = torch.cat(front, dim=1)
        outs = [front]
        y = front
        for i, block in enumerate(self.midend):
            z = block(F.pad(y, (3, 3)))
            y = z if i == 0 else z + y
            outs.append(y)
        return torch.cat(outs, dim=1).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Log-mel patches -> frame features, penultimate layer and tag logits (per patch)."""
        feats = self.features(x)
        # TF flattened [batch, 753, (max, mean)]: the two statistics interleave per feature.
        pooled = torch.stack([feats.amax(dim=1), feats.mean(dim=1)], dim=2).flatten(1)
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        return {"features": feats, "penultimate": penultimate, "logits": self.logits(penultimate)}

    # ---- from musicnn's TF1 checkpoint, and to / from our model folder ----

    def load_tf_variables(self, tensors: dict[str, np.ndarray]) -> None:
        """Map the checkpoint's variables (named by tf.layers' creation order) onto the layers."""
        convs = [b.conv for b in self.frontend] + [b.conv for b in self.midend]
        bns = ([self.input_bn] + [b.bn for b in self.frontend] + [b.bn for b in self.midend]
               + [self.pool_bn, self.dense_bn])
        state = {}

        def name(base, i):
            return base if i == 0 else f"{base}_{i}"

        for i, conv in enumerate(convs):
            k = tensors[f"{name('conv2d', i)}/kernel"]  # [kh, kw, in, out]
            w = (torch.from_numpy(k).permute(3, 2, 0, 1) if isinstance(conv, nn.Conv2d)
                 else torch.from_numpy(k[:, :, 0, :]).permute(2, 1, 0))  # [out, W, kh]
            state[conv.weight] = w
            state[conv.bias] = torch.from_numpy(tensors[f"{name('conv2d', i)}/bias"])
        for i, bn in enumerate(bns):
            base = name("batch_normalization", i)
            for attr, var in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                              ("running_var", "moving_variance")):
                state[getattr(bn, attr)] = torch.from_numpy(tensors[f"{base}/{var}"])
        for i, dense in enumerate((self.dense, self.logits)):
            state[dense.weight] = torch.from_numpy(tensors[f"{name('dense', i)}/kernel"]).T
            state[dense.bias] = torch.from_numpy(tensors[f"{name('dense', i)}/bias"])
        with torch.no_grad():
            for target, value in state.items():
                if tuple(target.shape) != tuple(value.shape):
                    raise UserError(f"musicnn checkpoint: a variable of shape {tuple(value.shape)} "
                                    f"does not fit a layer of shape {tuple(target.shape)}")
                target.copy_(value)

    @classmethod
    def from_folder(cls, folder: str | Path) -> "Musicnn":
        from safetensors.torch import load_file

        folder = Path(folder)
        check_if_built(folder, "the converted musicnn")
        config = read_config(folder)
        net = cls(num_classes=len(config["tags"]))
        try:
            state = load_file(str(folder / "model.safetensors"))
            missing, unexpected = net.load_state_dict(state, strict=False)
        except Exception as exc:  # truncated, overwritten, or tensors of the wrong shape
            raise UserError(f"{folder}/model.safetensors: damaged or not musicnn's weights "
                            f"({type(exc).__name__}: {str(exc).strip().splitlines()[0][:120]}); "
                            f"a converted preset is rebuilt after rm -r {folder}") from None
        if missing or unexpected:
            raise UserError(f"{folder}/model.safetensors does not hold musicnn's weights "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        net.config = config
        return net.eval()


def read_config(folder: Path) -> dict:
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable musicnn config ({type(exc).__name__}: "
                        f"{str(exc)[:120]})") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: not a musicnn config (a JSON {type(config).__name__})")
    if config.get("model_type") != "musicnn":
        raise UserError(f"{path}: model_type is {config.get('model_type')!r}, not 'musicnn'")
    return config


def is_musicnn_folder(source: str) -> bool:
    path = Path(source).expanduser() / "config.json"
    try:
        return path.is_file() and json.loads(path.read_text()).get("model_type") == "musicnn"
    except (OSError, ValueError):
        return False


def package_checkpoint(variant: str) -> Path:
    """The checkpoint folder of the pip package (found without importing it: it imports TF)."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the musicnn encoders need the weights of the pip package musicnn "
                        f"(ISC licence): {PIP_HINT}")
    folder = Path(list(spec.submodule_search_locations)[0]) / variant
    if not (folder / ".index").is_file():
        raise UserError(f"{folder}: the musicnn package has no {variant} checkpoint; reinstall "
                        f"it: {PIP_HINT}")
    return folder


def _tags(variant: str, package: Path) -> list[str]:
    """The tag vocabulary, read from the package's configuration.py as data (not executed)."""
    import ast

    source = (package.parent / "configuration.py").read_text()
    wanted = "MTT_LABELS" if variant.startswith("MTT") else "MSD_LABELS"
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == wanted:
            return list(ast.literal_eval(node.value))
    raise UserError(f"{package.parent}/configuration.py has no {wanted}: reinstall: {PIP_HINT}")


def convert_checkpoint(variant: str, folder: Path) -> Path:
    """Read the pip package's TF1 checkpoint and write our model folder (models/home.py)."""
    from safetensors.torch import save_file

    from .tf_checkpoint import read_checkpoint

    def build(tmp: Path) -> None:
        package = package_checkpoint(variant)
        tags = _tags(variant, package)
        net = Musicnn(num_classes=len(tags))
        net.load_tf_variables(read_checkpoint(str(package) + "/"))
        save_file({k: v.contiguous() for k, v in net.state_dict().items()},
                  str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = {"model_type": "musicnn", "variant": variant, "tags": tags,
                  "sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop_length": HOP,
                  "n_mels": N_MELS, "patch_frames": PATCH_FRAMES, "hidden_size": net.feature_dim,
                  "source": f"pip package musicnn 0.1.0, {variant} (ISC licence, Jordi Pons)"}
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n")

    return build_folder(folder, build, what=f"musicnn {variant}",
                        note="converting the pip package's TF checkpoint (once, a few seconds)")


def musicnn_folder(preset: str) -> Path:
    """The local model folder of a preset, converted from the pip package on first use."""
    return convert_checkpoint(PRESETS[preset], models_home() / "encoders" / preset)


class MusicnnEncoder(Encoder):
    """musicnn as an `Encoder`: 16 kHz waves -> one hidden state, the 753-d frame features."""

    architecture = "musicnn"
    preprocessing = ("log-mel: 512-point centred STFT (periodic Hann, reflect padding), hop 256, "
                     "96 Slaney mel bands, power 2, float16, log10(10000 x + 1); consecutive "
                     f"{PATCH_FRAMES}-frame patches run independently (a shorter last patch on "
                     "its own); per-segment zero-mean unit-variance wave normalisation first when "
                     "`normalize` is true (musicnn itself does not normalise)")

    def __init__(self, net: Musicnn, name: str, *, normalize: str | bool = "auto"):
        super().__init__()
        self.model = net.eval().requires_grad_(False)
        self.name, self.loader = name, "native"
        if normalize not in (True, False, *NORMALIZE_CHOICES):
            raise UserError(f"--normalize {normalize}: choose auto, on or off")
        self.normalize = normalize is True or normalize == "on"  # auto: as musicnn was trained
        self.sample_rate, self.frame_rate = SAMPLE_RATE, SAMPLE_RATE / HOP
        self.hidden_size, self.num_hidden_states = net.feature_dim, 1

    @classmethod
    def load(cls, name: str, *, device="cpu", dtype: torch.dtype | None = None,
             normalize: str | bool = "auto") -> "MusicnnEncoder":
        folder = musicnn_folder(name) if name in PRESETS else Path(name).expanduser()
        net = Musicnn.from_folder(folder).to(device, dtype or torch.float32)
        enc = cls(net, name, normalize=normalize)
        enc.source = str(folder)
        return enc

    @property
    def min_samples(self) -> int:
        return N_FFT  # the centred STFT's reflect padding needs more than n_fft / 2 samples

    def num_frames(self, num_samples: int) -> int:
        return num_frames(num_samples)

    def _inputs(self, waves) -> torch.Tensor:
        x = torch.from_numpy(np.stack(self._check_waves(waves))).to(self.device)
        if self.normalize:
            # as Wav2Vec2FeatureExtractor: population variance, 1e-7 under the root
            var = x.var(dim=1, keepdim=True, correction=0)
            x = (x - x.mean(dim=1, keepdim=True)) / torch.sqrt(var + 1e-7)
        return self.model.log_mel(x).to(self.dtype)

    def hidden_states(self, x: torch.Tensor, transform=None) -> list[torch.Tensor]:
        """Log-mel [batch, frames, 96] -> [features [batch, frames, 753]], patch by patch."""
        full = x.shape[1] // PATCH_FRAMES * PATCH_FRAMES
        parts = []
        if full:
            patches = x[:, :full].reshape(-1, PATCH_FRAMES, x.shape[2])
            parts.append(self.model.features(patches).reshape(x.shape[0], full, -1))
        if full < x.shape[1]:
            parts.append(self.model.features(x[:, full:]))
        feats = torch.cat(parts, dim=1)
        return [transform(feats) if transform else feats]

    def config_dict(self) -> dict:
        return {k: v for k, v in self.model.config.items() if k != "source"}
