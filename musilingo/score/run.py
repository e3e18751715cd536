"""`musilingo score --run RUN --dataset NAME`: generate on a test split, score, and check grounding.

    musilingo score --run runs/instruct --dataset musiccaps \\
        --annotations musiccaps-public.csv --audio-root wav/ --out eval/musiccaps \\
        --control shuffled-audio --bertscore-model minilm --max-items 200

1. Items: the test split of the data set (`read_dataset`): MusicCaps and Song Describer are
   captions (question "Please give a caption to the music.", docs/REFERENCE.md section 2; none for a
   stage-1 adapter), MusicInstruct short/long and MusicQA are question/answer pairs, MuChoMusic
   is four-option questions (MuChoMusic's prompt, options in a seeded order: evaluate/mcq.py). An item's id
   is `<clip id>:<k>` (the k-th annotation of that clip in file order), stable across runs.
2. Features: from `--cache` (clips absent from the cache are counted and skipped) or the encoder
   on the audio files (absent files are counted and skipped). A clip is heard whole, cut to the
   segments that fit the LLM's context.
3. Generation, batched, appended to `<out>/predictions.jsonl` as it goes, with progress on stderr.
   A rerun skips items already written (resumable; `<out>/generation.json` records the run,
   adapter hash and decoding settings, and a rerun with different ones is refused). Items that
   share a clip and a question (Song Describer's several captions of one track) are generated once.
4. Scores: `musilingo.evaluate.scoring.score_and_report` on (prediction, reference) pairs, or for
   multiple choice accuracy and the answered rate (`evaluate.mcq.mcq_report`), written
   to `<out>/scores.json|md`. The predictions file is also a valid `musilingo score
   --predictions` input.
5. `--control shuffled-audio,silence,noise` (any of them): the same items again, each hearing
   another clip (a seeded derangement of clips, see items.py), the same silent clip, or the same
   white-noise clip, into `<out>/<control>/`; `<out>/control.md|json` give every metric real,
   under each control, and the delta (real - control). A model that listens loses
   score when it hears the wrong audio; a delta near 0 means the text scores come from the
   language prior.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..data import TEST_SETS
from ..errors import UserError
from ..evaluate.mcq import LETTERS, mcq_prompt, shuffled_options
from ..models.prompts import CAPTION_QUESTION
from ..infer.config import CONTROLS
from ..infer.generation import GenerationConfig
from ..features.sources import OverlaySource
from .controls import (CONTROL_TITLES, MIN_DISTINCT, control_table, distinct_fraction,
                       probe_features)
from ..infer.items import Item, derangement, generate_for_items, shuffled_audio

DATASETS = TEST_SETS  # score-mode name -> (reader name, kind)
PREDICTIONS = "predictions.jsonl"
SETTINGS = "generation.json"


def dataset_items(dataset: str, annotations, audio_root=None, *, has_question: bool = True,
                  available: Callable[[object], bool] | None = None, options_seed: int = 0,
                  log: Callable[[str], None] = lambda m: None) -> tuple[list[Item], dict]:
    """(items of the test split, {clip_id: audio path}).

    `available(record)` decides which records can be heard (default: the audio file exists);
    the others are counted in the log line. A multiple-choice item's question is MuChoMusic's
    prompt with the options in a seeded order (`options_seed`, recorded); its meta holds the
    options, the index of the right one and the record's categories (genre, kind, ...)."""
    from ..data import read_dataset

    if dataset not in DATASETS:
        raise UserError(f"--dataset {dataset!r}: use one of {', '.join(DATASETS)}")
    reader, kind = DATASETS[dataset]
    if kind in ("qa", "mcq") and not has_question:
        raise UserError(f"--dataset {dataset} asks questions, but the run's adapter was trained "
                        "for captioning only (stage-1 template): score it on musiccaps or "
                        "songdescriber, or use a stage-2 run")
    if annotations is None:
        raise UserError(f"--dataset {dataset} needs --annotations (its annotation file)")
    # MusicQA's file decides its split (the Eval file is the test set), so read it unfiltered.
    result = read_dataset(reader, annotations, audio_root,
                          split=None if reader == "musicqa" else "test")
    records = [r for r in result.records + result.missing if r.split == "test"]
    if not records:
        hint = (" (MusicQA's test set is its Eval file, e.g. EvalMusicQA.json)"
                if reader == "musicqa" else "")
        raise UserError(f"{annotations}: no test-split records{hint}")
    present = {id(r) for r in result.records}
    usable = [r for r in records if (available(r) if available else id(r) in present)]
    usable_ids = {id(r) for r in usable}
    skipped = len(records) - len(usable)
    log(f"{dataset}: {len(usable):,} test items over {len({r.clip_id for r in usable}):,} clips"
        + (f"; {skipped:,} skipped (no audio or no cached features)" if skipped else ""))
    if not usable:
        raise UserError(f"{dataset}: none of the {len(records):,} test items can be heard: check "
                        "--audio-root or --cache")
    seen: dict[str, int] = {}
    items = []
    for r in records:
        k = seen.get(r.clip_id, 0)
        seen[r.clip_id] = k + 1
        if id(r) not in usable_ids:
            continue
        meta = {"source": r.source}
        if kind == "caption":
            question, reference = (CAPTION_QUESTION if has_question else None), r.texts["caption"]
        elif kind == "mcq":
            options, right = shuffled_options(r.texts["answer"], r.meta["distractors"],
                                              options_seed, key=f"{r.clip_id}:{k}")
            question = mcq_prompt(r.texts["question"], options)
            reference = f"({LETTERS[right]}) {options[right]}"
            meta.update({k: v for k, v in r.meta.items() if k != "distractors"},
                        options=options, correct=right)
        else:
            question, reference = r.texts["question"], r.texts["answer"]
        items.append(Item(f"{r.clip_id}:{k}", r.clip_id, question, reference, meta=meta))
    return items, {r.clip_id: str(r.audio_path) for r in usable}


