"""The synthetic music set of the demo: generate it (read it back with musilingo.data.synth).

`generate(out_dir)` writes a folder that looks like a real MusicCaps + MusicInstruct download:

    audio/<clip_id>.wav   10 s, 24 kHz, mono, 16-bit clips (render.py says how)
    captions.csv          MusicCaps CSV (ytid = clip_id, is_audioset_eval "True" for test clips)
    qa.json               MusicInstruct JSON {"QA": [...]}, one pair per clip and attribute,
                          each with extra "attribute" and "value" fields for the scorer
    mcq.csv               MuChoMusic CSV: four four-option questions per clip (language.py's
                          MCQ_KINDS), with audio_path, split and kind columns
    attributes.json       {clip_id: {attribute: value}}
    README.md             what the folder is
    manifest.json         generator version, parameters, file sizes: written LAST, so a folder
                          with a manifest is complete, and a same-parameter call reuses it

Writing the real formats (and reading them with the MusicCaps/MusicInstruct readers) means the
demo exercises exactly the code path a user's real data takes.

Every attribute value is equally frequent within each split (values are dealt round-robin, then
shuffled per attribute), so `chance(attribute)` is the accuracy of guessing. Everything derives
from `seed` through numpy Generators keyed by (seed, split, clip), so output is byte-identical for
a seed regardless of how many worker processes render it.
"""
from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from musilingo.data.muchomusic import DISTRACTORS
from musilingo.data.musiccaps import MUSICCAPS_COLUMNS
from musilingo.synth.language import (ATTRIBUTES, answer_is_correct, aspect_list, caption,
                                           chance, mcq_questions, mentioned_values,
                                           question_answers)
from musilingo.synth.render import (ARPEGGIOS, PROGRESSIONS, TEMPO_BPM, ClipPlan,
                                         render_clip)
from musilingo.errors import UserError

__all__ = ["ATTRIBUTES", "chance", "answer_is_correct", "mentioned_values", "generate",
           "plan_clips", "GENERATOR_VERSION"]

GENERATOR_VERSION = 4  # bump whenever output for the same parameters changes (4: mcq.csv)
_SPLIT_CODES = {"train": 0, "test": 1}


def plan_clips(split: str, count: int, seed: int) -> list[tuple[str, ClipPlan]]:
    """(clip_id, plan) for `count` clips of `split`, balanced over every attribute's values."""
    rng = np.random.default_rng([seed, _SPLIT_CODES[split]])
    columns = {}
    for attribute, values in ATTRIBUTES.items():
        column = [values[i % len(values)] for i in range(count)]
        rng.shuffle(column)
        columns[attribute] = column
    plans = []
    for index in range(count):
        attributes = {attribute: columns[attribute][index] for attribute in ATTRIBUTES}
        plans.append((f"{split}_{index:04d}", ClipPlan(
            **attributes,
            bpm=round(TEMPO_BPM[attributes["tempo"]] * rng.uniform(0.97, 1.03), 2),
            progression=PROGRESSIONS[rng.integers(len(PROGRESSIONS))],
            arpeggio=ARPEGGIOS[rng.integers(len(ARPEGGIOS))],
            offset_s=round(float(rng.uniform(0.0, 0.15)), 4),
            noise_seed=int(rng.integers(2 ** 31)))))
    return plans


def _render_to_file(job: tuple[ClipPlan, str, float, int]) -> int:
    plan, path, seconds, sample_rate = job
    audio = render_clip(plan, seconds, sample_rate)
    # Quantise here, not in libsndfile, so the rounding rule is ours and fixed.
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
    sf.write(path, pcm, sample_rate, subtype="PCM_16", format="WAV")
    return os.path.getsize(path)


