"""musicnn rebuilt in PyTorch from the pip package's TF1 checkpoints, against TensorFlow.

The reference (tests/models/encoders/reference/musicnn_reference.npz) was computed once with musicnn's
original path: librosa's spectrogram and TensorFlow running the checkpoint's own saved graph;
`make_musicnn_reference.py` beside it says exactly how. Here nothing imports TensorFlow.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from musilingo.errors import UserError
from musilingo.models.encoders import musicnn
from musilingo.models.encoders import load_encoder
from musilingo.models.encoders.tf_checkpoint import read_checkpoint

REFERENCE = Path(__file__).parent / "reference" / "musicnn_reference.npz"
VARIANTS = [("musicnn-mtt", "mtt"), ("musicnn-msd", "msd")]


@pytest.fixture(scope="module")
def reference():
    if importlib.util.find_spec("musicnn") is None:
        msg = f"the pip package musicnn is not installed ({musicnn.PIP_HINT})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return dict(np.load(REFERENCE))


@pytest.fixture(scope="module")
def encoders(reference, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("MUSILINGO_HOME")
    os.environ["MUSILINGO_HOME"] = str(home)  # the conversion on first use, into an empty home
    try:
        return {preset: load_encoder(preset) for preset, _ in VARIANTS}
    finally:
        if old is None:
            del os.environ["MUSILINGO_HOME"]
        else:
            os.environ["MUSILINGO_HOME"] = old


def test_checkpoint_reader_reads_every_variable(reference):
    tensors = read_checkpoint(str(musicnn.package_checkpoint("MTT_musicnn")) + "/")
    weights = {k: v for k, v in tensors.items() if "Adam" not in k and "power" not in k}
    # every trainable weight of the PyTorch rebuild, plus the batch norms' running statistics
    assert sum(v.size for v in weights.values()) == 787_159 + 4_920
    assert sum(p.numel() for p in musicnn.Musicnn().parameters()) == 787_159
    assert tensors["conv2d_5/kernel"].shape == (7, 561, 1, 64)
    assert tensors["dense/kernel"].dtype == np.float32


def test_log_mel_matches_librosa(reference):
    net = musicnn.Musicnn()
    ours = net.log_mel(torch.from_numpy(reference["wave"])[None])[0].numpy()
    theirs = reference["log_mel"]
    assert ours.shape == theirs.shape == (219, 96)
    # Equal up to float16 rounding of bins that land on a rounding boundary (one ulp).
    assert np.abs(ours - theirs).max() < 1e-3
    assert np.mean(np.abs(ours - theirs) < 1e-5) > 0.99


@pytest.mark.parametrize("preset,tag", VARIANTS)
def test_network_matches_tensorflow(encoders, reference, preset, tag):
    """From the same log-mel patches: frame features, penultimate layer and taggram."""
    net = encoders[preset].model
    x = torch.from_numpy(reference["log_mel"])
    with torch.no_grad():
        outs = [net(x[None, :187]), net(x[None, 187:])]  # a full 3 s patch and the short tail
    feats = torch.cat([o["features"][0] for o in outs]).numpy()
    ref = reference[f"{tag}_features"]
    assert np.abs(feats - ref).max() < 1e-5 * np.abs(ref).max() * 10
    pen = torch.cat([o["penultimate"] for o in outs]).numpy()
    assert np.allclose(pen, reference[f"{tag}_penultimate"], atol=1e-4)
    tags = torch.cat([torch.sigmoid(o["logits"]) for o in outs]).numpy()
    assert np.allclose(tags, reference[f"{tag}_taggram"], atol=1e-5)


@pytest.mark.parametrize("preset,tag", VARIANTS)
def test_encoder_from_waves(encoders, reference, preset, tag):
    """The encoder interface end to end: wave -> log-mel -> patches -> one 753-d state."""
    enc = encoders[preset]
    assert (enc.sample_rate, enc.frame_rate, enc.hidden_size, enc.num_hidden_states) == \
        (16000, 62.5, 753, 1)
    wave = reference["wave"]
    assert enc.num_frames(len(wave)) == 219
    hidden = enc.encode([wave])
    assert hidden.shape == (1, 1, 219, 753)
    ref = reference[f"{tag}_features"]
    assert np.abs(hidden[0, 0].numpy() - ref).max() < 1e-4 * np.abs(ref).max()
    means, counts = enc.encode_pooled([wave, wave], stride=100)
    assert counts.tolist() == [100, 100, 19]
    assert torch.allclose(means[0, 0, 2], hidden[0, 0, 200:].mean(0), atol=1e-4)
    ident = enc.identity()
    assert ident["architecture"] == "musicnn" and ident["normalize"] is False
    assert "log-mel" in ident["preprocessing"]


def test_presets_differ_and_folder_loads(encoders):
    mtt, msd = encoders["musicnn-mtt"], encoders["musicnn-msd"]
    assert mtt.identity()["weights_sha256"] != msd.identity()["weights_sha256"]
    assert len(mtt.model.config["tags"]) == 50 and "guitar" in mtt.model.config["tags"]
    again = load_encoder(mtt.source)  # the converted folder, by path
    assert again.identity()["weights_sha256"] == mtt.identity()["weights_sha256"]


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "x.index").write_bytes(b"\0" * 100)
    (tmp_path / "x.data-00000-of-00001").write_bytes(b"")
    with pytest.raises(UserError, match="not a checkpoint this reader supports"):
        read_checkpoint(tmp_path / "x")
    with pytest.raises(UserError, match="no such file"):
        read_checkpoint(tmp_path / "y")


def test_bf16_and_normalised_variants(encoders, reference):
    """bf16 weights keep the spectrogram in float32; --normalize on changes the features."""
    enc = encoders["musicnn-mtt"]
    wave = reference["wave"]
    bf16 = load_encoder(enc.source, dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    fp32 = enc.encode([wave])[0, 0]
    low = bf16.encode([wave])[0, 0]
    assert low.dtype == torch.float32 and low.shape == fp32.shape
    assert (low - fp32).abs().max() < 0.05 * fp32.abs().max()       # bf16 rounding only
    normed = load_encoder(enc.source, normalize="on")
    assert normed.identity()["normalize"] is True
    assert normed.identity()["weights_sha256"] == enc.identity()["weights_sha256"]
    scaled, full = normed.encode([wave * 0.1])[0, 0], normed.encode([wave])[0, 0]
    # level-invariant up to the float16 rounding of the spectrogram
    assert (scaled - full).abs().max() < 2e-3 * full.abs().max()
    assert not torch.allclose(enc.encode([wave * 0.1])[0, 0], fp32, atol=1e-3)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def test_tf_crc32c_catches_a_flipped_byte(reference, tmp_path):
    """Before: the reader ignored the crc32c the format carries, so a flipped byte in the data
    file became a silently different weight."""
    import shutil

    package = musicnn.package_checkpoint("MTT_musicnn")
    for name in (".index", ".data-00000-of-00001"):
        shutil.copy(package / name, tmp_path / f"x{name}")
    prefix = tmp_path / "x"
    good = read_checkpoint(prefix)
    data = tmp_path / "x.data-00000-of-00001"
    _flip(data, data.stat().st_size // 2)
    with pytest.raises(UserError, match=r"x: variable \S+ fails its crc32c check"):
        read_checkpoint(prefix)
    _flip(data, data.stat().st_size // 2)
    assert read_checkpoint(prefix).keys() == good.keys()
    index = tmp_path / "x.index"
    _flip(index, 40)                                # inside the first data block of the table
    with pytest.raises(UserError, match="the index block at byte 0 fails its crc32c check"):
        read_checkpoint(prefix)


def test_damaged_converted_folder_is_a_user_error(reference, tmp_path, monkeypatch, capsys):
    from tests.helpers.cli import run_cli
    from musilingo.models import home

    monkeypatch.setenv("MUSILINGO_HOME", str(tmp_path / "home"))
    folder = musicnn.musicnn_folder("musicnn-mtt")
    weights = folder / "model.safetensors"
    _flip(weights, weights.stat().st_size - 100)    # a weight value: safetensors cannot tell
    home._CHECKED.clear()
    with pytest.raises(UserError, match=rf"model.safetensors is not the file it built .*"
                                        rf"rm -r {folder}"):
        load_encoder("musicnn-mtt")
    with pytest.raises(UserError, match="not the file it built"):
        load_encoder(str(folder))                    # by path too
    weights.write_bytes(weights.read_bytes()[:50])  # truncated, and no record to compare with
    (folder / "musilingo_build.json").unlink()
    with pytest.raises(UserError, match=r"model.safetensors: damaged or not musicnn's weights"):
        load_encoder(str(folder))
    import soundfile as sf

    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", np.zeros(16000, np.float32), 16000)
    code, _, err = run_cli(capsys, "extract", "--encoder", str(folder), "--dataset", "folder",
                           "--audio-root", str(tmp_path / "audio"), "--out",
                           str(tmp_path / "c.zarr"))
    assert code == 2 and "damaged or not musicnn's weights" in err, err
