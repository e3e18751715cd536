"""`musilingo demo`: the whole pipeline on one machine, no downloads, and proof that it listens.

    musilingo demo                      # full: musicnn + tiny-lm, 320 + 40 clips, both stages
    musilingo demo --quick              # CI-sized: fewer clips and steps, one stage
    musilingo demo --config smollm2   # the real SmolLM2-135M as the LLM (configs/)
    python -c "from musilingo.demo.recipe import DemoConfig, run_demo; run_demo(DemoConfig())"

Steps, each the same code a user's real data goes through:
1. generate the synthetic music set (musilingo.synth.generate): audio files + MusicCaps,
   MusicInstruct and MuChoMusic format annotations, with known attributes per clip;
2. extract the encoder's pooled hidden states into a Zarr cache (by default musicnn-mtt, the
   pretrained music tagger from the pip package musicnn: models/encoders/musicnn.py);
3. stage 1: pre-train the adapter on captions; 4. stage 2: instruction-tune on attribute Q&A
   with captioning and four-option questions mixed in, into a frozen LLM (by default tiny-lm,
   demo/tiny_lm.py);
5. generate answers, captions and four-option replies for the test split with (a) the
   untrained adapter, (b) the trained adapter, (c) the trained adapter hearing another
   clip's audio (shuffled-audio control) and (d) the trained model with no audio token at all
   (text-only control), score them, and measure attribute accuracy (the
   answer, or the caption, names the right value) and four-option accuracy (chance 0.25);
6. write the report folder (demo/report.py).

Every step is resumable through its own machinery: the generator reuses a complete folder, the
extractor resumes its cache, and a training run that already finished is reused.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..files import atomic_write
from ..models.adapter_config import adapter_kinds
from ..train.config import AdapterInit
from ..options import option as _opt


@dataclass
class DemoConfig:
    out: str = _opt("demo_out", "folder for the data, cache, runs and report (demo_out_quick "
                                "with --quick)")
    quick: bool = _opt(False, "CI-sized run from the quick preset: 160 + 24 clips, one stage of "
                              "400 steps (the defaults below are the full demo's)")
    seed: int = _opt(0, "seed of the data, the adapter and the data order")
    n_train: int = _opt(320, "training clips")
    n_test: int = _opt(40, "test clips")
    seconds: float = _opt(10.0, "clip length in seconds")
    encoder: str = _opt("musicnn-mtt", "encoder preset available offline: musicnn-mtt (pretrained, "
                                       "from the pip package musicnn), musicnn-msd or tiny (random)")
    t: int = _opt(325, "encoder frames per audio token (the cache's stride divides it and the "
                       "paper's 325, so the cache stays re-poolable to both)")
    sub_windows: int = _opt(5, "cache windows per audio token: the cache's stride is t / this "
                               "(linear and mlp adapters re-pool them exactly; the resampler "
                               "variant attends over them)")
    llm: str = _opt("tiny-lm", "frozen LLM: tiny-lm (demo/tiny_lm.py) or smollm2 (the real "
                               "SmolLM2-135M-Instruct; its recipe: --config smollm2)")
    pretrain_steps: int = _opt(300, "stage-1 optimizer steps (captions)")
    instruct_steps: int = _opt(2000, "stage-2 optimizer steps (attribute Q&A and captions)")
    batch_size: int = _opt(16, "examples per step")
    pretrain_lr: float = _opt(1e-2, "stage-1 peak learning rate")
    instruct_lr: float = _opt(1e-2, "stage-2 peak learning rate")
    adapter_init: AdapterInit = _opt("embedding-scale", "adapter init: embedding-scale (audio "
                                                        "tokens start at the LLM's word-embedding "
                                                        "size) or default (nn.Linear's)")
    eval_batch_size: int = _opt(40, "answers generated per batch")
    caption_tokens: int = _opt(64, "most new tokens of a generated caption")
    answer_tokens: int = _opt(16, "most new tokens of a generated answer")
    bertscore_model: str = _opt("minilm", "BERTScore model (the offline MiniLM by default)")
    variants: str = _opt("", "comma list of recipes to train from the one cache and compare "
                             "instead of the two-stage demo: an adapter kind (" +
                             ", ".join(adapter_kinds()) + "), lora or smollm2-chat-lora "
                             "(demo/variants.py)")
    train: dict = _opt({}, "TrainConfig keys for both stages and every variant, after the "
                           "demo's own (e.g. train.dtype=bf16 train.lora_rank=8 "
                           "train.prompt=chat)")
    progress: bool = _opt(True, "draw progress bars")

    @classmethod
    def quick_preset(cls, **overrides) -> "DemoConfig":
        values = dict(quick=True, out="demo_out_quick", n_train=160, n_test=24, llm="tiny-lm",
                      pretrain_steps=0, instruct_steps=400, batch_size=16, instruct_lr=1e-2,
                      adapter_init="embedding-scale", caption_tokens=48, answer_tokens=12)
        values.update(overrides)
        return cls(**values)


@dataclass
class DemoResult:
    out: Path
    metrics: dict
    seconds: float
    stage_seconds: dict = field(default_factory=dict)


def _train_config(cfg: DemoConfig, stage: str, data: Path, cache: Path, run_dir: Path,
                  init_adapter: Path | None, steps: int | None = None):
    """The shipped train recipe `configs/train/demo_<stage>.yaml`, with this demo's paths and options.

    Stage 1 reads the captions file; stage 2 the Q&A, captioning as an instruction (the paper's
    "Please give a caption to the music.") and the four-option questions, mixed in proportion to
    size (7 questions, 1 caption and 4 multiple-choice questions per clip). They go through the
    real MusicCaps, MusicInstruct and MuChoMusic readers."""
    from ..options import load_recipe
    from ..train.config import TrainConfig

    if steps is None:
        steps = cfg.pretrain_steps if stage == "pretrain" else cfg.instruct_steps
    lr = cfg.pretrain_lr if stage == "pretrain" else cfg.instruct_lr
    recipe = load_recipe(f"demo_{stage}", "train")
    datasets = recipe["datasets"]
    if stage == "pretrain":
        datasets[0]["annotations"] = str(data / "captions.csv")
    else:
        datasets[0]["annotations"], datasets[1]["annotations"] = str(data), str(data / "captions.csv")
        datasets[2]["annotations"] = str(data / "mcq.csv")
    recipe.update(
        cache=str(cache), llm=cfg.llm, adapter_init=cfg.adapter_init,
        batch_size=cfg.batch_size, max_steps=steps, warmup_steps=max(1, steps // 20),
        lr=lr, min_lr=lr / 10, warmup_lr=lr / 100, seed=cfg.seed, t=cfg.t,
        init_adapter=str(init_adapter) if init_adapter else None, out=str(run_dir),
        save_every=max(50, steps), progress=cfg.progress)
    recipe.update(cfg.train)
    return TrainConfig.from_dict(recipe)


def prepare_llm(llm: str, *, progress: bool, log) -> None:
    """Build a preset LLM's folder now, as a step of its own: the tiny LM's first-use
    pre-training takes minutes and belongs in the time table, not inside the first training."""
    from ..models.llm import resolve_llm

    if llm == "tiny-lm":
        from .tiny_lm import tiny_lm_folder

        tiny_lm_folder(progress=progress, log=log)
    else:
        resolve_llm(llm)


def _finished(run_dir: Path, steps: int) -> bool:
    """A run folder whose adapter was saved after all its steps (reused on a re-run)."""
    state = run_dir / "demo_done.json"
    return state.is_file() and json.loads(state.read_text()).get("steps") == steps


def _train(cfg: DemoConfig, stage: str, data: Path, cache: Path, run_dir: Path,
           init_adapter: Path | None, log, steps: int | None = None) -> Path:
    from ..train import run

    if steps is None:
        steps = cfg.pretrain_steps if stage == "pretrain" else cfg.instruct_steps
    if _finished(run_dir, steps):
        log(f"demo: {stage} already trained in {run_dir}; reusing it")
        return run_dir
    tcfg = _train_config(cfg, stage, data, cache, run_dir, init_adapter, steps)
    tcfg.resume = (run_dir / "config.yaml").is_file()
    result = run(tcfg, log=log)
    (run_dir / "demo_done.json").write_text(json.dumps({"steps": steps,
                                                        "final_loss": result.final_loss}))
    return run_dir


def _record(run_dir: Path, metrics: dict, report: Path) -> None:
    """The demo's scores in the run folder, where `serve` and `export` find them."""
    from ..runs.card import record_evaluation

    cond = metrics["conditions"]
    trained, shuffled = cond["trained"]["accuracy"], cond["shuffled"]["accuracy"]
    values = {"mean accuracy": trained["mean"], **trained["per_attribute"]}
    other = {"mean accuracy": shuffled["mean"], **shuffled["per_attribute"]}
    control = [{"protocol": "attribute accuracy", "metric": k, "real": v, "shuffled": other[k],
                "delta": v - other[k]} for k, v in values.items()]
    record_evaluation(run_dir, {
        "dataset": "demo synthetic test split", "kind": "attribute accuracy of answers",
        "source": str(report), "items": metrics["n_questions"],
        "protocols": {"attribute accuracy": values}, "control": control})
    mcq, mcq_other = cond["trained"]["mcq"], cond["shuffled"]["mcq"]
    control = [{"protocol": "muchomusic", "metric": k, "real": mcq[k],
                "shuffled": mcq_other[k], "delta": mcq[k] - mcq_other[k]}
               for k in ("accuracy", "answered_rate")]
    if "text-only" in cond:  # the rows of controls other than shuffled audio name theirs
        text = cond["text-only"]["mcq"]
        control += [{"protocol": "muchomusic", "metric": k, "real": mcq[k], "control": "text-only",
                     "text-only": text[k], "delta": mcq[k] - text[k]}
                    for k in ("accuracy", "answered_rate")]
    record_evaluation(run_dir, {
        "dataset": "demo synthetic test split", "kind": "four-option questions",
        "source": str(report), "items": metrics["n_mcq"],
        "protocols": {"muchomusic": {"accuracy": mcq["accuracy"],
                                     "answered_rate": mcq["answered_rate"]}},
        "control": control})


