"""The inference API: load a run folder, then caption, ask and chat about audio.

    p = Predictor.load("runs/instruct")                      # encoder named in adapter_config
    p.caption(["song.wav", "folder/"])        # [{clip, start, end, scope, caption}, ...]
    p.ask("song.wav", "What instrument is playing?")   # [{clip, start, end, scope, question, answer}]
    chat = p.chat("song.wav"); chat.ask("What key is it in?"); chat.ask("And the tempo?")
    p = Predictor.load("runs/instruct", cache="musiccaps.zarr")   # keys are then clip ids

CLI: `musilingo caption|ask|chat --run RUN ...` (musilingo/infer/command.py).

A run folder is what `musilingo train` or `musilingo import-checkpoint` writes:
adapter.safetensors + adapter_config.json, which names the LLM, the encoder and the pooling. The
features are checked against that config (width, hidden-state count, stride, encoder weights)
BEFORE the LLM is loaded, so a mismatch costs a second, not a 7B model load.

Long audio: features come in segments (30 s by default, like the paper's clips). `caption`
writes one caption per segment with its time span (`scope` "segment"), or, with
`whole_track=True`, one caption over all segments' tokens when they fit the LLM's context.
`ask` answers about the whole track when its audio tokens fit beside the prompt and the answer
(MERT at t = 325 gives ~14 tokens a minute, so a 2048-token Vicuna takes about two hours), and
otherwise answers per segment. `chat` uses as many whole segments as fit.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import UserError
from ..features import join_segments
from ..models.prompts import CAPTION_QUESTION
from .config import part
from .generation import (GenerationConfig, audio_budget, audio_tokens, chat_example,
                         generate, prompt_example)
from .items import Progress, listened
from ..data.folder import expand_audio
from ..features.sources import CacheSource, EncoderSource
from ..models.adapter_config import AdapterConfig
from ..runs.adapter_file import load_model, read_config, run_folder


class Predictor:
    """A loaded model plus a feature source; every method returns plain dict rows."""

    def __init__(self, model, source, *, generation: GenerationConfig | None = None,
                 batch_size: int = 8, log: Callable[[str], None] | None = None):
        self.model, self.source = model, source
        self.generation = generation or GenerationConfig()
        self.batch_size = batch_size
        self.log = log or (lambda msg: None)

    @classmethod
    def from_config(cls, cfg, log: Callable[[str], None] | None = None) -> "Predictor":
        """The Predictor of a generating verb's validated config (`infer.config.GenerateConfig`)."""
        return cls.load(cfg.run, llm=cfg.llm, cache=cfg.cache, encoder=cfg.encoder,
                        device=cfg.device, dtype=cfg.dtype, segment_seconds=cfg.segment_seconds,
                        trust_remote_code=cfg.trust_remote_code,
                        generation=part(cfg, GenerationConfig), batch_size=cfg.batch_size,
                        log=log)

    @classmethod
    def load(cls, run: str | Path, *, llm: str | None = None, cache: str | Path | None = None,
             encoder: str | None = None, device: str = "cpu", dtype: str = "fp32",
             segment_seconds: float = 30.0, min_tail_seconds: float = 1.0,
             trust_remote_code: bool = False, generation: GenerationConfig | None = None,
             batch_size: int = 8, log: Callable[[str], None] | None = None) -> "Predictor":
        """Load the run's adapter, its LLM (or `llm`), and a feature source: the cache at
        `cache`, else the encoder named in the adapter config (or `encoder`). The features are
        checked against the adapter before the LLM loads."""
        folder = run_folder(run)
        source = open_source(read_config(folder), folder, cache=cache, encoder=encoder,
                             device=device, segment_seconds=segment_seconds,
                             min_tail_seconds=min_tail_seconds,
                             trust_remote_code=trust_remote_code)
        model = load_model(folder, llm=llm, stride=source.stride, dtype=dtype, device=device,
                           trust_remote_code=trust_remote_code)
        return cls(model, source, generation=generation or GenerationConfig(),
                   batch_size=batch_size, log=log)

    # ------------------------------------------------------------------------- helpers
    def segments(self, key) -> list:
        """Every pooled segment of a clip (a file, or a cache clip id), computed now."""
        t0 = time.perf_counter()
        segments = list(self.source.segments(key))
        listened(self.log, key, segments, time.perf_counter() - t0)
        if not segments:
            raise UserError(f"{key}: shorter than one encoder frame; nothing to listen to")
        return segments

    def _question(self, question: str | None) -> str | None:
        return question if self.model.template.has_question else None

    def _whole(self, segments: list, question: str | None):
        """(features, counts) of the whole track if it fits the context, else None."""
        prompt = prompt_example(self.model, self._question(question))
        budget = audio_budget(self.model, prompt, self.generation)
        factor = self.model.adapter.factor
        if budget is not None and sum(audio_tokens(s.counts, factor) for s in segments) > budget:
            return None
        f, c, _ = join_segments(segments, factor)
        return f, c

    def _run(self, jobs: list[tuple[dict, str | None, tuple]], progress=None) -> list[dict]:
        """Generate for (row, question, features) jobs; fills the row's answer field."""
        prompts = [prompt_example(self.model, self._question(q)) for _, q, _ in jobs]
        progress = progress or Progress(len(jobs), self.log, "generate", unit="answers")
        outs = generate(self.model, prompts, [f for _, _, f in jobs], self.generation,
                        batch_size=self.batch_size,
                        on_batch=lambda idx, _: progress.add(len(idx)))
        rows = []
        for (row, _, _), out in zip(jobs, outs):
            key = "caption" if "caption" in row else "answer"
            rows.append(dict(row, **{key: out.answer}))
        return rows

    def _jobs(self, key, segments: list, question: str | None, whole: bool, field: str) -> list:
        base = {"clip": str(key)}
        if field == "answer":
            base["question"] = question
        if whole:
            features = self._whole(segments, question)
            if features is not None:
                end = segments[-1].start + segments[-1].seconds
                return [(dict(base, start=round(segments[0].start, 3), end=round(end, 3),
                              scope="track", **{field: None}), question, features)]
            self.log(f"{key}: {len(segments)} segments do not fit the LLM's context together; "
                     "answering per segment")
        return [(dict(base, start=round(s.start, 3), end=round(s.start + s.seconds, 3),
                      scope="segment", **{field: None}), question, (s.features, s.counts))
                for s in segments]

    # ----------------------------------------------------------------------------- API
    def iter_caption(self, audio, *, whole_track: bool = False,
                     on_error: Callable[[str, str], None] | None = None) -> Iterator[dict]:
        """Caption rows in input order, generated `batch_size` x 4 segments at a time.

        `audio`: files or folders (or cache clip ids with a cache source). A clip that cannot
        be read goes to `on_error(clip, message)` and is skipped; without `on_error` it raises.
        A damaged cache row is never skipped: it stops the run (`BadRowError`)."""
        from ..cache.reader import BadRowError

        keys = list(audio) if isinstance(self.source, CacheSource) else expand_audio(audio)
        question = CAPTION_QUESTION if self.model.template.has_question else None
        progress = Progress(None, self.log, "caption", unit="captions")
        pending: list = []
        for i, key in enumerate(keys):
            try:
                segments = self.segments(key)
            except UserError as exc:
                if on_error is None or isinstance(exc, BadRowError):
                    raise
                on_error(str(key), str(exc))
                continue
            pending += self._jobs(key, segments, question, whole_track, "caption")
            if len(pending) >= 4 * self.batch_size or i == len(keys) - 1:
                yield from self._run(pending, progress)
                pending = []
        if pending:
            yield from self._run(pending, progress)

    def caption(self, audio, *, whole_track: bool = False) -> list[dict]:
        """[{clip, start, end, scope, caption}] for every segment (or track) of every file."""
        return list(self.iter_caption([audio] if isinstance(audio, (str, Path)) else audio,
                                      whole_track=whole_track))

    def ask(self, audio, question: str, *, whole_track: bool = True) -> list[dict]:
        """[{clip, start, end, scope, question, answer}]: one row over the whole track when it
        fits the context, else one per segment. `audio`: a file (or cache clip id)."""
        if not self.model.template.has_question:
            raise UserError("this adapter was trained for captioning only (stage-1 template, no "
                            "questions): use `musilingo caption`")
        if not question or not question.strip():
            raise UserError("the question is empty")
        return self._run(self._jobs(audio, self.segments(audio), question.strip(), whole_track,
                                    "answer"))

    def chat(self, audio) -> "ChatSession":
        return ChatSession(self, audio)


