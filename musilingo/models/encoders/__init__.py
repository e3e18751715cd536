"""Music encoders: the contract (`base.Encoder`) and each implementation behind one loader.

    from musilingo.models.encoders import load_encoder
    enc = load_encoder("tiny")             # built-in random MERT-layout model (hubert.py)
    enc = load_encoder("mert-330m")        # m-a-p/MERT-v1-330M, read natively (mert.py)
    enc = load_encoder("musicnn-mtt")      # pretrained musicnn rebuilt in PyTorch (musicnn.py)

| module | what |
|---|---|
| base.py | `Encoder`: sample rate, frame rate, L+1 hidden states, pooled encoding, identity |
| hubert.py | `FrozenEncoder` over any transformers audio model (HuBERT family); the tiny preset |
| mert.py | MERT-v1 checkpoints read into transformers' HubertModel without remote code |
| musicnn.py | musicnn's network and its encoder; tf_checkpoint.py reads its TF1 checkpoints |
"""
from __future__ import annotations

def load_encoder(name: str = "tiny", *, trust_remote_code: bool = False, device="cpu",
                 dtype=None, normalize: str | bool = "auto"):
    """Any encoder by preset name, hub id or local folder (the one entry point callers use)."""
    from . import musicnn
    from .hubert import FrozenEncoder

    if name in musicnn.PRESETS or musicnn.is_musicnn_folder(name):
        return musicnn.MusicnnEncoder.load(name, device=device, dtype=dtype, normalize=normalize)
    return FrozenEncoder.load(name, trust_remote_code=trust_remote_code, device=device,
                              dtype=dtype, normalize=normalize)
