"""Does a trained run listen, and if not, where does the audio get lost? Four measurements.

    python benchmarks/diagnose_listening.py RUN demo_out/data demo_out/cache.zarr [--json out.json]

1. Linear probes per attribute on the adapter's output tokens (mean over a clip's tokens; the
   LLM's input), trained on the demo's training clips and scored on its test clips, beside the
   same probe on the cached features: does the information reach the LLM at all?
2. The attention mass the LLM puts on the audio tokens from the positions that predict the
   answer (mean over layers and heads, and for the last layer), on test questions, beside what
   uniform attention over the context would give: does the LLM look at the audio?
3. Gradient norms at the adapter (and LoRA, when the run has it) for one batch of test
   questions: does the loss still reach the adapter?
4. The distinct-answer fraction of greedy answers to the test questions: does what it says
   depend on what it hears?
Results in benchmarks/README.md ("A real LLM learns to listen").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def probe(x_train, y_train, x_test, y_test, steps: int = 300) -> float:
    """Test accuracy of a logistic-regression probe (Adam, full batch, standardised inputs)."""
    torch.manual_seed(0)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    a, b = (x_train - mean) / std, (x_test - mean) / std
    classes = sorted(set(y_train) | set(y_test))
    ya = torch.tensor([classes.index(v) for v in y_train])
    yb = torch.tensor([classes.index(v) for v in y_test])
    w = torch.nn.Linear(a.shape[1], len(classes))
    opt = torch.optim.Adam(w.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(w(a), ya).backward()
        opt.step()
    return float((w(b).argmax(1) == yb).float().mean())


def clip_inputs(model, source, clips) -> tuple[torch.Tensor, torch.Tensor]:
    """(adapter outputs, adapter inputs) per clip, each the mean over the clip's tokens."""
    from musilingo.features import join_segments

    outs, ins = [], []
    with torch.no_grad():
        for clip in clips:
            f, c, _ = join_segments(source.segments(clip), model.adapter.factor)
            f, c = torch.as_tensor(f)[None], torch.as_tensor(c)[None]
            x, counts = model.adapter.pooled(f, c)
            tokens, mask = model.adapter(f, c)
            ins.append(x[0][counts[0] > 0].float().mean(0))
            outs.append(tokens[0][mask[0]].float().mean(0))
    return torch.stack(outs), torch.stack(ins)


def probes(model, source, data: Path) -> dict:
    from musilingo.data import read_dataset
    from musilingo.data.synth import load_attributes

    attributes = load_attributes(data)
    split = {r.clip_id: r.split for r in read_dataset("synth", data / "captions.csv", None).records}
    clips = sorted(c for c in attributes if source.has(c))
    out, inp = clip_inputs(model, source, clips)
    train = np.array([split[c] == "train" for c in clips])
    result = {}
    for attribute in attributes[clips[0]]:
        y = np.array([attributes[c][attribute] for c in clips])
        result[attribute] = {
            "adapter_output": probe(out[train], y[train], out[~train], y[~train]),
            "cached_features": probe(inp[train], y[train], inp[~train], y[~train])}
    return result


def batch_of(model, items, source):
    from musilingo.features import join_segments
    from musilingo.models.musilingo import make_batch
    from musilingo.models.prompts import tokenize_example

    examples = [tokenize_example(model.tokenizer, model.template, it.question, it.answer)
                for it in items]
    feats = [join_segments(source.segments(it.clip_id), model.adapter.factor)[:2] for it in items]
    return make_batch(examples, feats, pad_id=model.tokenizer.pad_token_id)


def attention_mass(model, batch) -> dict:
    """Mean attention on the audio tokens from the positions predicting a target token."""
    llm = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
    llm.set_attn_implementation("eager")
    embeds, attn, labels = model.embed(batch)
    audio_at = batch["audio_at"]
    with torch.no_grad():
        out = llm(inputs_embeds=embeds, attention_mask=attn, output_attentions=True)
    predicts = labels[:, 1:] != -100                                    # [B, S-1]
    _, amask = model.adapter(batch["features"], batch["counts"])
    masses, last, uniform = [], [], []
    for b in range(embeds.shape[0]):
        audio = torch.arange(int(audio_at[b]), int(audio_at[b]) + int(amask[b].sum()))
        rows = torch.nonzero(predicts[b]).flatten()                     # query positions
        for layer, a in enumerate(out.attentions):                     # [B, H, S, S]
            m = a[b, :, rows][..., audio].sum(-1).mean().item()
            masses.append(m)
            if layer == len(out.attentions) - 1:
                last.append(m)
        uniform.append(float((len(audio) / (rows + 1).float()).mean()))
    return {"mean_over_layers": float(np.mean(masses)), "last_layer": float(np.mean(last)),
            "uniform_would_give": float(np.mean(uniform))}


def gradient_norms(model, batch) -> dict:
    model.zero_grad()
    for p in model.adapter.parameters():
        p.requires_grad_(True)
    for n, p in model.llm.named_parameters():
        p.requires_grad_("lora_" in n)
    model(batch).backward()
    norms = {f"adapter.{n}": float(p.grad.norm()) for n, p in model.adapter.named_parameters()
             if p.grad is not None}
    lora = [p.grad.norm() for n, p in model.llm.named_parameters()
            if "lora_" in n and p.grad is not None]
    if lora:
        norms["lora (all)"] = float(torch.stack(lora).norm())
    return norms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("data", type=Path)
    ap.add_argument("cache")
    ap.add_argument("--questions", type=int, default=70, help="test questions for 2-4")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    from musilingo.cache import FeatureCache
    from musilingo.data import read_dataset
    from musilingo.data.items import record_items
    from musilingo.features.sources import CacheSource
    from musilingo.infer.config import GenerationConfig
    from musilingo.infer.items import generate_for_items
    from musilingo.runs.adapter_file import load_model
    from musilingo.score.controls import distinct_fraction

    torch.manual_seed(0)
    model = load_model(args.run).eval()
    source = CacheSource(FeatureCache.open(args.cache))
    items = record_items(read_dataset("synth", args.data, None, split="test").records)
    items = items[:: max(1, len(items) // args.questions)][:args.questions]
    result = {"run": args.run, "llm": model.llm_name, "kind": model.config.kind,
              "lora": model.config.lora.r if model.config.lora else None,
              "probes": probes(model, source, args.data)}
    batch = batch_of(model, items[:8], source)
    result["attention_on_audio"] = attention_mass(model, batch)
    result["gradient_norms"] = gradient_norms(model, batch)
    answers = generate_for_items(model, items, source, config=GenerationConfig(max_new_tokens=16),
                                 batch_size=16)
    result["distinct_answers"] = distinct_fraction(items, answers)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
