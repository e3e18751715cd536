"""Generation over arbitrary (clip, question) items: data-set evaluation and the demo's Q&A.

    items = [Item("c1:0", "c1", "What instrument is playing?", answer="A piano.")]
    answers = generate_for_items(model, items, {"c1": segments_of_c1})   # list[str]
    shuffled = shuffled_audio(items, seed=0)   # same items, every one hearing another clip

`features` is anything `features.sources.as_source` accepts: a source (`EncoderSource`, `CacheSource`),
or a dict {clip_id: [PooledSegment, ...]} / {clip_id: (features [L, W, D], counts [W])}. A clip
of several segments is heard whole (segments concatenated, each padded to whole tokens), cut to
the segments that fit the LLM's context beside the prompt and answer.

The grounding control (docs/REFERENCE.md section 4: these metrics barely move when a model hears the
wrong audio) swaps audio by a seeded derangement of the distinct CLIPS, not of items: Q&A sets
ask several questions about one clip, and an item must not land on another question about its
own audio. Every clip hears another clip; each clip's audio is used exactly once.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..data.records import Item
from ..errors import UserError
from ..features import join_segments
from .generation import GenerationConfig, audio_budget, generate, prompt_example
from ..features.sources import as_source


class Progress:
    """'generate: 40/120 items, 2.1 items/s, about 38 s left' on stderr: after the first
    batch (so a slow model shows its rate at once), then at most every `every` s, and at the
    end. With total None (a caption run over files of unknown length) it counts without an ETA."""

    def __init__(self, total: int | None, log: Callable[[str], None] | None,
                 what: str = "generate", every: float = 10.0, done: int = 0,
                 unit: str = "items"):
        self.total, self.log, self.what, self.every, self.unit = total, log, what, every, unit
        self.done, self.start_done, self.said = done, done, False
        self.t0 = self.last = time.perf_counter()

    def add(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        finished = self.total is not None and self.done >= self.total
        if self.log is None or (self.said and now - self.last < self.every and not finished):
            return
        self.said, self.last = True, now
        rate = (self.done - self.start_done) / max(now - self.t0, 1e-9)
        if self.total is None:
            self.log(f"{self.what}: {self.done:,} {self.unit}, {rate:.2f} {self.unit}/s")
            return
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        self.log(f"{self.what}: {self.done:,}/{self.total:,} {self.unit}, {rate:.2f} "
                 f"{self.unit}/s, about {left:.0f} s left")


def listened(log, clip, segments: list, seconds: float, slow: float = 5.0) -> None:
    """Say what a slow encoder pass did (a long recording on CPU takes minutes)."""
    if log is not None and seconds >= slow:
        audio = sum(getattr(s, "seconds", 0.0) for s in segments)
        log(f"listened to {clip}: {len(segments)} segments ({audio:.0f} s of audio) in "
            f"{seconds:.0f} s")


def _clip_features(source, clip: str, factor: int, budget: int | None, cache: dict, log=None):
    if clip not in cache:
        t0 = time.perf_counter()
        segs = source.segments(clip)
        listened(log, clip, segs, time.perf_counter() - t0)
        f, c, used = join_segments(segs, factor, budget)
        cache[clip] = (f, c, used, len(segs))
        while len(cache) > 64:  # bounded: features are re-read if a clip comes back later
            cache.pop(next(iter(cache)))
    return cache[clip]


def generate_for_items(model, items: list[Item], features, *,
                       config: GenerationConfig | None = None, batch_size: int = 8,
                       on_batch: Callable[[list[Item], list[str]], None] | None = None,
                       log: Callable[[str], None] | None = None, chunk: int | None = None
                       ) -> list[str]:
    """Answers (text before the end symbol) for `items`, in order.

    Items are processed `chunk` at a time (default 4 x batch_size): features are fetched for a
    chunk, generated in batches, and `on_batch(items, answers)` is called per chunk, so a caller
    can append results to a file as they come (resumable evaluation)."""
    config = config or GenerationConfig()
    source = as_source(features)
    chunk = chunk or 4 * batch_size
    factor = model.adapter.factor
    has_q = model.template.has_question
    answers: list[str] = []
    progress = Progress(len(items), log)
    truncated: set[str] = set()
    cache: dict = {}
    for start in range(0, len(items), chunk):
        part = items[start:start + chunk]
        prompts, feats = [], []
        for it in part:
            if has_q and not it.question:
                raise UserError(f"item {it.id}: the adapter's instruct template needs a question")
            prompt = prompt_example(model, it.question if has_q else None)
            f, c, used, n = _clip_features(source, it.heard, factor,
                                           audio_budget(model, prompt, config), cache, log)
            if used < n:
                truncated.add(it.heard)
            prompts.append(prompt)
            feats.append((f, c))
        outs = generate(model, prompts, feats, config, batch_size=batch_size,
                        on_batch=lambda idx, _: progress.add(len(idx)))
        texts = [o.answer for o in outs]
        answers += texts
        if on_batch is not None:
            on_batch(part, texts)
    if truncated and log is not None:
        log(f"{len(truncated)} clips were longer than the LLM's context allows; their first "
            "segments were used")
    return answers


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A seeded permutation of range(n) with no fixed point (n >= 2).

    Sattolo's algorithm: a uniformly random single n-cycle, which never maps i to itself."""
    if n < 2:
        raise UserError("the shuffled-audio control needs at least 2 distinct clips")
    rng = np.random.default_rng(seed)
    perm = np.arange(n)
    for i in range(n - 1, 0, -1):
        j = int(rng.integers(0, i))  # j < i: the defining step of Sattolo's algorithm
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def shuffled_audio(items: list[Item], seed: int = 0) -> list[Item]:
    """The same items, each hearing the audio of another clip (a derangement of the clips)."""
    clips = list(dict.fromkeys(it.clip_id for it in items))
    perm = derangement(len(clips), seed)
    swap = {clips[i]: clips[int(perm[i])] for i in range(len(clips))}
    return [replace(it, audio_clip=swap[it.clip_id]) for it in items]