class PredictionLog:
    """The resumable JSONL of one pass: one object per item, appended and flushed per batch."""

    FIELDS = ("id", "clip_id", "audio_clip", "question", "reference", "prediction")

    def __init__(self, path: Path):
        self.path = path
        self.rows: dict[str, dict] = {}
        if path.is_file():
            self._read()

    def _read(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):  # a run killed mid-line: drop the partial line
            data = data[: data.rfind(b"\n") + 1]
            self.path.write_bytes(data)
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{self.path}:{number}: not valid JSON ({exc.msg}); delete that "
                                "line (it will be generated again) or the file") from None
            absent = [k for k in ("id", "prediction") if not isinstance(row, dict) or k not in row]
            if absent:
                raise UserError(f"{self.path}:{number}: field {absent[0]!r} is missing; delete "
                                "that line (it will be generated again) or the file")
            self.rows[str(row["id"])] = row

    def append(self, items: list[Item], answers: list[str]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            for it, answer in zip(items, answers):
                row = {"id": it.id, "clip_id": it.clip_id, "audio_clip": it.heard,
                       "question": it.question, "reference": it.answer, "prediction": answer}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                self.rows[it.id] = row
            f.flush()
            os.fsync(f.fileno())


def _settings(run: Path, model, dataset: str, annotations, generation: GenerationConfig,
              features: str, control_seed: int, options_seed: int) -> dict:
    digest = hashlib.sha256((run / "adapter.safetensors").read_bytes()).hexdigest()[:16]
    return {"run": str(run.absolute()), "adapter_sha256": digest, "llm": model.llm_name,
            "dataset": dataset, "annotations": str(Path(str(annotations)).expanduser().absolute()),
            "features": features,
            "generation": generation.to_dict(), "control_seed": control_seed,
            "options_seed": options_seed}


def _check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS
    if path.is_file():
        old = json.loads(path.read_text())
        keys = ("adapter_sha256", "llm", "dataset", "annotations", "generation", "control_seed",
                "options_seed")
        diff = [k for k in keys if old.get(k) != settings.get(k)]
        if diff:
            raise UserError(f"{out} holds predictions made with other settings ({', '.join(diff)}"
                            f" differ, see {path}): use another --out, or delete the folder")
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2) + "\n")


