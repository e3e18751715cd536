"""Reader for MusicQA (MU-LLaMA's Q&A set): a JSON list of conversations about one audio file.

Format: `[{"audio_name": "012542.wav", "conversation": [{"from": "human", "value": Q},
{"from": "gpt", "value": A}, ...]}, ...]`. Each human/gpt pair becomes one record; the clip is
the audio file (clip_id = its name without extension), so the 9 questions per Eval track share
one cached embedding.

Splits: MusicQA ships one file per split (Pretrain = MusicCaps, Finetune = MTT, Eval =
MTG-Jamendo), so the file decides, not a field. A `split` argument is taken as the label of
every record (it does not filter); without one, a file whose name contains "eval" (any case) is
"test" and any other file is "train".
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

from musilingo.data.annotations import fail, read_json_items, require_file, text_field
from musilingo.data.records import (AudioLocator, DatasetRecords, Record, audio_root_path,
                                    partition)


def musicqa_split(path: Path, split: str | None) -> str:
    """The split label of every record of a MusicQA file (see the module docstring)."""
    if split is not None:
        return split
    return "test" if "eval" in path.name.lower() else "train"


def read_musicqa(annotations: str | Path | None, audio_root: str | Path | None, *,
                 split: str | None = None, name: str = "musicqa") -> DatasetRecords:
    """One Q&A record per human/gpt turn pair; audio = audio_root/audio_name."""
    path = require_file(annotations, "MusicQA JSON")
    root = audio_root_path(audio_root, path.parent)
    record_split = musicqa_split(path, split)
    locator = AudioLocator()
    records = []
    for line, item in read_json_items(path, "MusicQA"):
        audio_name = text_field(item, "audio_name", path, line, "MusicQA")
        conversation = item.get("conversation")
        if not isinstance(conversation, list) or not conversation:
            raise fail(path, line, "field 'conversation' is missing or not a non-empty list",
                       'give each item a "conversation" list of human/gpt turns')
        if len(conversation) % 2:
            raise fail(path, line, f"'conversation' has {len(conversation)} turns, not pairs",
                       "every human question needs a gpt answer")
        clip_id = PurePosixPath(audio_name).with_suffix("").as_posix()
        for pair in range(len(conversation) // 2):
            turns = conversation[2 * pair: 2 * pair + 2]
            texts = {}
            for turn, role, key in zip(turns, ("human", "gpt"), ("question", "answer")):
                speaker = turn.get("from") if isinstance(turn, dict) else None
                if speaker != role:
                    raise fail(path, line, f"conversation turn {2 * pair + len(texts) + 1} is "
                               f"from {speaker!r}, expected {role!r}",
                               "alternate human and gpt turns, starting with human")
                texts[key] = text_field(turn, "value", path, line, "MusicQA turn")
            records.append(Record(
                clip_id=clip_id, audio_path=locator.find(root / audio_name), split=record_split,
                texts=texts, source=f"{path}:{line}",
                meta={"audio_name": audio_name, "turn": pair}))
    return partition(name, records, locator, root)
