"""MERT-v1 checkpoints in the real hub layout load natively and compute what MERT's own code
computed under transformers 4.x (the fixtures' reference outputs, made with transformers 4.47.1).

The two fixture folders cover both MERT-v1 encoders: the 95M layout (post-LN encoder) and the
330M layout (pre-LN "stable layer norm" encoder, whose last hidden state comes after the final
LayerNorm). Each holds two 5 s waves, their hidden states, and the reference MusiLingo code's
audio embedding (mean over hidden states, then windows of t = 325 frames).
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

from musilingo.errors import UserError
from musilingo.models.encoders.hubert import FrozenEncoder
from tests.helpers.models import adapter

LAYOUTS = ["mert-v1-95m-layout", "mert-v1-330m-layout"]
# fp32 sums run in a CPU-dependent order: on a 2-core AMD EPYC one value in 191,488 differed
# from MERT's own code by 1.14e-5 (every other within 1e-5, as on Intel Xeon). A wrong layer,
# normalisation or convolution is off by 1e-2 or more.
TOL = 3e-5


@pytest.fixture(params=LAYOUTS)
def mert(request, shared_data):
    return shared_data / "models" / request.param


def reference(folder, name):
    return np.load(folder / "reference" / f"{name}.npy")


def copy_with(folder, tmp_path, **config_changes):
    """A copy of a fixture folder with config.json fields changed (None deletes a field)."""
    dst = tmp_path / folder.name
    shutil.copytree(folder, dst)
    config = json.loads((dst / "config.json").read_text())
    for key, value in config_changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_native_hidden_states_equal_the_reference(mert):
    enc = FrozenEncoder.load(str(mert))          # no --trust-remote-code
    assert enc.loader == "native" and type(enc.model).__name__ == "HubertModel"
    assert enc.normalize is True                 # preprocessor_config.json: do_normalize true
    hidden = enc.encode(list(reference(mert, "waves"))).numpy()
    ref = reference(mert, "hidden_states")
    assert hidden.shape == ref.shape == (2, 4, 374, 64)
    np.testing.assert_allclose(hidden, ref, rtol=0, atol=TOL)


def test_last_state_is_after_the_final_layer_norm_for_stable_ln(shared_data):
    """transformers 5's own `hidden_states` differ from 4.x exactly here; ours do not."""
    folder = shared_data / "models" / "mert-v1-330m-layout"
    enc = FrozenEncoder.load(str(folder))
    x = torch.from_numpy(reference(folder, "input_values"))
    with torch.inference_mode():
        native = enc.model(x, output_hidden_states=True).hidden_states
        ours = enc.hidden_states(x)
    ref = reference(folder, "hidden_states")
    assert float((native[-1] - torch.from_numpy(ref[:, -1])).abs().max()) > 1e-2
    np.testing.assert_allclose(ours[-1].numpy(), ref[:, -1], atol=TOL)


def test_normalisation_follows_the_preprocessor_and_can_be_forced(mert, tmp_path):
    waves, inputs = reference(mert, "waves"), reference(mert, "input_values")
    ref = reference(mert, "hidden_states")
    off = FrozenEncoder.load(str(mert), normalize="off")
    assert off.normalize is False and off.identity()["normalize"] is False
    # Already-normalised input through an encoder that does not normalise: the reference.
    np.testing.assert_allclose(off.encode(list(inputs)).numpy(), ref, atol=TOL)
    # Raw waves without normalisation are another input (the trumpet is far from unit variance).
    assert float(np.abs(off.encode(list(waves)).numpy() - ref).max()) > 1e-2
    unnormalised = tmp_path / "no-norm"
    shutil.copytree(mert, unnormalised)
    pre = json.loads((unnormalised / "preprocessor_config.json").read_text())
    (unnormalised / "preprocessor_config.json").write_text(json.dumps(dict(pre, do_normalize=False)))
    assert FrozenEncoder.load(str(unnormalised)).normalize is False
    assert FrozenEncoder.load(str(unnormalised), normalize="on").normalize is True
    with pytest.raises(UserError, match="--normalize maybe"):
        FrozenEncoder.load(str(mert), normalize="maybe")


@pytest.mark.parametrize("field, value", [("feature_extractor_cqt", True), ("deepnorm", True),
                                          ("feat_extract_norm", "batch"),
                                          ("some_future_switch", 1)])
def test_settings_the_native_path_cannot_honour_are_refused(mert, tmp_path, field, value):
    folder = copy_with(mert, tmp_path, **{field: value})
    with pytest.raises(UserError, match=f"config field {field}.*--trust-remote-code"):
        FrozenEncoder.load(str(folder))


def test_remote_code_collects_the_same_states(mert, tmp_path):
    """With --trust-remote-code, MERT's own code runs (it returns hidden_states=None under
    transformers 5); the hooks still collect the 4.x hidden states."""
    folder = copy_with(mert, tmp_path, some_future_switch=1)
    enc = FrozenEncoder.load(str(folder), trust_remote_code=True)
    assert enc.loader == "remote-code" and type(enc.model).__name__ == "MERTModel"
    with torch.inference_mode():
        assert enc.model(torch.zeros(1, 24000), output_hidden_states=True).hidden_states is None
    hidden = enc.encode(list(reference(mert, "waves"))).numpy()
    np.testing.assert_allclose(hidden, reference(mert, "hidden_states"), atol=TOL)