def generate_pass(model, items: list[Item], source, log_file: PredictionLog, *,
                  generation: GenerationConfig, batch_size: int, log) -> list[str]:
    """Predictions for `items` in order, generating only those not yet in `log_file`.

    Items with the same heard clip and question are generated once and written for all."""
    todo = [it for it in items if it.id not in log_file.rows]
    groups: dict[tuple, list[Item]] = {}
    for it in todo:
        groups.setdefault((it.heard, it.question), []).append(it)
    first = [members[0] for members in groups.values()]
    if todo:
        log(f"generating {len(first):,} answers for {len(todo):,} items ({len(items) - len(todo):,}"
            f" already in {log_file.path})")

    def write(part: list[Item], answers: list[str]) -> None:
        for it, answer in zip(part, answers):
            members = groups[(it.heard, it.question)]
            log_file.append(members, [answer] * len(members))

    generate_for_items(model, first, source, config=generation, batch_size=batch_size,
                       on_batch=write, log=log)
    return [log_file.rows[it.id]["prediction"] for it in items]


def first_items(items: list[Item], max_items: int | None, *, by_clip: bool, log) -> list[Item]:
    """The first `max_items` items, or (`by_clip`, for the shuffled-audio control, which permutes
    clips) every item of the first `max_items` clips; the log says which was counted."""
    if not max_items:
        return items
    if not by_clip:
        log(f"--max-items {max_items}: the first {max_items} items")
        return items[:max_items]
    keep = set(list(dict.fromkeys(it.clip_id for it in items))[:max_items])
    chosen = [it for it in items if it.clip_id in keep]
    log(f"--max-items {max_items}: the first {len(keep)} clips ({len(chosen)} items; with "
        "--control, --max-items counts clips)")
    return chosen


def warn_empty(predictions: list[str], what: str, log) -> int:
    empty = sum(1 for p in predictions if not p.strip())
    if empty:
        log(f"warning: {empty:,} of {len(predictions):,} generations for {what} are empty or "
            "whitespace only (an under-trained adapter?); they score 0")
    return empty


