"""`musilingo score --run RUN --dataset NAME`: generate on a test split, score, and check grounding.

    musilingo score --run runs/instruct --dataset musiccaps \\
        --annotations musiccaps-public.csv --audio-root wav/ --out eval/musiccaps \\
        --control shuffled-audio --bertscore-model minilm --max-items 200

    score_run(cfg)         # cfg: a validated ScoreConfig; ScoreRun has the steps below

1. Items: the test split of the data set (`read_dataset`), made into items by data/items.py as
   training makes its own: MusicCaps and Song Describer are captions (question "Please give a
   caption to the music.", docs/REFERENCE.md section 2; none for a stage-1 adapter),
   MusicInstruct short/long and MusicQA are question/answer pairs, MuChoMusic is four-option
   questions (MuChoMusic's prompt, options in a seeded order). An item's id is `<clip id>:<k>`
   (the k-th annotation of that clip in file order), stable across runs.
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
6. Record: the scores and controls go into the run folder's evaluations.json (runs/card.py).
5. `--control shuffled-audio,silence,noise,text-only` (any of them): the same items again, each
   hearing another clip (a seeded derangement of clips, see items.py), the same silent clip, the
   same white-noise clip, or no audio token at all, into `<out>/<control>/`; `<out>/control.md|json` give every metric real,
   under each control, and the delta (real - control). A model that listens loses
   score when it hears the wrong audio; a delta near 0 means the text scores come from the
   language prior.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from ..data import TEST_SETS
from ..data.items import CAPTION_QUESTION, MCQLayout, lettered, record_items, rul_items
from ..errors import UserError
from ..evaluate.scoring import MetricsConfig
from ..features.sources import OverlaySource
from ..files import atomic_write
from ..infer.config import GenerationConfig, part
from ..infer.items import Item, derangement, generate_for_items, shuffled_audio
from .controls import (CONTROL_TITLES, MIN_DISTINCT, control_table, distinct_fraction,
                       probe_features, text_only_features)

DATASETS = TEST_SETS  # score-mode name -> (reader name, kind)
PREDICTIONS = "predictions.jsonl"
SETTINGS = "generation.json"


def dataset_items(dataset: str, annotations, audio_root=None, *, has_question: bool = True,
                  available: Callable[[object], bool] | None = None,
                  mcq: MCQLayout = MCQLayout(), rul_protocol: str = "leave-one-out",
                  log: Callable[[str], None] = lambda m: None) -> tuple[list[Item], dict]:
    """(items of the test split, {clip_id: audio path}), made by data/items.py as training
    makes its own.

    `available(record)` decides which records can be heard (default: the audio file exists);
    the others are counted in the log line. A multiple-choice item's question is MuChoMusic's
    prompt laid out as `mcq` says (default: the published 1-shot layout, all distractors; the
    options in a seeded order, recorded); its reference is the lettered right option, and its
    meta holds the options, the index of the right one, their original order and the record's
    categories (genre, knowledge, reasoning, kind)."""
    from ..data import read_dataset

    if dataset not in DATASETS:
        raise UserError(f"--dataset {dataset!r}: use one of {', '.join(DATASETS)}")
    reader, kind = DATASETS[dataset]
    if kind in ("qa", "mcq", "rul") and not has_question:
        raise UserError(f"--dataset {dataset} asks questions, but the run's adapter was trained "
                        "for captioning only (stage-1 template): score it on musiccaps or "
                        "songdescriber, or use a stage-2 run")
    if annotations is None:
        raise UserError(f"--dataset {dataset} needs --annotations (its annotation file)")
    # MusicQA's file decides its split (the Eval file is the test set), so read it unfiltered.
    result = read_dataset(reader, annotations, audio_root,
                          split=None if reader == "musicqa" else "test")
    records = [r for r in result.records + result.missing if r.split == "test"]
    outside = [r for r, _ in result.refused if r.split == "test"]
    if not records and outside:
        raise UserError(f"{dataset}: all {len(outside):,} test items name audio outside the "
                        f"audio root {result.root} (e.g. {outside[0].source}: "
                        f"{outside[0].audio_path}); put the audio under --audio-root")
    if not records:
        hint = (" (MusicQA's test set is its Eval file, e.g. EvalMusicQA.json)"
                if reader == "musicqa" else "")
        raise UserError(f"{annotations}: no test-split records{hint}")
    present = {id(r) for r in result.records}
    usable = [r for r in records if (available(r) if available else id(r) in present)]
    usable_ids = {id(r) for r in usable}
    skipped = len(records) - len(usable)
    reason = "not in the cache" if available else "no audio file"
    log(f"{dataset}: {len(usable):,} test items over {len({r.clip_id for r in usable}):,} clips"
        + (f"; {skipped:,} skipped ({reason})" if skipped else "")
        + (f"; {len(outside):,} skipped (audio outside the audio root {result.root}, e.g. "
           f"{outside[0].source})" if outside else ""))
    if not usable:
        raise UserError(f"{dataset}: none of the {len(records):,} test items can be heard: check "
                        "--audio-root or --cache")
    if kind == "rul":
        items = rul_items(records, protocol=rul_protocol, seed=mcq.seed,
                          keep=lambda r: id(r) in usable_ids)
    else:
        items = record_items(records, keep=lambda r: id(r) in usable_ids,
                             question=CAPTION_QUESTION if has_question else None,
                             mcq=mcq, mcq_answer=lettered)
    return items, {r.clip_id: str(r.audio_path) for r in usable}


class PredictionLog:
    """The resumable JSONL of one pass: one object per item (id, clip_id, audio_clip, question,
    reference, prediction), appended and flushed per batch."""

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
            if not isinstance(row["prediction"], str):
                raise UserError(f"{self.path}:{number}: field 'prediction' is "
                                f"{type(row['prediction']).__name__}, not text; delete that line "
                                "(it will be generated again) or the file")
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


def _settings(run: Path, model, cfg) -> dict:
    digest = hashlib.sha256((run / "adapter.safetensors").read_bytes()).hexdigest()[:16]
    return {"run": str(run.absolute()), "adapter_sha256": digest, "llm": model.llm_name,
            "dataset": cfg.dataset,
            "annotations": str(Path(str(cfg.annotations)).expanduser().absolute()),
            "features": "cache" if cfg.cache is not None else "audio",
            "generation": part(cfg, GenerationConfig).to_dict(),
            "control_seed": cfg.control_seed, "options_seed": cfg.options_seed,
            **cfg.protocol_settings()}


def _check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS
    if path.is_file():
        old = json.loads(path.read_text())
        keys = ("adapter_sha256", "llm", "dataset", "annotations", "generation", "control_seed",
                "options_seed", "mcq")
        diff = [k for k in keys if old.get(k) != settings.get(k)]
        if diff:
            raise UserError(f"{out} holds predictions made with other settings ({', '.join(diff)}"
                            f" differ, see {path}): use another --out, or delete the folder")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(settings, indent=2) + "\n")


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


class ScoreRun:
    """`score --run`: items -> generate -> score -> controls -> record, each a method, all
    reading the one validated `ScoreConfig`."""

    def __init__(self, cfg, log: Callable[[str], None] = print):
        from ..runs.adapter_file import run_folder

        if cfg.out is None:
            raise UserError("scoring a run needs --out FOLDER (predictions are saved there, and a "
                            "rerun resumes from them)")
        self.cfg, self.log = cfg, log
        self.out, self.folder = Path(cfg.out), run_folder(cfg.run)
        self.controls = [c for c in (cfg.control or "").split(",") if c]
        self.generation = part(cfg, GenerationConfig)

    def items(self) -> list[Item]:
        """Load the run, then the test split's items it can hear (cache or audio)."""
        from ..infer.predictor import Predictor

        cfg, log = self.cfg, self.log
        self.predictor = p = Predictor.from_config(cfg, log=log)
        has_question = p.model.template.has_question
        if cfg.cache is not None:
            items, _ = dataset_items(cfg.dataset, cfg.annotations, cfg.audio_root, log=log,
                                     has_question=has_question,
                                     available=lambda r: p.source.has(r.clip_id),
                                     mcq=cfg.mcq_layout(), rul_protocol=cfg.rul_protocol)
            self.source = p.source
        else:
            items, paths = dataset_items(cfg.dataset, cfg.annotations, cfg.audio_root, log=log,
                                         has_question=has_question,
                                         mcq=cfg.mcq_layout(), rul_protocol=cfg.rul_protocol)
            self.source = p.source.with_paths(paths)
        shuffling = "shuffled-audio" in self.controls
        items = first_items(items, cfg.max_items, by_clip=shuffling, log=log)
        if shuffling:  # the control's precondition, checked before anything is generated
            derangement(len({it.clip_id for it in items}), cfg.control_seed)
        _check_settings(self.out, _settings(self.folder, p.model, cfg))
        return items

    def generate(self, items: list[Item], source, log_name: str, what: str) -> list[str]:
        preds = generate_pass(self.predictor.model, items, source,
                              PredictionLog(self.out / log_name), generation=self.generation,
                              batch_size=self.cfg.batch_size, log=self.log)
        warn_empty(preds, what, self.log)
        return preds

    def score(self, items: list[Item], preds: list[str], out_dir: Path, title: str) -> dict:
        """Accuracy and answered rate for multiple choice, else the text metrics."""
        from ..evaluate.mcq import MCQQuestion, mcq_report
        from ..evaluate.mcq_exchange import EXCHANGE_NAME, write_exchange
        from ..evaluate.scoring import score_and_report

        source = f"{self.folder} on {self.cfg.dataset}{title}"
        if DATASETS[self.cfg.dataset][1] == "rul":
            from ..evaluate.rul import rul_report

            return rul_report(preds, items, protocol=self.cfg.protocol_name(), out_dir=out_dir,
                              source=source, settings=self.cfg.protocol_settings()["mcq"])
        if DATASETS[self.cfg.dataset][1] == "mcq":
            layout = self.cfg.mcq_layout()
            result = mcq_report(preds, [MCQQuestion.from_meta(it.meta) for it in items],
                                protocol=layout.describe(), settings=layout.to_dict(),
                                out_dir=out_dir, source=source)
            write_exchange(out_dir / EXCHANGE_NAME, items, preds)  # the benchmark's own input
            return result
        return score_and_report(preds, [it.answer for it in items], out_dir=out_dir,
                                source=source, **asdict(part(self.cfg, MetricsConfig)))

    def listening(self, items: list[Item], preds: list[str], real: dict) -> float:
        """The distinct-generation fraction, added to the real scores' markdown."""
        distinct = distinct_fraction(items, preds)
        real["markdown"] += (f"\n- distinct generations: {distinct:.3f} of the (question, clip) "
                             "prompts get their own text (1.0: every clip answered differently)")
        if distinct < MIN_DISTINCT:
            warning = (f"warning: only {distinct:.1%} of the generations differ between clips: "
                       "the model's output barely depends on its audio")
            self.log(warning)
            real["markdown"] += f"\n- {warning}"
        real["markdown"] += "\n"
        return distinct

    def control(self, name: str, items: list[Item], real: dict) -> tuple[dict, str, list]:
        """The same items again under control `name`: (scores, markdown table, rows)."""
        cfg = self.cfg
        if name == "shuffled-audio":
            heard, source = shuffled_audio(items, seed=cfg.control_seed), self.source
        else:
            probe = (text_only_features(self.source.layers, self.source.dim)
                     if name == "text-only" else
                     probe_features(self.predictor, self.folder, name, self.out,
                                    cfg.control_seed, self.log))
            heard = [replace(it, audio_clip=next(iter(probe))) for it in items]
            source = OverlaySource(self.source, probe)
        title = CONTROL_TITLES[name][0]
        preds = self.generate(heard, source, f"predictions.{name}.jsonl",
                              f"{cfg.dataset} ({title})")
        scored = self.score(items, preds, self.out / name, f", {title}")
        markdown, rows = control_table(real, scored, name)
        return scored, markdown, rows

    def plot(self, real: dict, result: dict) -> None:
        """categories.png: per-category accuracy, real beside each control."""
        from ..evaluate.mcq import categories_plot

        series = {"real": real["breakdown"]}
        for name in self.controls:
            key = "shuffled" if name == "shuffled-audio" else name
            series[CONTROL_TITLES[name][0]] = result[key]["breakdown"]
        categories_plot(self.out / "categories.png", series, title=real["protocol_name"],
                        chance=real["counts"]["chance"])
        real["markdown"] += "\n![accuracy per category, real and controls](categories.png)\n"

    def record(self, items: list[Item], real: dict, result: dict) -> None:
        """The evaluation in the run folder (runs/card.py), where serve and export find it."""
        from ..runs.card import record_evaluation

        cfg = self.cfg
        record_evaluation(self.folder, {
            "dataset": cfg.dataset, "kind": "generated test split", "source": str(self.out),
            "items": len(items), "decoding": self.generation.decoding,
            "protocols": {r["protocol"]: r["values"] for r in real["reports"]},
            "bertscore_model": cfg.bertscore_model, "control": result["control"] or None,
            "distinct_generations": round(result["distinct"], 4),
            **({"options_seed": cfg.options_seed, "protocol_name": real["protocol_name"],
                **cfg.protocol_settings()} if DATASETS[cfg.dataset][1] in ("mcq", "rul")
               else {})})

    def run(self) -> dict:
        items = self.items()
        preds = self.generate(items, self.source, PREDICTIONS, self.cfg.dataset)
        real = self.score(items, preds, self.out, "")
        result = {"real": real, "shuffled": None, "control": [],
                  "distinct": self.listening(items, preds, real), "markdown": real["markdown"]}
        tables = []
        for name in self.controls:
            scored, markdown, rows = self.control(name, items, real)
            tables.append(markdown)
            result["control"] += rows
            result["shuffled" if name == "shuffled-audio" else name] = scored
        if DATASETS[self.cfg.dataset][1] == "mcq":
            self.plot(real, result)
        if tables:
            markdown = "\n".join(tables)
            atomic_write(self.out / "control.md", markdown)
            atomic_write(self.out / "control.json", json.dumps(result["control"], indent=2) + "\n")
            result["markdown"] = real["markdown"] + "\n" + markdown
        self.record(items, real, result)
        return result


def score_run(cfg, log: Callable[[str], None] = print) -> dict:
    """Generate on the test split that `cfg` (a validated `ScoreConfig`) names, score, and run
    its controls. Returns {"real": scores, "shuffled"/"silence"/"noise": the controls' scores
    or None, "control": rows, "distinct": fraction, "markdown": everything printed}."""
    return ScoreRun(cfg, log).run()
