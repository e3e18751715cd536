"""Reader for RUL-MuChoMusic (`RUL-MuchoMusic.json`, "Are you really listening?", ISMIR 2025).

    musilingo score --run runs/instruct --dataset rul-muchomusic \\
        --annotations RUL-MuchoMusic.json --audio-root rul_audio/ --out eval/rul --control noise

The file is one JSON object keyed by question id (a MuChoMusic question's number): each value
holds `question`, `caption` (the source caption, not shown to the model), `correct_answer`,
`distractors` (four, chosen against text-only guessing) and `PI` (the question's perceptual
index). Its audio is one file per question, `<question id>.mp3` under the audio root (the
release's layout; another audio extension of the same stem is found too). Every record is split
"test" with texts {"question", "answer"} and meta["rul_distractors"] (four strings) and
meta["pi"].
How the questions are asked and scored (leave-one-out passes with a majority vote, or all five
options at once) is data/items.py's and evaluate/rul.py's; docs/REFERENCE.md, "RUL-MuChoMusic",
has the protocol.
"""
from __future__ import annotations

import json
from pathlib import Path

from musilingo.data.annotations import fail, require_file, text_field
from musilingo.data.records import (AudioLocator, DatasetRecords, Record, audio_root_path,
                                    partition)

WHAT = "RUL-MuChoMusic"
N_DISTRACTORS = 4


def read_rul_muchomusic(annotations: str | Path | None, audio_root: str | Path | None, *,
                        split: str | None = None) -> DatasetRecords:
    """One five-option record per question, all in split "test"."""
    path = require_file(annotations, f"{WHAT} JSON")
    root = audio_root_path(audio_root, path.parent)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise fail(path, None, f"not UTF-8 text (byte {exc.start})", "save it as UTF-8") from None
    except RecursionError:
        raise fail(path, None, "JSON nested too deeply", f"give the {WHAT} JSON file") from None
    except json.JSONDecodeError as exc:
        raise fail(path, exc.lineno, f"not valid JSON ({exc.msg})",
                   f"give the {WHAT} JSON file") from None
    if not isinstance(data, dict):
        raise fail(path, None, f"top level is a JSON {type(data).__name__}",
                   f"{WHAT} is one object keyed by question id")
    locator = AudioLocator()
    records = []
    for qid, item in data.items():
        where = f"question {qid}"
        question = text_field(item, "question", path, where, WHAT)
        answer = text_field(item, "correct_answer", path, where, WHAT)
        distractors = item.get("distractors")
        if (not isinstance(distractors, list) or len(distractors) != N_DISTRACTORS
                or not all(isinstance(d, str) and d.strip() for d in distractors)):
            raise fail(path, where, f"field 'distractors' is not a list of {N_DISTRACTORS} "
                                    "texts", f"{WHAT} gives every question four distractors")
        if len({answer.strip().lower(), *(d.strip().lower() for d in distractors)}) != 5:
            raise fail(path, where, "the answer and its four distractors are not five "
                                    "different options", "give five different options")
        pi = item.get("PI")
        meta = {"rul_distractors": [d.strip() for d in distractors],
                "dataset": "rul-muchomusic"}
        if isinstance(pi, (int, float)) and not isinstance(pi, bool):
            meta["pi"] = float(pi)
        clip = str(qid)
        if "/" in clip or "\\" in clip or clip in ("", ".", ".."):
            raise fail(path, where, "the question id is not a plain file stem",
                       "ids name the audio files <id>.mp3")
        audio = locator.find(root / f"{clip}.mp3")
        records.append(Record(clip_id=clip, audio_path=audio, split="test",
                              texts={"question": question.strip(), "answer": answer.strip()},
                              source=f"{path}:{where}", meta=meta))
    if split not in (None, "test"):
        records = []
    return partition("rul-muchomusic", records, locator, root)