def test_every_checkpoint_key_is_used_and_every_parameter_filled(mert, tmp_path):
    weights = load_file(str(mert / "model.safetensors"))
    missing = tmp_path / "missing"
    shutil.copytree(mert, missing)
    dropped = dict(weights)
    del dropped["encoder.layers.1.attention.k_proj.weight"]
    save_file(dropped, str(missing / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(UserError, match=r"encoder.layers.1.attention.k_proj.weight is missing"):
        FrozenEncoder.load(str(missing))
    extra = tmp_path / "extra"
    shutil.copytree(mert, extra)
    save_file(dict(weights, **{"quantizer.codebook": torch.zeros(3)}),
              str(extra / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(UserError, match=r"quantizer.codebook is unexpected"):
        FrozenEncoder.load(str(extra))


def test_old_weight_norm_key_names_load(shared_data, tmp_path):
    """Checkpoints saved before torch's parametrizations name the positional conv's weight norm
    weight_g / weight_v (as the 2023 hub uploads do)."""
    src = shared_data / "models" / "mert-v1-330m-layout"
    folder = tmp_path / "old-names"
    shutil.copytree(src, folder)
    weights = load_file(str(folder / "model.safetensors"))
    renamed = {k.replace("parametrizations.weight.original0", "weight_g")
                .replace("parametrizations.weight.original1", "weight_v"): v
               for k, v in weights.items()}
    assert renamed.keys() != weights.keys()
    save_file(renamed, str(folder / "model.safetensors"), metadata={"format": "pt"})
    hidden = FrozenEncoder.load(str(folder)).encode(list(reference(src, "waves"))).numpy()
    np.testing.assert_allclose(hidden, reference(src, "hidden_states"), atol=TOL)


def cli(*args) -> int:
    """`musilingo ARGS` in-process; its exit status."""
    from musilingo.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def write_waves(folder, waves):
    folder.mkdir()
    for i, w in enumerate(waves):
        sf.write(str(folder / f"wave{i}.wav"), w, 24000, subtype="FLOAT")
    return [f"wave{i}" for i in range(len(waves))]


@pytest.mark.parametrize("stride", [325, 65])
def test_extract_then_adapter_pooling_equals_the_reference_embedding(mert, tmp_path, stride):
    """`musilingo extract` (float32 cache), then the adapter's own pooling: MusiLingo's audio
    embedding before llama_proj, as the reference code computed it."""
    from musilingo.cache import FeatureCache

    ids = write_waves(tmp_path / "audio", reference(mert, "waves"))
    out = tmp_path / "cache.zarr"
    assert cli("extract", "--dataset", "folder", "--audio-root", str(tmp_path / "audio"),
               "--out", str(out), "--encoder", str(mert), "--storage-dtype", "float32", "--stride",
               str(stride), "--no-progress", "--decode-workers", "0", "--threads", "1") == 0
    cache = FeatureCache.open(out)
    assert cache.meta["encoder"]["normalize"] is True
    assert cache.meta["encoder"]["loader"] == "native"
    pool = adapter(64, 8, 4, stride=stride, t=325)
    expected = reference(mert, "musilingo_audio_embeds")          # [2, 2, 64]
    for i, clip in enumerate(ids):
        (seg,) = cache.segments(clip)
        x, counts = pool.pooled(torch.from_numpy(seg.features)[None],
                                torch.from_numpy(seg.counts)[None])
        assert counts[0].tolist()[:2] == [325, 49]
        np.testing.assert_allclose(x[0, :2].numpy(), expected[i], rtol=0, atol=TOL)


def test_online_features_equal_the_reference_embedding(mert, tmp_path):
    from musilingo.features.sources import EncoderSource

    ids = write_waves(tmp_path / "audio", reference(mert, "waves"))
    online = EncoderSource(FrozenEncoder.load(str(mert)), stride=325, segment_seconds=30.0)
    pool = adapter(64, 8, 4, stride=325, t=325)
    expected = reference(mert, "musilingo_audio_embeds")
    for i, clip in enumerate(ids):
        segments = online.segments(str(tmp_path / "audio" / f"{clip}.wav"))
        assert len(segments) == 1
        seg = segments[0]
        x, _ = pool.pooled(torch.from_numpy(seg.features)[None],
                           torch.from_numpy(seg.counts)[None])
        np.testing.assert_allclose(x[0].numpy(), expected[i], rtol=0, atol=TOL)


def test_resume_with_another_normalisation_is_refused(shared_data, tmp_path, capsys):
    mert = shared_data / "models" / "mert-v1-95m-layout"
    write_waves(tmp_path / "audio", reference(mert, "waves"))
    args = ["extract", "--dataset", "folder", "--audio-root", str(tmp_path / "audio"), "--out",
            str(tmp_path / "c.zarr"), "--encoder", str(mert), "--no-progress",
            "--decode-workers", "0"]
    assert cli(*args) == 0
    assert cli(*args, "--normalize", "off") == 2
    assert "(wave normalisation True) but this run uses" in capsys.readouterr().err


def test_an_edited_tiny_encoder_is_refused(tmp_path, monkeypatch):
    """The encoder folders this tool builds are checked at load: an edit that safetensors cannot
    see (one weight value) is refused, naming the folder and the rm -r that rebuilds it."""
    from musilingo.errors import UserError
    from musilingo.models import home
    from musilingo.models.encoders import load_encoder
    from musilingo.models.encoders.hubert import tiny_encoder_folder

    monkeypatch.setenv("MUSILINGO_HOME", str(tmp_path))
    before = load_encoder("tiny").identity()["weights_sha256"]
    weights = tiny_encoder_folder() / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8] ^= 0x40
    weights.write_bytes(bytes(data))
    home._CHECKED.clear()
    with pytest.raises(UserError, match=r"tiny-mert-v1: .*model.safetensors is not the file it "
                                        r"built.*rm -r .*tiny-mert-v1"):
        load_encoder("tiny")
    import shutil

    shutil.rmtree(weights.parent)                  # what the message says: rebuilt, identical
    assert load_encoder("tiny").identity()["weights_sha256"] == before