def score_generated(*, run, dataset: str, annotations, out, audio_root=None, cache=None,
                    control: str | None = None, control_seed: int = 0, max_items: int | None = None,
                    protocol: str = "both", bertscore_model: str = "roberta-large",
                    bertscore_layer: int | None = None, metrics: str | None = None,
                    percent: bool = False, llm: str | None = None, encoder: str | None = None,
                    device: str = "cpu", dtype: str = "fp32", batch_size: int = 8,
                    segment_seconds: float = 30.0, generation: GenerationConfig | None = None,
                    trust_remote_code: bool = False, options_seed: int = 0,
                    log: Callable[[str], None] = print) -> dict:
    """Generate on the test split, score, and (with `control`) score the shuffled-audio pass.

    Returns {"real": score_and_report result, "shuffled": ... or None, "control": rows,
    "markdown": everything printed}."""
    from ..evaluate.mcq import mcq_report
    from ..evaluate.scoring import score_and_report
    from ..runs.adapter_file import run_folder
    from ..infer.predictor import Predictor
    from ..runs.card import record_evaluation

    controls = [c for c in (control or "").split(",") if c]
    wrong = [c for c in controls if c not in CONTROLS]
    if wrong:
        raise UserError(f"--control {wrong[0]!r}: use one of {', '.join(CONTROLS)} (a comma list)")
    if out is None:
        raise UserError("scoring a run needs --out FOLDER (predictions are saved there, and a "
                        "rerun resumes from them)")
    if max_items is not None and max_items < 1:
        raise UserError("--max-items must be at least 1")
    out, folder = Path(out), run_folder(run)
    generation = (generation or GenerationConfig()).validate()
    p = Predictor.load(folder, llm=llm, cache=cache, encoder=encoder, device=device, dtype=dtype,
                       segment_seconds=segment_seconds, trust_remote_code=trust_remote_code,
                       generation=generation, batch_size=batch_size, log=log)
    if cache is not None:
        items, _ = dataset_items(dataset, annotations, audio_root, log=log,
                                 has_question=p.model.template.has_question,
                                 available=lambda r: p.source.has(r.clip_id),
                                 options_seed=options_seed)
        source = p.source
    else:
        items, paths = dataset_items(dataset, annotations, audio_root, log=log,
                                     has_question=p.model.template.has_question,
                                     options_seed=options_seed)
        source = p.source.with_paths(paths)
    shuffling = "shuffled-audio" in controls
    items = first_items(items, max_items, by_clip=shuffling, log=log)
    if shuffling:  # the control's precondition, checked before anything is generated
        derangement(len({it.clip_id for it in items}), control_seed)
    _check_settings(out, _settings(folder, p.model, dataset, annotations, generation,
                                   "cache" if cache is not None else "audio", control_seed,
                                   options_seed))
    preds = generate_pass(p.model, items, source, PredictionLog(out / PREDICTIONS),
                          generation=generation, batch_size=batch_size, log=log)
    warn_empty(preds, dataset, log)
    refs = [it.answer for it in items]
    if DATASETS[dataset][1] == "mcq":  # accuracy and answered rate, not text overlap
        options = [it.meta["options"] for it in items]
        correct = [it.meta["correct"] for it in items]

        def scorer(predictions, out_dir, source):
            return mcq_report(predictions, options, correct, out_dir=out_dir, source=source)
    else:
        def scorer(predictions, out_dir, source):
            return score_and_report(predictions, refs, out_dir=out_dir, source=source,
                                    protocol=protocol, bertscore_model=bertscore_model,
                                    metrics=metrics, bertscore_layer=bertscore_layer,
                                    percent=percent)
    real = scorer(preds, out, f"{folder} on {dataset}")
    distinct = distinct_fraction(items, preds)
    listens = (f"\n- distinct generations: {distinct:.3f} of the (question, clip) prompts get "
               "their own text (1.0: every clip answered differently)")
    if distinct < MIN_DISTINCT:
        warning = (f"warning: only {distinct:.1%} of the generations differ between clips: the "
                   "model's output barely depends on its audio")
        log(warning)
        listens += f"\n- {warning}"
    real["markdown"] += listens + "\n"
    result = {"real": real, "shuffled": None, "control": [], "distinct": distinct,
              "markdown": real["markdown"]}
    tables = []
    for name in controls:
        if name == "shuffled-audio":
            heard, heard_source = shuffled_audio(items, seed=control_seed), source
        else:
            probe = probe_features(p, folder, name, out, control_seed, log)
            heard = [replace(it, audio_clip=next(iter(probe))) for it in items]
            heard_source = OverlaySource(source, probe)
        log_file = PredictionLog(out / f"predictions.{name}.jsonl")
        c_preds = generate_pass(p.model, heard, heard_source, log_file, generation=generation,
                                batch_size=batch_size, log=log)
        warn_empty(c_preds, f"{dataset} ({CONTROL_TITLES[name][0]})", log)
        scored = scorer(c_preds, out / name, f"{folder} on {dataset}, {CONTROL_TITLES[name][0]}")
        markdown, rows = control_table(real, scored, name)
        tables.append(markdown)
        result["control"] += rows
        result["shuffled" if name == "shuffled-audio" else name] = scored
    if controls:
        markdown = "\n".join(tables)
        (out / "control.md").write_text(markdown, encoding="utf-8")
        (out / "control.json").write_text(json.dumps(result["control"], indent=2) + "\n",
                                          encoding="utf-8")
        result["markdown"] = real["markdown"] + "\n" + markdown
    record_evaluation(folder, {
        "dataset": dataset, "kind": "generated test split", "source": str(out),
        "items": len(items), "decoding": generation.decoding,
        "protocols": {r["protocol"]: r["values"] for r in real["reports"]},
        "bertscore_model": bertscore_model, "control": result["control"] or None,
        "distinct_generations": round(distinct, 4),
        **({"options_seed": options_seed} if DATASETS[dataset][1] == "mcq" else {})})
    return result
