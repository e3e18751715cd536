"""The demo's evaluation: does the trained adapter listen?

Four conditions answer the same test questions and caption the same test clips:
- `untrained`: the adapter as the trainer saved it at step 0 (`max_steps=0`: same seed, same
  initialisation, same fitted normalisation);
- `trained`: the stage-2 adapter;
- `shuffled`: the trained adapter hearing another test clip's audio (a seeded derangement of
  clips, musilingo.infer.items.shuffled_audio);
- `text-only`: the trained model asked with no audio token at all (score/controls.py), what
  its LLM answers from the question alone.

Attribute accuracy (the answer names the right value and no other, `synth.answer_is_correct`)
is the direct measure, for answers and for captions alike (every reference caption names all
seven attributes, so a caption is scored on each: it names the clip's value and no other).
Four-option questions (the set's mcq.csv, laid out and read exactly as `musilingo score
--dataset muchomusic` does) give accuracy against a chance of 0.25 and the answered rate. The
text metrics (musilingo protocol, BERTScore with an offline model) show how little they move
when the audio is wrong, the known weakness docs/REFERENCE.md section 4 describes. A model that listens beats `shuffled` by a wide margin on accuracy.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

CONDITIONS = ("untrained", "trained", "shuffled", "text-only")
TITLES = {"untrained": "untrained", "trained": "trained", "shuffled": "shuffled audio",
          "text-only": "text only"}


def evaluation_items(data: Path):
    """The test split's questions (meta: attribute and value) and captioning items (meta: every
    attribute of the clip), made by data/items.py as training and scoring make theirs."""
    from ..data import read_dataset
    from ..data.items import record_items
    from ..data.synth import load_attributes

    questions = record_items(read_dataset("synth", data, None, split="test").records)
    captions = record_items(read_dataset("synth", data / "captions.csv", None,
                                         split="test").records)
    attributes = load_attributes(data)
    for item in captions:
        item.meta["attributes"] = attributes[item.clip_id]
    return questions, captions


def mcq_items(data: Path):
    """The test split's four-option questions, as `musilingo score --dataset muchomusic
    --shots 0` asks them: the 0-shot layout the demo trains on (MuChoMusic's prompt, options in
    a seeded order; meta: options, correct, their original order, kind)."""
    from ..data.items import TRAINED
    from ..score.run import dataset_items

    return dataset_items("muchomusic", data / "mcq.csv", None, mcq=TRAINED)[0]


def mcq_accuracy(items, replies) -> dict:
    """Accuracy and answered rate by MuChoMusic's reading rule, overall and per kind (the
    breakdown's kinds; its distractor types mean nothing here: the synthetic set's three
    distractors are random other values of the asked attributes)."""
    from ..evaluate.mcq import MCQQuestion, breakdown, read_choice

    questions = [MCQQuestion.from_meta(it.meta) for it in items]
    choices = [read_choice(r, q.options) for q, r in zip(questions, replies)]
    b = breakdown(choices, questions)
    s = b["overall"]
    return {"accuracy": s["accuracy"], "answered_rate": s["answered_rate"],
            "chance": s["chance"],
            "per_kind": {k: v["accuracy"] for k, v in b.get("kind", {"all": s}).items()}}


def heard(items, condition: str, seed: int):
    """The items as a condition asks them: another clip's audio, none, or their own."""
    from ..infer.items import shuffled_audio
    from ..score.controls import TEXT_ONLY

    if condition == "shuffled":
        return shuffled_audio(items, seed=seed)
    if condition == "text-only":
        return [dataclasses.replace(it, audio_clip=TEXT_ONLY) for it in items]
    return items


def _accuracy(judged) -> dict:
    """(attribute, value, text) triples -> per-attribute share where the text names the value
    and no other one, and their mean."""
    from ..synth import answer_is_correct

    right, total = defaultdict(int), defaultdict(int)
    for attribute, value, text in judged:
        total[attribute] += 1
        right[attribute] += bool(answer_is_correct(text, attribute, value))
    per = {a: right[a] / total[a] for a in sorted(total)}
    return {"per_attribute": per, "mean": sum(per.values()) / max(len(per), 1)}


def attribute_accuracy(items, answers) -> dict:
    """Per attribute: the share of answers that name the asked value and no other one."""
    return _accuracy((i.meta["attribute"], i.meta["value"], a) for i, a in zip(items, answers))


def caption_accuracy(items, captions) -> dict:
    """Per attribute: the share of captions that name the clip's value and no other one."""
    return _accuracy((attribute, value, text) for item, text in zip(items, captions)
                     for attribute, value in item.meta["attributes"].items())


def _scores(preds, refs, bertscore_model):
    from ..evaluate.protocols import score_texts

    report = score_texts(preds, refs, "musilingo", bertscore_model=bertscore_model)
    return {r.name: r.value for r in report.results} | {
        "_missing": report.missing, "_bertscore_model": report.bertscore_model}


def evaluate_demo(cfg, data: Path, cache: Path, run_dir: Path, untrained_dir: Path | None,
                  log=print, conditions: tuple[str, ...] = CONDITIONS) -> dict:
    from ..cache import FeatureCache
    from ..synth import ATTRIBUTES, chance
    from ..infer.config import GenerationConfig
    from ..infer.items import generate_for_items
    from ..features.sources import CacheSource, OverlaySource
    from ..runs.adapter_file import load_adapter, load_model
    from ..score.controls import text_only_features

    model = load_model(run_dir).eval()
    cached = CacheSource(FeatureCache.open(cache))
    features = OverlaySource(cached, text_only_features(cached.layers, cached.dim))
    questions, captions = evaluation_items(data)
    choices = mcq_items(data)
    answer_cfg = GenerationConfig(max_new_tokens=cfg.answer_tokens)
    caption_cfg = GenerationConfig(max_new_tokens=cfg.caption_tokens)
    trained_state = {k: v.detach().clone() for k, v in model.adapter.state_dict().items()}
    untrained_state = (load_adapter(untrained_dir)[1]   # the trainer's step-0 adapter
                       if "untrained" in conditions else None)

    out = {"chance": {a: chance(a) for a in ATTRIBUTES}, "n_questions": len(questions),
           "n_captions": len(captions), "n_mcq": len(choices), "conditions": {}, "samples": []}
    answers_of = {}
    for condition in conditions:
        model.adapter.load_state_dict(untrained_state if condition == "untrained" else trained_state)
        q_items, c_items, m_items = (heard(items, condition, cfg.seed)
                                     for items in (questions, captions, choices))
        log(f"demo: generating {len(q_items)} answers, {len(c_items)} captions and "
            f"{len(m_items)} multiple-choice replies ({condition})")
        answers = generate_for_items(model, q_items, features, config=answer_cfg,
                                     batch_size=cfg.eval_batch_size)
        caps = generate_for_items(model, c_items, features, config=caption_cfg,
                                  batch_size=cfg.eval_batch_size)
        replies = generate_for_items(model, m_items, features, config=answer_cfg,
                                     batch_size=cfg.eval_batch_size)
        answers_of[condition] = (answers, caps, replies)
        out["conditions"][condition] = {
            "accuracy": attribute_accuracy(questions, answers),
            "caption_accuracy": caption_accuracy(captions, caps),
            "mcq": mcq_accuracy(choices, replies),
            "qa_metrics": _scores(answers, [i.answer for i in questions], cfg.bertscore_model),
            "caption_metrics": _scores(caps, [i.answer for i in captions], cfg.bertscore_model),
        }
    model.adapter.load_state_dict(trained_state)
    # A few examples of each kind, for the report: one question per attribute, two captions.
    shown = {}
    for i, item in enumerate(questions):
        if item.meta["attribute"] not in shown:
            shown[item.meta["attribute"]] = i
    for i in shown.values():
        out["samples"].append({"clip": questions[i].clip_id, "question": questions[i].question,
                               "reference": questions[i].answer,
                               **{c: answers_of[c][0][i] for c in conditions}})
    for j in range(min(2, len(captions))):
        out["samples"].append({"clip": captions[j].clip_id, "question": captions[j].question,
                               "reference": captions[j].answer,
                               **{c: answers_of[c][1][j] for c in conditions}})
    for j in range(min(2, len(choices))):
        item = choices[j]
        out["samples"].append({"clip": item.clip_id, "question": item.question,
                               "reference": item.answer,
                               **{c: answers_of[c][2][j] for c in conditions}})
    trained = out["conditions"]["trained"]["accuracy"]["mean"]
    shuffled = out["conditions"]["shuffled"]["accuracy"]["mean"]
    out["listening_margin"] = trained - shuffled
    from ..score.controls import distinct_fraction

    out["distinct_answers"] = distinct_fraction(questions, answers_of["trained"][0])
    out["mean_chance"] = sum(out["chance"].values()) / len(out["chance"])
    return out
