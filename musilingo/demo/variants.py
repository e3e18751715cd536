"""`musilingo demo --variants linear,mlp,resampler,lora,smollm2-chat-lora`: several recipes, ONE cache.

The demo's music is extracted once (the cache does not depend on the LLM or the adapter); each
variant then trains its own stage 2 (Q&A with captioning and four-option questions mixed in)
from that cache and is scored like the main demo: attribute accuracy of answers and of
captions, and four-option accuracy, each trained vs the same adapter hearing shuffled audio vs
chance, and the time each variant trained. The table goes to report/variants.md and
report/variants.json, and each variant's run folder says which variant
it is (adapter_config.json, config.yaml), so `musilingo compare demo_out/runs/variant-*` works.

Every adapter kind of the registry (models/adapter_config.py) is a variant of its own name:

| variant | LLM | what changes from the paper's recipe |
|---|---|---|
| linear | tiny-lm | nothing: one Linear, the ###Human/###Assistant layout |
| mlp | tiny-lm | a two-layer GELU MLP adapter |
| resampler | tiny-lm | a learned query attends over each token's 5 cache sub-windows |
| lora | tiny-lm | LoRA rank 8 on q_proj, v_proj with the Linear adapter |
| smollm2-chat-lora | SmolLM2-135M | its own chat template (empty system turn), LoRA rank 16 on q/k/v/o, equal mixing, bf16, 1200 steps |
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from ..errors import UserError

# name -> (TrainConfig overrides, demo overrides): the variants that are not an adapter kind.
# Every kind of the adapter registry (models/adapter_config.py) is a variant of its own name.
OTHER_VARIANTS: dict[str, tuple[dict, dict]] = {
    "lora": ({"lora_rank": 8, "lora_alpha": 16.0, "lora_targets": "q_proj,v_proj"}, {}),
    # `demo --config smollm2`'s stage 2 (configs/demo/smollm2.yaml), without its stage 1.
    "smollm2-chat-lora": ({"prompt": "chat", "system_prompt": "none", "lora_rank": 16,
                           "lora_alpha": 16.0, "lora_targets": "q_proj,k_proj,v_proj,o_proj",
                           "dtype": "bf16", "mixing": "equal"},
                          {"llm": "smollm2", "instruct_steps": 1200, "batch_size": 8,
                           "instruct_lr": 3e-3}),
}


def variants() -> dict[str, tuple[dict, dict]]:
    """Every variant: one per registered adapter kind, then the others."""
    from ..models.adapter_config import ADAPTERS

    return {**{kind: ({"adapter": kind}, {}) for kind in ADAPTERS}, **OTHER_VARIANTS}


CONTROLLED = ("trained", "shuffled", "text-only")  # the conditions each variant is scored in


def parse_variants(text: str) -> list[str]:
    """The named variants, each once, in the order given; none at all is refused before the
    pipeline starts (a 10-minute run that could only end in an error)."""
    names = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    known = variants()
    if not names:
        raise UserError(f"variants={text!r} names no variant; use some of {', '.join(known)}, "
                        "comma-separated")
    unknown = [v for v in names if v not in known]
    if unknown:
        raise UserError(f"variants={text!r}: {unknown[0]!r} is not a demo variant; use some of "
                        f"{', '.join(known)}")
    return names


def run_variants(cfg, names: list[str], data: Path, cache: Path, runs: Path, log,
                 train_config) -> dict:
    """Train and score each variant from the one cache; returns the table's numbers.
    `train_config(cfg, stage, data, cache, run_dir, init_adapter, steps)` is the demo's recipe
    (demo/recipe.py), which each variant then changes."""
    from ..train import run
    from .evaluation import evaluate_demo

    rows, table = {}, variants()
    for name in names:
        train_over, demo_over = table[name]
        vcfg = dataclasses.replace(cfg, **demo_over)
        run_dir = runs / f"variant-{name}"
        done = run_dir / "demo_done.json"
        t = time.time()
        if done.is_file() and json.loads(done.read_text()).get("steps") == vcfg.instruct_steps:
            log(f"demo: variant {name} already trained in {run_dir}; reusing it")
            seconds = json.loads(done.read_text()).get("seconds")
        else:
            log(f"demo: variant {name}: stage 2, {vcfg.instruct_steps} steps ({vcfg.llm})")
            tcfg = train_config(vcfg, "instruct", data, cache, run_dir, None,
                                vcfg.instruct_steps)
            tcfg = dataclasses.replace(tcfg, **train_over,
                                       resume=(run_dir / "config.yaml").is_file())
            result = run(tcfg.validate(), log=log)
            seconds = time.time() - t
            done.write_text(json.dumps({"steps": vcfg.instruct_steps, "seconds": seconds,
                                        "final_loss": result.final_loss}))
        t = time.time()
        metrics = evaluate_demo(vcfg, data, cache, run_dir, None, log=log,
                                conditions=CONTROLLED)
        cond = metrics["conditions"]
        rows[name] = {
            "llm": vcfg.llm, "steps": vcfg.instruct_steps, "train_seconds": seconds,
            "evaluate_seconds": time.time() - t, **train_over,
            "answers": {c: cond[c]["accuracy"]["mean"] for c in ("trained", "shuffled")},
            "captions": {c: cond[c]["caption_accuracy"]["mean"] for c in ("trained", "shuffled")},
            "mcq": {c: cond[c]["mcq"]["accuracy"] for c in CONTROLLED},
            "mcq_answered": cond["trained"]["mcq"]["answered_rate"],
            "mcq_chance": cond["trained"]["mcq"]["chance"],
            "chance": metrics["mean_chance"], "distinct_answers": metrics["distinct_answers"]}
    return rows


def variants_markdown(rows: dict, extract_seconds: float) -> str:
    first = next(iter(rows.values()))  # chance is the same for every variant
    lines = [f"# One cache, {len(rows)} recipes", "",
             f"Extraction ran once ({extract_seconds:.0f} s); each variant trained its stage 2 "
             "from that cache. Attribute accuracy (mean over the 7 attributes; chance "
             f"{first['chance']:.3f}) and four-option accuracy (MCQ, chance "
             f"{first['mcq_chance']:.2f}; MuChoMusic's reading rule), "
             "the trained adapter vs the same adapter hearing another clip's audio.", "",
             "| variant | LLM | answers trained | answers shuffled | captions trained | "
             "captions shuffled | MCQ trained | MCQ shuffled | MCQ text only | MCQ answered | "
             "distinct answers | train s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['llm']} | {r['answers']['trained']:.3f} | "
                     f"{r['answers']['shuffled']:.3f} | {r['captions']['trained']:.3f} | "
                     f"{r['captions']['shuffled']:.3f} | {r['mcq']['trained']:.3f} | "
                     f"{r['mcq']['shuffled']:.3f} | {r['mcq']['text-only']:.3f} | "
                     f"{r['mcq_answered']:.3f} | "
                     f"{r['distinct_answers']:.3f} | "
                     f"{r['train_seconds']:.0f} |")
    return "\n".join(lines) + "\n"
