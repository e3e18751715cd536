"""Train one demo recipe variant on an existing demo cache and score it (answers and captions).

    musilingo demo --out demo_out                      # once: demo_out/{data,cache.zarr}
    musilingo extract --dataset synth --annotations demo_out/data/captions.csv \
        --encoder musicnn-mtt --stride 25 --segment-seconds 10 --out mtt25.zarr  # any t | 25
    python benchmarks/demo_variant.py name=V3 data=demo_out/data cache=mtt25.zarr \
        llm=tiny-lm p2=2000 instruct_lr=0.01 batch_size=16 t=325 [p1=300 pretrain_lr=0.01]

key=value arguments: `name`, `data` (the synth folder), `cache`, `p1` / `p2` (stage-1 / stage-2
steps; stage 2 starts from stage 1 when p1 > 0), any DemoConfig field (llm, t, batch_size,
pretrain_lr, instruct_lr, adapter_init, seed) and any TrainConfig field (precision, ...). The
stages are the demo's own (`demo.recipe._train_config`: its YAML recipes, the real trainer);
scoring is the demo's attribute accuracy on the test split for the trained adapter, for the same
adapter hearing shuffled audio, and the caption attribute accuracy. One JSON line is printed and
appended to `--jsonl` (default demo_variants.jsonl). Results: benchmarks/README.md, "Demo".
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str]) -> dict:
    from musilingo.cache import FeatureCache
    from musilingo.demo.evaluation import attribute_accuracy, caption_accuracy, evaluation_items
    from musilingo.demo.recipe import DemoConfig, _train_config
    from musilingo.features.sources import CacheSource
    from musilingo.infer.config import GenerationConfig
    from musilingo.infer.items import generate_for_items, shuffled_audio
    from musilingo.models.musilingo import MusiLingo
    from musilingo.train import run

    args = dict(a.split("=", 1) for a in argv)
    name, data, cache = args.pop("name"), Path(args.pop("data")), Path(args.pop("cache"))
    jsonl = Path(args.pop("jsonl", "demo_variants.jsonl"))
    p1, p2 = int(args.pop("p1", 0)), int(args.pop("p2", 200))
    demo_fields = {f.name for f in dataclasses.fields(DemoConfig)}

    def value(k, v):
        return float(v) if k.endswith("lr") else int(v) if v.isdigit() else v

    over = {k: value(k, v) for k, v in args.items()}
    dcfg = DemoConfig(**{k: v for k, v in over.items() if k in demo_fields}, progress=False)
    train_over = {k: v for k, v in over.items() if k not in demo_fields}
    out = Path("demo_variants") / name
    t0 = time.time()
    init = None
    for stage, steps, folder in (("pretrain", p1, out / "p1"), ("instruct", p2, out / "p2")):
        if steps <= 0:
            continue
        cfg = _train_config(dcfg, stage, data, cache, folder, init, steps)
        for k, v in train_over.items():
            setattr(cfg, k, v)
        result = run(cfg, log=lambda *_: None)
        init = folder
    train_s = time.time() - t0
    model = MusiLingo.from_pretrained(out / "p2").eval()
    features = CacheSource(FeatureCache.open(cache))
    questions, captions = evaluation_items(data)
    answer_cfg = GenerationConfig(max_new_tokens=dcfg.answer_tokens)
    t1 = time.time()
    answers = generate_for_items(model, questions, features, config=answer_cfg, batch_size=40)
    shuffled = generate_for_items(model, shuffled_audio(questions, seed=dcfg.seed), features,
                                  config=answer_cfg, batch_size=40)
    caps = generate_for_items(model, captions, features,
                              config=GenerationConfig(max_new_tokens=dcfg.caption_tokens),
                              batch_size=40)
    acc, sacc = attribute_accuracy(questions, answers), attribute_accuracy(questions, shuffled)
    cacc = caption_accuracy(captions, caps)
    row = {"name": name, "over": over, "p1": p1, "p2": p2, "loss": result.final_loss,
           "train_s": round(train_s), "eval_s": round(time.time() - t1),
           "acc": round(acc["mean"], 3), "shuffled": round(sacc["mean"], 3),
           "caption_acc": round(cacc["mean"], 3),
           "per": {k: round(v, 2) for k, v in acc["per_attribute"].items()},
           "caption_per": {k: round(v, 2) for k, v in cacc["per_attribute"].items()},
           "caption0": caps[0], "reference0": captions[0].answer}
    print(json.dumps(row))
    with jsonl.open("a") as f:
        f.write(json.dumps(row) + "\n")
    return row


if __name__ == "__main__":
    main(sys.argv[1:])
