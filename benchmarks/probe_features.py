"""Linear probes on a demo cache: how much of each attribute do the cached features hold?

    python benchmarks/probe_features.py demo_out/data demo_out/cache.zarr [other.zarr ...]

For each cache: the clip-mean of its features (count-weighted over windows, mean over hidden
states), standardised on the training clips, and one logistic-regression probe per attribute
(Adam, 300 full-batch steps, lr 1e-2, weight decay 1e-3, seed 0) trained on the training split
and scored on the test split of the synthetic set. What an adapter into a frozen LLM could at
best recover linearly; results in benchmarks/README.md ("Demo").
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import torch
import zarr


def clip_means(path: Path) -> tuple[np.ndarray, np.ndarray]:
    g = zarr.open_group(str(path), mode="r")
    feats, counts = g["features"][:].astype(np.float32), g["counts"][:]
    off, data = g["clip_id_offsets"][:], g["clip_id_bytes"][:]
    names = np.array([data[a:b].tobytes().decode() for a, b in zip(off[:-1], off[1:])])
    ids = names[g["row_clip"][:]]
    w = counts[:, None, :, None].astype(np.float32)
    return ((feats * w).sum(2) / w.sum(2)).mean(1), ids


def probe(data: Path, cache: Path) -> dict:
    from musilingo.synth import ATTRIBUTES

    attributes = json.loads((data / "attributes.json").read_text())
    with (data / "captions.csv").open() as f:
        test = {r["ytid"] for r in csv.DictReader(f) if r["is_audioset_eval"] == "True"}
    x, ids = clip_means(cache)
    train = np.array([i not in test for i in ids])
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
    X = torch.tensor((x - mu) / sd, dtype=torch.float32)
    out = {}
    for attribute, values in ATTRIBUTES.items():
        torch.manual_seed(0)
        y = torch.tensor([values.index(attributes[i][attribute]) for i in ids])
        lin = torch.nn.Linear(X.shape[1], len(values))
        opt = torch.optim.Adam(lin.parameters(), 1e-2, weight_decay=1e-3)
        for _ in range(300):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(lin(X[train]), y[train]).backward()
            opt.step()
        out[attribute] = round(float((lin(X[~train]).argmax(1) == y[~train]).float().mean()), 3)
    out["mean"] = round(float(np.mean(list(out.values()))), 3)
    return out


if __name__ == "__main__":
    data = Path(sys.argv[1])
    for cache in sys.argv[2:]:
        print(cache, json.dumps(probe(data, Path(cache))))