class ChatSession:
    """A multi-turn conversation about one clip, in the Human/Assistant template."""

    def __init__(self, predictor: Predictor, key):
        self.predictor, self.key = predictor, key
        self.segments = predictor.segments(key)
        self.turns: list[tuple[str, str]] = []
        self._features = None

    def _audio(self, first_question: str):
        p = self.predictor
        budget = audio_budget(p.model, prompt_example(p.model, first_question), p.generation)
        f, c, used = join_segments(self.segments, p.model.adapter.factor, budget)
        if used < len(self.segments):
            end = self.segments[used - 1].start + self.segments[used - 1].seconds
            p.log(f"{self.key}: only the first {end:.0f} s ({used} of {len(self.segments)} "
                  "segments) fit the LLM's context; the chat hears those")
        return f, c

    def ask(self, question: str) -> str:
        question = question.strip()
        if not question:
            raise UserError("the question is empty")
        p = self.predictor
        if self._features is None:
            self._features = self._audio(question)
        prompt = chat_example(p.model, self.turns + [(question, None)])
        try:
            out = generate(p.model, [prompt], [self._features], p.generation, batch_size=1)[0]
        except UserError as exc:
            if not self.turns:
                raise
            raise UserError(f"the conversation no longer fits the LLM's context ({exc}); start a"
                            " new chat") from None
        self.turns.append((question, out.answer))
        return out.answer


def open_source(config: AdapterConfig, folder: Path, *, cache=None, encoder: str | None = None,
                device: str = "cpu", segment_seconds: float = 30.0,
                min_tail_seconds: float = 1.0, trust_remote_code: bool = False):
    """The feature source for an adapter, checked to fit it (`AdapterConfig.check_features`)."""
    run = str(folder)
    if cache is not None:
        from ..cache import FeatureCache

        source = CacheSource(FeatureCache.open(cache))
        config.check_features(layers=source.layers, dim=source.dim, stride=source.stride,
                              encoder=source.identity, where=source.describe(), run=run)
        return source
    from ..models.encoders import load_encoder

    trained = config.encoder
    name = encoder or trained.get("encoder")
    if not name:
        raise UserError(f"{folder / 'adapter_config.json'} names no encoder: pass --encoder "
                        "(e.g. mert-330m) or --cache")
    # Raw audio is preprocessed as the adapter's training features were (recorded normalisation).
    normalize = trained.get("normalize", "auto")
    enc = load_encoder(name, trust_remote_code=trust_remote_code, device=device,
                       normalize=normalize)
    source = EncoderSource(enc, stride=config.stride, segment_seconds=segment_seconds,
                           min_tail_seconds=min_tail_seconds)
    identity = source.fill_identity() if trained.get("weights_sha256") else source.identity
    config.check_features(layers=source.layers, dim=source.dim, encoder=identity,
                          where=source.describe(), run=run)
    return source
