"""Does the model listen? The controls beside every generated score.

    rows = control_table(real, shuffled, "shuffled-audio")    # metric: real, control, delta
    probe = probe_features(predictor, run, "silence", out, seed, log)   # {key: segments}
    blank = text_only_features(layers, dim)                    # {key: [no audio tokens]}
    distinct_fraction(items, predictions)                      # 1.0: each clip its own answer

A model that listens loses score when it hears another clip (shuffled audio), silence or noise,
or nothing at all (text only: the question with no audio tokens, "Are you really listening?"'s
text-only baseline), and writes different text for different clips; a delta near 0, or the same
text for every clip, means the score comes from the language prior (docs/REFERENCE.md sections
4 and 10).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.records import Item

CONTROL_TITLES = {
    "shuffled-audio": ("shuffled audio", "Every item again with another clip's audio (a seeded "
                       "derangement of clips)."),
    "silence": ("silence", "Every item again hearing the same silent clip."),
    "noise": ("noise", "Every item again hearing the same white-noise clip (seeded)."),
    "text-only": ("text only", "Every item again with no audio tokens at all: the question "
                  "alone, what the LLM answers from the text."),
}
TEXT_ONLY = "__text-only__"  # the key of the clip without audio every item hears
PROBE_SECONDS = 10.0  # the silence and noise clips: the length of a MusicCaps clip


def control_table(real: dict, other: dict, control: str = "shuffled-audio"
                  ) -> tuple[str, list[dict]]:
    """Markdown and rows of every metric: real, under the control, and real - control."""
    title, what = CONTROL_TITLES[control]
    rows, lines = [], [f"## Grounding control: {title}", "",
                       f"{what} delta = real - {title}: near 0 means the score does not depend "
                       "on what the model hears.", ""]
    for r_rep, s_rep in zip(real["reports"], other["reports"]):
        named = f": {real['protocol_name']}" if real.get("protocol_name") else ""
        lines += [f"### Protocol `{r_rep['protocol']}`{named}", "", f"| metric | real | {title} |"
                  " delta |", "|---|---:|---:|---:|"]
        for name, value in r_rep["values"].items():
            value2 = s_rep["values"].get(name)
            delta = value - value2 if value is not None and value2 is not None else None
            row = {"protocol": r_rep["protocol"], "metric": name, "real": value,
                   "shuffled" if control == "shuffled-audio" else control: value2,
                   "delta": delta}
            if control != "shuffled-audio":
                row["control"] = control
            rows.append(row)
            show = [("missing" if v is None else f"{v:.4f}") for v in (value, value2)]
            show.append("missing" if delta is None else f"{delta:+.4f}")
            lines.append(f"| {name} | " + " | ".join(show) + " |")
        lines.append("")
    return "\n".join(lines), rows


def probe_features(p, folder: Path, control: str, out: Path, seed: int, log) -> dict:
    """{key: segments} of the one clip every item hears under the silence or noise control:
    PROBE_SECONDS of it at the encoder's rate, through the run's encoder (loaded even when the
    features come from a cache)."""
    import soundfile as sf

    from ..infer.predictor import open_source

    # The run's encoder at the stride the loaded model reads (the cache's, when it has one).
    source = p.source if p.source.online else open_source(p.model.config, folder)
    rate = source.encoder.sample_rate
    n = int(PROBE_SECONDS * rate)
    wave = (np.zeros(n) if control == "silence" else
            0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
    (out / control).mkdir(parents=True, exist_ok=True)
    path = out / control / f"{control}.wav"
    sf.write(path, wave, rate, subtype="FLOAT")
    log(f"{control} control: every item hears {path} ({PROBE_SECONDS:g} s)")
    return {f"__{control}__": list(source.segments(str(path)))}


def text_only_features(layers: int, dim: int) -> dict:
    """{key: segments} of the clip the text-only control hears: one segment with no windows, so
    the prompt keeps its layout and gets no audio token."""
    from ..features import PooledSegment

    empty = PooledSegment(np.zeros((layers, 0, dim), np.float32), np.zeros(0, np.int32), 0.0, 0.0)
    return {TEXT_ONLY: [empty]}


def distinct_fraction(items: list[Item], predictions: list[str]) -> float:
    """Distinct generations over distinct (question, clip) prompts: 1.0 when every clip gets its
    own answer to each question, 1/clips when the model writes the same text whatever it hears."""
    by_question: dict[str | None, dict[str, str]] = {}
    for it, pred in zip(items, predictions):
        by_question.setdefault(it.question, {})[it.heard] = pred.strip()
    prompts = sum(len(clips) for clips in by_question.values())
    distinct = sum(len(set(clips.values())) for clips in by_question.values())
    return distinct / max(prompts, 1)


# Below this, the outputs barely depend on the audio: the report says so.
MIN_DISTINCT = 0.2
