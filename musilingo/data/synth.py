"""Reading a folder written by the synthetic music generator (`musilingo.synth.generate`).

The generator writes the real MusicCaps and MusicInstruct formats, so this reader is the MusicCaps
and MusicInstruct readers plus two joins: each question record gets its clip's caption and the
clip's known attributes (attributes.json), which the demo's scorer needs.
"""
from __future__ import annotations

import json
from pathlib import Path

from musilingo.data.musiccaps import read_musiccaps, read_musicinstruct
from musilingo.data.records import DatasetRecords
from musilingo.errors import UserError


def load_attributes(folder: str | Path) -> dict[str, dict[str, str]]:
    """{clip_id: {attribute: value}} of a generated folder."""
    path = Path(folder).expanduser() / "attributes.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found; generate the synthetic set first "
                        "(musilingo.synth.generate)") from None
    except ValueError as error:
        raise UserError(f"{path}: invalid JSON ({error}); generate the set again") from None


def read_synth(annotations: str | Path | None, audio_root: str | Path | None, *,
               split: str | None = None, name: str = "synth") -> DatasetRecords:
    """Records of a generated folder, read by the MusicCaps / MusicInstruct readers.

    `annotations` is the folder (-> the Q&A records of qa.json, each with meta["caption"] and
    meta["attributes"] of its clip, plus meta "attribute"/"value" of the question), or one of its
    files: captions.csv (-> caption records) or qa.json (-> Q&A records, no joins). Audio defaults
    to <folder>/audio.
    """
    given = annotations if annotations is not None else audio_root
    if given is None:
        raise UserError("synth: no folder given; pass the folder written by the synth generator")
    path = Path(given).expanduser()
    if not path.exists():
        raise UserError(f"{path}: does not exist; pass the folder written by the synth generator "
                        "(musilingo.synth.generate)")
    folder = path if path.is_dir() else path.parent
    audio = audio_root if annotations is not None and audio_root is not None else folder / "audio"
    if path.is_file() and path.suffix.lower() == ".csv":
        return read_musiccaps(path, audio, split=split, name=name)
    if path.is_file():
        return read_musicinstruct(path, audio, split=split, name=name)
    if not (folder / "manifest.json").is_file():
        raise UserError(f"{folder}: not a complete synthetic set (no manifest.json); generate "
                        "it with musilingo.synth.generate")
    questions = read_musicinstruct(folder / "qa.json", audio, split=split, name=name)
    caption_set = read_musiccaps(folder / "captions.csv", audio, split=split)
    captions = {r.clip_id: r.texts["caption"] for r in caption_set.records + caption_set.missing}
    attributes = load_attributes(folder)
    for record in questions.records + questions.missing:
        record.meta["caption"] = captions.get(record.clip_id)
        record.meta["attributes"] = attributes.get(record.clip_id, {})
    return questions