def _render_all(jobs: list, workers: int) -> list[int]:
    # fork, not spawn: spawn re-imports the caller's __main__, which breaks scripts that call
    # generate() without an `if __name__ == "__main__"` guard. Without fork (Windows), render
    # in this process: slower, same bytes.
    if workers <= 1 or len(jobs) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [_render_to_file(job) for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_render_to_file, jobs, chunksize=max(1, len(jobs) // (4 * workers))))


def _manifest_matches(out_dir: Path, params: dict) -> bool:
    try:
        manifest = json.loads((out_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("params") != params:
        return False
    return all((out_dir / name).is_file() and (out_dir / name).stat().st_size == size
               for name, size in manifest.get("files", {}).items())


def _write(path: Path, text: str) -> int:
    path.write_text(text, encoding="utf-8", newline="")
    return path.stat().st_size


MCQ_COLUMNS = ("question", "correct_answer", *DISTRACTORS, "audio_path", "split", "kind")


def _csv(rows: list[dict], columns) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _readme(params: dict, counts: dict[str, int]) -> str:
    attribute_lines = "\n".join(
        f"- {attribute}: {', '.join(values)} (chance {chance(attribute):.3f})"
        for attribute, values in ATTRIBUTES.items())
    return f"""# Synthetic music set (musilingo.synth.generate, generator version {GENERATOR_VERSION})

Procedurally generated instrumental clips with known attributes, for the musilingo demo.
Parameters: {json.dumps(params, sort_keys=True)}.
Clips: {counts['train']} train, {counts['test']} test.

Attributes (every value equally frequent within each split):
{attribute_lines}

How each is heard: five additive timbres with distinct envelopes, fixed body resonances and
attack noises; detached eighth-note arpeggios and a triad on every beat at ~70/100/140 BPM;
chord progressions whose chords are all major or all minor; melody centred near MIDI 45/62/79;
kick-snare-hi-hat 3 dB under the instruments, or no drums; loudness as it sounds on a recording
(soft: darker, gentler, -20 dBFS peak over a fixed -54 dBFS hiss; loud: brighter, lightly
saturated, -1 dBFS peak), because music encoders normalise each clip's level away.

Files: audio/<clip_id>.wav (16-bit PCM); captions.csv (MusicCaps format, is_audioset_eval True =
test); qa.json (MusicInstruct format plus "attribute" and "value" per pair); mcq.csv (MuChoMusic
format, four four-option questions per clip, chance 0.25, with audio_path, split and kind
columns); attributes.json ({{clip_id: {{attribute: value}}}}); manifest.json (parameters and file
sizes, written last).
Read it with musilingo.data.read_dataset("synth", "<this folder>", None).
"""


def generate(out_dir: str | Path, *, n_train: int = 320, n_test: int = 40, seed: int = 0,
             seconds: float = 10.0, sample_rate: int = 24000, workers: int | None = None) -> Path:
    """Write (or reuse) a synthetic music set in `out_dir`; returns `out_dir` as a Path.

    `workers`: processes that render audio (default: the CPU count, at most 8); the output
    does not depend on it.
    """
    if n_train < 0 or n_test < 0 or n_train + n_test == 0:
        raise UserError(f"synth: n_train={n_train}, n_test={n_test}; ask for at least one clip")
    if seconds <= 0 or sample_rate < 8000:
        raise UserError(f"synth: seconds={seconds}, sample_rate={sample_rate}; use seconds > 0 "
                        "and a sample rate of at least 8000 Hz")
    out_dir = Path(out_dir).expanduser()
    params = {"n_train": n_train, "n_test": n_test, "seed": seed, "seconds": float(seconds),
              "sample_rate": sample_rate, "version": GENERATOR_VERSION}
    if _manifest_matches(out_dir, params):
        return out_dir
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.json").unlink(missing_ok=True)  # incomplete until rewritten
    for stale in audio_dir.glob("*_[0-9][0-9][0-9][0-9].wav"):  # an earlier, larger generation
        stale.unlink()

    plans = plan_clips("train", n_train, seed) + plan_clips("test", n_test, seed)
    jobs = [(plan, str(audio_dir / f"{clip_id}.wav"), float(seconds), sample_rate)
            for clip_id, plan in plans]
    sizes = _render_all(jobs, workers or min(8, os.cpu_count() or 1))
    files = {f"audio/{clip_id}.wav": size for (clip_id, _), size in zip(plans, sizes)}

    caption_rows, qa_items, mcq_rows, attributes = [], [], [], {}
    for index, (clip_id, plan) in enumerate(plans):
        is_test = clip_id.startswith("test_")
        text_rng = np.random.default_rng([seed, 2, index])  # independent of the audio's dice
        caption_rows.append({
            "ytid": clip_id, "start_s": 0, "end_s": f"{seconds:g}",
            "audioset_positive_labels": "/m/04rlf",  # AudioSet "Music"
            "aspect_list": repr(aspect_list(plan)), "caption": caption(plan, text_rng),
            "author_id": 0, "is_balanced_subset": "False", "is_audioset_eval": str(is_test)})
        for attribute, value, question, answer in question_answers(plan, text_rng):
            qa_items.append({"ytid": clip_id, "question": question, "answer": answer,
                             "is_audioset_eval": is_test, "sampling_rate": sample_rate,
                             "attribute": attribute, "value": value})
        for kind, question, right, distractors in mcq_questions(plan, text_rng):
            mcq_rows.append({"question": question, "correct_answer": right,
                             **dict(zip(DISTRACTORS, distractors)),
                             "audio_path": f"audio/{clip_id}.wav",
                             "split": "test" if is_test else "train", "kind": kind})
        attributes[clip_id] = {attribute: getattr(plan, attribute) for attribute in ATTRIBUTES}

    files["captions.csv"] = _write(out_dir / "captions.csv", _csv(caption_rows, MUSICCAPS_COLUMNS))
    files["mcq.csv"] = _write(out_dir / "mcq.csv", _csv(mcq_rows, MCQ_COLUMNS))
    files["qa.json"] = _write(out_dir / "qa.json", json.dumps({"QA": qa_items}, indent=1) + "\n")
    files["attributes.json"] = _write(out_dir / "attributes.json",
                                      json.dumps(attributes, indent=1) + "\n")
    files["README.md"] = _write(out_dir / "README.md",
                                _readme(params, {"train": n_train, "test": n_test}))
    manifest = {"generator": "musilingo.synth.generate", "params": params, "files": files}
    _write(out_dir / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return out_dir
