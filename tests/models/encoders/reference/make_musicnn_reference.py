"""Make tests/models/encoders/reference/musicnn_reference.npz with musicnn's ORIGINAL code path: librosa
for the spectrogram and TensorFlow running the checkpoint's own saved graph (the .meta file).

Run once, in a separate environment (TensorFlow is not a dependency of musilingo):

    python3 -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 librosa==0.11.0
    /tmp/tfvenv/bin/pip install --no-deps musicnn==0.1.0
    /tmp/tfvenv/bin/python tests/models/encoders/reference/make_musicnn_reference.py

What it does, per model (MTT_musicnn, MSD_musicnn):
1. a fixed 3.5 s test signal at 16 kHz (`test_wave`: harmonic tones, a decaying pluck and
   noise, numpy seed 0), stored in the file;
2. the input representation exactly as musicnn's extractor.batch_data computes it:
   librosa.feature.melspectrogram(sr=16000, hop_length=256, n_fft=512, n_mels=96) with
   librosa 0.7's padding (pad_mode="reflect"; librosa >= 0.10 defaults to "constant"), cast to
   float16, then log10(10000 x + 1) computed in float32 (see `log_mel`);
3. the graph saved with the checkpoint (tf.compat.v1.train.import_meta_graph, weights restored
   by its Saver), its input placeholder replaced by one with a free time axis, run on the first
   187-frame patch and, separately, on the remaining frames (the short last patch);
4. it records the frame features (the mid end's dense concatenation: front end 561 + 3 x 64 =
   753), the penultimate layer and the taggram (sigmoid of the logits) of each patch.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SR, PATCH = 16000, 187


def test_wave(seconds: float = 3.5) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    wave = sum(0.3 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 6))
    wave += 0.4 * np.exp(-6 * (t % 0.5)) * np.sin(2 * np.pi * 587.3 * t)
    wave += 0.05 * rng.standard_normal(t.size)
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def log_mel(wave: np.ndarray) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=wave, sr=SR, hop_length=256, n_fft=512, n_mels=96,
                                         pad_mode="reflect").T
    # float16 storage, then the log in float32: under the numpy musicnn pinned (< 1.17),
    # `10000 * float16_array` promoted to float32 (value-based casting of the int 10000); under
    # numpy 2 it would stay float16 and overflow to inf for any bin above 6.55.
    return np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)


def run_model(folder: Path, patches: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.reset_default_graph()
    # The tensors musicnn's models.build_musicnn returns, by their op names in the saved graph.
    # (The saved graph is the training graph: the mid end's concatenation is the frame features.)
    wanted = {"features": "model/concat_1",
              "penultimate": "model/batch_normalization_10/batchnorm/add_1",
              "taggram": "model/Sigmoid"}
    meta = tf.compat.v1.MetaGraphDef()
    meta.ParseFromString((folder / ".meta").read_bytes())
    # Only the forward graph (the saved gradient ops do not import under TF 2), without the
    # recorded static shapes, so that the time axis is free.
    forward = tf.compat.v1.graph_util.extract_sub_graph(meta.graph_def, list(wanted.values()))
    for node in forward.node:
        node.attr.pop("_output_shapes", None)
        if node.op == "Placeholder" and node.name == "model/Placeholder":
            node.attr["shape"].shape.dim[1].size = -1
    tf.compat.v1.import_graph_def(forward, name="")
    graph = tf.compat.v1.get_default_graph()
    x = graph.get_tensor_by_name("model/Placeholder:0")
    training = graph.get_tensor_by_name("model/Placeholder_2:0")  # is_training (1 = labels)
    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + "/")
    assigns = [tf.compat.v1.assign(graph.get_tensor_by_name(n.name + ":0"),
                                   reader.get_tensor(n.name))
               for n in forward.node if n.op in ("VariableV2", "Variable")]
    out = {k: [] for k in wanted}
    with tf.compat.v1.Session() as sess:
        sess.run(assigns)
        for patch in patches:
            values = sess.run([graph.get_tensor_by_name(v + ":0") for v in wanted.values()],
                              feed_dict={x: patch[None], training: False})
            for k, v in zip(wanted, values):
                out[k].append(np.squeeze(v, axis=0))
    return out


def main() -> None:
    package = Path(list(importlib.util.find_spec("musicnn").submodule_search_locations)[0])
    wave = test_wave()
    mel = log_mel(wave)
    patches = [mel[:PATCH], mel[PATCH:]]
    arrays = {"wave": wave, "log_mel": mel}
    for variant in ("MTT_musicnn", "MSD_musicnn"):
        out = run_model(package / variant, patches)
        tag = variant.split("_")[0].lower()
        frames = [np.squeeze(f, -1) for f in out["features"]]  # [T, 753, 1] -> [T, 753]
        arrays[f"{tag}_features"] = np.concatenate(frames).astype(np.float32)
        arrays[f"{tag}_penultimate"] = np.stack(out["penultimate"]).astype(np.float32)
        arrays[f"{tag}_taggram"] = np.stack(out["taggram"]).astype(np.float32)
    target = Path(__file__).with_name("musicnn_reference.npz")
    np.savez_compressed(target, **arrays)
    print(target, {k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
    main()