def cache_stride(cfg: DemoConfig) -> int:
    """The cache's stride: t and the paper's t share it (the cache stays re-poolable to both),
    divided into `sub_windows` windows per token; the settings are checked before any work."""
    from ..extract.config import TRAINING_T

    if cfg.n_train < 8 or cfg.n_test < 4:
        raise UserError("the demo needs at least 8 training and 4 test clips")
    stride = math.gcd(cfg.t, TRAINING_T)
    if cfg.sub_windows < 1 or stride % cfg.sub_windows:
        raise UserError(f"sub_windows={cfg.sub_windows} does not divide the stride {stride} "
                        f"that t={cfg.t} and the paper's {TRAINING_T} share; use a divisor "
                        "of it (1, 5, 13, ...)")
    if cfg.variants:  # a misspelt variant fails now, not after the extraction
        from .variants import parse_variants

        parse_variants(cfg.variants)
    if cfg.train:  # so do misspelt training keys
        from ..options import from_dict
        from ..train.config import TrainConfig

        from_dict(TrainConfig, dict(cfg.train), "demo", "train")
    return stride // cfg.sub_windows


class Demo:
    """The demo's steps, in order: generate, extract, prepare the LLM, then either the two
    training stages and the evaluation, or the variants; `times` keeps each step's seconds."""

    def __init__(self, cfg: DemoConfig, log=print):
        self.cfg, self.log = cfg, log
        self.stride = cache_stride(cfg)
        self.out = Path(cfg.out)
        self.cache, self.runs = self.out / "cache.zarr", self.out / "runs"
        self.times: dict[str, float] = {}
        self.steps = 4 if cfg.variants else 6  # generate, extract, LLM, variants or 3 stages

    def step(self, n: int, what: str, key: str | None, work):
        """Announce step `n`, run `work()`, keep its time under `key`; returns its result."""
        self.log(f"demo: {n}/{self.steps} {what}")
        t = time.time()
        result = work()
        if key:
            self.times[key] = time.time() - t
        return result

    def data(self) -> Path:
        from ..synth import generate

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        return self.step(1, f"generating {cfg.n_train} + {cfg.n_test} synthetic clips in "
                            f"{self.out / 'data'}", "generate",
                         lambda: generate(self.out / "data", n_train=cfg.n_train,
                                          n_test=cfg.n_test, seed=cfg.seed, seconds=cfg.seconds))

    def extract(self, data: Path) -> None:
        from ..data import read_dataset
        from ..extract.config import ExtractConfig
        from ..extract.job import run_extract
        from ..extract.plan import clip_list

        cfg = self.cfg
        clips = clip_list(read_dataset("synth", data / "captions.csv", None))
        extract_cfg = ExtractConfig(out=str(self.cache), encoder=cfg.encoder, stride=self.stride,
                                    segment_seconds=cfg.seconds, progress=cfg.progress)
        self.step(2, f"extracting {cfg.encoder} encoder features into {self.cache}", "extract",
                  lambda: run_extract(clips, extract_cfg, log=self.log,
                                      dataset_info={"name": "synth", "annotations": str(data)}))

    def llm(self) -> None:
        cfg = self.cfg
        self.step(3, f"preparing the LLM {cfg.llm} (built on first use into the models home)",
                  "llm", lambda: prepare_llm(cfg.llm, progress=cfg.progress, log=self.log))

    def variants(self, data: Path) -> DemoResult:
        from .variants import parse_variants, run_variants, variants_markdown

        cfg = self.cfg
        names = parse_variants(cfg.variants)
        rows = self.step(4, f"training and scoring {len(names)} variants from the one cache",
                         None, lambda: run_variants(cfg, names, data, self.cache, self.runs,
                                                    self.log, _train_config))
        self.times["total"] = time.time() - self.t0
        report = self.out / "report"
        report.mkdir(parents=True, exist_ok=True)
        markdown = variants_markdown(rows, self.times["extract"])
        atomic_write(report / "variants.md", markdown)
        atomic_write(report / "variants.json", json.dumps(
            {"variants": rows, "seconds": self.times, "config": dataclasses.asdict(cfg)},
            indent=1))
        self.log(markdown)
        folders = " ".join(str(self.runs / f"variant-{n}") for n in names)
        self.log(f"demo: compare them: musilingo compare {folders}")
        return DemoResult(out=self.out, metrics={"variants": rows}, seconds=self.times["total"],
                          stage_seconds=self.times)

    def stages(self, data: Path) -> tuple[Path, Path]:
        """(untrained, stage-2) run folders. The "untrained" baseline is the real one: the
        trainer's step-0 adapter of the first stage (same seed, same initialisation, same
        fitted feature standardisation), saved by max_steps=0."""
        cfg, cache, runs, log = self.cfg, self.cache, self.runs, self.log
        first = "pretrain" if cfg.pretrain_steps > 0 else "instruct"
        untrained = _train(cfg, first, data, cache, runs / "untrained", None, lambda *_: None,
                           steps=0)
        stage1 = None
        if cfg.pretrain_steps > 0:
            stage1 = self.step(4, f"stage 1, {cfg.pretrain_steps} steps on captions ({cfg.llm})",
                               "pretrain", lambda: _train(cfg, "pretrain", data, cache,
                                                          runs / "pretrain", None, log))
        else:
            log(f"demo: 4/{self.steps} stage 1 skipped (pretrain_steps=0)")
        stage2 = self.step(5, f"stage 2, {cfg.instruct_steps} steps on attribute Q&A "
                              f"({cfg.llm})", "instruct",
                           lambda: _train(cfg, "instruct", data, cache, runs / "instruct",
                                          stage1, log))
        return untrained, stage2

    def evaluate(self, data: Path, untrained: Path, stage2: Path) -> DemoResult:
        from .evaluation import evaluate_demo
        from .report import write_report

        cfg = self.cfg
        metrics = self.step(6, "evaluating untrained, trained, shuffled-audio and text-only "
                               "conditions on the test split", "evaluate",
                            lambda: evaluate_demo(cfg, data, self.cache, stage2, untrained,
                                                  log=self.log))
        self.times["total"] = time.time() - self.t0
        metrics["seconds"] = self.times
        metrics["config"] = dataclasses.asdict(cfg)
        write_report(self.out / "report", metrics, self.runs, log=self.log)
        _record(stage2, metrics, self.out / "report")
        self.log(f"demo: try it in a browser: musilingo serve --run {stage2}\n"
                 f"demo: package it for the Hugging Face Hub: musilingo export {stage2} --out "
                 f"{self.out / 'export'}")
        return DemoResult(out=self.out, metrics=metrics, seconds=self.times["total"],
                          stage_seconds=self.times)

    def run(self) -> DemoResult:
        self.t0 = time.time()
        data = self.data()
        self.extract(data)
        self.llm()
        if self.cfg.variants:
            return self.variants(data)
        return self.evaluate(data, *self.stages(data))


def run_demo(cfg: DemoConfig, log=print) -> DemoResult:
    return Demo(cfg, log).run()
