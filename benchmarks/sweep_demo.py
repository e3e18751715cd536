"""Sweep stage-2 recipes of the full demo: which settings make the frozen SmolLM2 listen?

    musilingo demo                                   # once: writes demo_out/{data,cache.zarr}
    python benchmarks/sweep_demo.py demo_out benchmarks/sweep_demo_configs.json \
        --out sweep.jsonl --parallel 2               # CPU: 2 runs at a time, ~2 s/step each
    python benchmarks/sweep_demo.py demo_out configs.json --parallel 6   # a GPU: ~0.2 s/step each

Each config (a JSON list of objects) trains stage 2 from scratch through the real trainer on the
demo's cached features (optionally after `pre_steps` of stage 1 on the captions), then answers
the test questions with the trained adapter and with shuffled audio, and appends one JSON line:
the loss curve (means over 25 steps), attribute accuracy per attribute in both conditions, and
seconds. Keys (defaults in brackets): name, steps [300], lr [1e-2], adapter_init [default],
batch [8], captions [false] (mix captioning-as-instruction into stage 2), pre_steps [0],
pre_lr [lr], seed [0], min_lr_frac [0.1], answers [canonical] ("sentence": the same facts as
full sentences, "The tempo is slow.", written to a sibling data folder), eval_questions [all].
Results of the 2026-11-26 sweep are in benchmarks/README.md (Demo).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SENTENCES = {"instrument": "The instrument is {phrase}.", "tempo": "The tempo is {value}.",
             "key": "The key is {spoken}.", "mode": "The music is in a {value} key.",
             "register": "The melody is in the {value} register.",
             "loudness": "The music is {value}."}


def sentence_answers(data: Path) -> Path:
    """A copy of the demo's data folder whose answers are full sentences (audio linked, not copied)."""
    from musilingo.synth.language import ANSWERS, SPOKEN_KEYS

    out = data.parent / (data.name + "_sentences")
    if (out / "qa.json").is_file():
        return out
    out.mkdir(exist_ok=True)
    for name in ("README.md", "attributes.json", "captions.csv", "manifest.json"):
        (out / name).write_bytes((data / name).read_bytes())
    if not (out / "audio").exists():
        (out / "audio").symlink_to((data / "audio").resolve())
    qa = json.loads((data / "qa.json").read_text())
    for row in qa["QA"]:
        attribute, value = row["attribute"], row["value"]
        if attribute in SENTENCES:
            phrase = ANSWERS["instrument"].get(value, "").rstrip(".")
            row["answer"] = SENTENCES[attribute].format(
                value=value, spoken=SPOKEN_KEYS.get(value, value),
                phrase=phrase[:1].lower() + phrase[1:])
    (out / "qa.json").write_text(json.dumps(qa, indent=1) + "\n")
    return out


def run_one(demo: Path, cfg: dict, out_jsonl: Path) -> None:
    from musilingo.cache import FeatureCache
    from musilingo.demo.evaluation import attribute_accuracy, evaluation_items
    from musilingo.infer.config import GenerationConfig
    from musilingo.infer.items import generate_for_items, shuffled_audio
    from musilingo.models.musilingo import MusiLingo
    from musilingo.train import TrainConfig, run

    data, cache = demo / "data", str(demo / "cache.zarr")
    if cfg.get("answers", "canonical") == "sentence":
        data = sentence_answers(data)
    steps, lr = int(cfg.get("steps", 300)), float(cfg.get("lr", 1e-2))
    runs = demo / "sweep_runs" / cfg["name"]
    qa = {"name": "synth", "annotations": str(data), "split": "train"}
    captions = {"name": "synth", "annotations": str(data / "captions.csv"), "split": "train"}
    common = dict(cache=cache, llm="smollm2", t=325, standardize=True,
                  adapter_init=cfg.get("adapter_init", "default"),
                  batch_size=int(cfg.get("batch", 8)), grad_accum=1, epochs=1,
                  dtype="fp32", deepspeed="zero0", seed=int(cfg.get("seed", 0)),
                  save_every=10**9, num_workers=0, progress=False)

    def schedule(n, peak):
        return dict(max_steps=n, warmup_steps=max(1, n // 20), lr=peak,
                    min_lr=peak * float(cfg.get("min_lr_frac", 0.1)), warmup_lr=peak / 100)

    t0 = time.time()
    init = None
    if int(cfg.get("pre_steps", 0)) > 0:
        pre_lr = float(cfg.get("pre_lr", lr))
        run(TrainConfig(stage="pretrain", datasets=[captions], out=str(runs / "stage1"),
                        **schedule(int(cfg["pre_steps"]), pre_lr), **common), log=lambda *a: None)
        init = str(runs / "stage1")
    sets = [qa] + ([dict(captions, question="Please give a caption to the music.")]
                   if cfg.get("captions") else [])
    run(TrainConfig(stage="instruct", datasets=sets, mixing="proportional", init_adapter=init,
                    out=str(runs / "stage2"), **schedule(steps, lr), **common),
        log=lambda *a: None)
    train_s = time.time() - t0
    losses = [json.loads(line)["loss"] for line in open(runs / "stage2" / "metrics.jsonl")]

    import torch
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = MusiLingo.from_pretrained(runs / "stage2", device=device).eval()
    features = FeatureCache.open(cache)
    questions, _ = evaluation_items(data)
    questions = questions[:int(cfg.get("eval_questions", len(questions)))]
    result = {"config": cfg, "train_seconds": round(train_s, 1),
              "loss_per_25_steps": [round(sum(losses[i:i + 25]) / len(losses[i:i + 25]), 3)
                                    for i in range(0, len(losses), 25)]}
    for condition in ("trained", "shuffled"):
        items = shuffled_audio(questions, seed=0) if condition == "shuffled" else questions
        answers = generate_for_items(model, items, features,
                                     config=GenerationConfig(max_new_tokens=16), batch_size=40)
        acc = attribute_accuracy(questions, answers)
        result[condition] = round(acc["mean"], 3)
        result[condition + "_per_attribute"] = {k: round(v, 3) for k, v in acc["per_attribute"].items()}
    with open(out_jsonl, "a") as f:
        f.write(json.dumps(result) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("demo", type=Path, help="a demo folder (data/ and cache.zarr/ from `musilingo demo`)")
    p.add_argument("configs", type=Path, help="JSON list of configs (see the module docstring)")
    p.add_argument("--out", type=Path, default=Path("sweep_demo.jsonl"))
    p.add_argument("--parallel", type=int, default=1, help="configs trained at the same time")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        return run_one(args.demo, json.loads(args.one), args.out)
    configs = json.loads(args.configs.read_text())
    names = [c["name"] for c in configs]
    if len(set(names)) != len(names) or any(not n for n in names):
        sys.exit("sweep_demo: every config needs a distinct non-empty name")
    logs = args.demo / "sweep_runs" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    pending, running = list(configs), []
    while pending or running:
        while pending and len(running) < args.parallel:
            cfg = pending.pop(0)
            log = open(logs / f"{cfg['name']}.txt", "w")
            cmd = [sys.executable, __file__, str(args.demo), str(args.configs), "--out", str(args.out),
                   "--one", json.dumps(cfg)]
            running.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), cfg, log))
        time.sleep(2)
        for proc, cfg, log in list(running):
            if proc.poll() is not None:
                log.close()
                running.remove((proc, cfg, log))
                print(f"{cfg['name']}: exit {proc.returncode} (log {logs / (cfg['name'] + '.txt')})",
                      flush=True)


if __name__ == "__main__":
    main()
