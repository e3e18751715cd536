"""The record types every data-set reader returns, and where their audio files are looked up.

An `Item` is one question about one clip with its answer, the unit training and generation
share (see its docstring). A `Record` is one annotation (a caption, or one question/answer pair) tied to one audio clip.
Several records may share a clip (Q&A data sets ask many questions about one track), so the
feature cache is keyed by `clip_id`, and `DatasetRecords.clips()` gives the one-per-clip list that
extraction runs over. Records whose audio file is absent are kept apart in `missing`: users
rarely manage to download every MusicCaps clip, and a few absent files must be counted and
reported, not stop the run.

`AudioLocator` answers "does this file exist?" from cached directory listings, because a data set
of half a million clips would otherwise cost one `stat` per candidate extension per clip.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "valid", "test")

# soundfile (libsndfile 1.2) decodes all of these; upper-case variants come from Windows/FAT copies.
_AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
AUDIO_EXTENSIONS: tuple[str, ...] = _AUDIO_SUFFIXES + tuple(s.upper() for s in _AUDIO_SUFFIXES)


@dataclass
class Record:
    """One annotation about one audio clip."""

    clip_id: str
    """Unique key of the AUDIO clip within its data set (the cache key); shared by Q&A records."""
    audio_path: Path
    """Resolved audio path; may not exist, in which case the record is in `missing`."""
    split: str
    """"train", "valid" or "test"."""
    texts: dict[str, str]
    """{"caption": ...} for captioning sets (MSD adds its four caption fields);
    {"question": ..., "answer": ...} for Q&A sets; {} for a plain folder of audio."""
    source: str
    """"<annotation file>:<line or row>", for messages that point a user at the row."""
    meta: dict = field(default_factory=dict)
    """Anything else a reader knows (tags, ytid, start_s, synth attribute/value...)."""


@dataclass
class Item:
    """One question about one clip, and its answer: what training learns from (the answer is the
    target text) and what generation asks (the answer is the reference it is scored against,
    when one is known). Built from `Record`s by training and scoring, or by hand."""

    id: str
    """Unique within its list: "<clip>:<k>", or the annotation row's "<file>:<row>"."""
    clip_id: str
    question: str | None = None
    """None for a stage-1 caption prompt, which asks no question."""
    answer: str | None = None
    audio_path: str | None = None
    """The clip's audio file (features computed online); None when only a cache is read."""
    audio_clip: str | None = None
    """The clip whose audio is heard (the shuffled-audio control's swap); None: `clip_id`."""
    meta: dict = field(default_factory=dict)

    @property
    def heard(self) -> str:
        return self.audio_clip or self.clip_id


@dataclass
class DatasetRecords:
    """Everything one reader call produced."""

    name: str
    records: list[Record]
    """Records whose audio file exists."""
    missing: list[Record]
    """Records whose audio file is absent: counted and reported, not fatal."""
    root: Path | None = None
    """The audio root the reader resolved paths against."""
    refused: list[tuple[Record, str]] = field(default_factory=list)
    """Records whose audio path leaves the audio root, with the reason (see `confine`)."""

    def clips(self) -> list[Record]:
        """One record per distinct clip_id (its first occurrence), in record order."""
        seen: set[str] = set()
        clips = []
        for record in self.records:
            if record.clip_id not in seen:
                seen.add(record.clip_id)
                clips.append(record)
        return clips

    def summary(self) -> str:
        """One line for logs: records, distinct clips, and missing audio."""
        return summary_line(self.name, len(self.records), len(self.clips()), len(self.missing),
                            len({r.clip_id for r in self.missing}), len(self.refused),
                            self.refused[0][1] if self.refused else "")

    def confine(self, allow_outside: bool = False) -> "DatasetRecords":
        """Move records whose audio path escapes `root` (an absolute path, or `..` that climbs
        out of it) to `refused`: an annotation file must not make us open /etc/passwd."""
        if allow_outside or self.root is None:
            return self
        guard = RootGuard(self.root)
        keep, keep_missing = [], []
        for bucket, out in ((self.records, keep), (self.missing, keep_missing)):
            for record in bucket:
                reason = guard.refusal(record.audio_path, record.source)
                if reason is None:
                    out.append(record)
                else:
                    self.refused.append((record, reason))
        self.records, self.missing = keep, keep_missing
        return self


def check_split(split: str | None) -> None:
    from musilingo.errors import UserError

    if split is not None and split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")


def summary_line(name: str, records: int, clips: int, missing: int, missing_clips: int,
                 refused: int, first_refusal: str) -> str:
    """The one log line about what a reader found (`DatasetRecords.summary`, and extraction's
    lean MSD clip list, which counts the same things without keeping the records)."""
    line = (f"{name}: {records} records over {clips} clips"
            f"; {missing} records ({missing_clips} clips) lack their audio file")
    if refused:
        line += f"; {refused} records point outside the audio root ({first_refusal})"
    return line


class RootGuard:
    """Why an audio path may not be opened: it leaves the audio root, as written (absolute, or
    `..` climbing out) or through a symlink. An annotation file must not make us open
    /etc/passwd."""

    def __init__(self, root: str | Path):
        self.root = Path(os.path.normpath(root))
        self._root_s = os.fspath(self.root)
        self._escapes = _SymlinkEscapes(self._root_s)

    def refusal(self, audio_path: str | Path, source: str) -> str | None:
        """The one-line reason `audio_path` (from annotation row `source`) is refused, or None."""
        path = os.path.normpath(audio_path)
        if not _under(path, self._root_s):
            why = "is outside"
        elif (target := self._escapes.target(path)) is not None:
            why = f"is a symlink to {target}, outside"
        else:
            return None
        return (f"{source}: audio path {audio_path} {why} --audio-root {self.root} (pass "
                "--allow-outside-root to permit it)")


def _under(path: str, root: str) -> bool:
    """`Path(root) in Path(path).parents or path == root`, for normalised paths, as a string
    prefix test: the same answer without a Path and its parents per record (520k: 25 s -> 1 s)."""
    return path == root or path.startswith(root if root.endswith(os.sep) else root + os.sep)


class _SymlinkEscapes:
    """Where a path under the audio root really leads when a symlink takes it outside: the
    folder's real path once per folder, and the file's own only when it is a link."""

    def __init__(self, root: str):
        self.real_root = os.path.realpath(root)
        self._folders: dict[str, str | None] = {}

    def _outside(self, real: str) -> bool:
        return not _under(real, self.real_root)

    def target(self, path: str) -> str | None:
        """The real path when it lies outside the root, else None."""
        folder = os.path.dirname(path)
        if folder not in self._folders:
            real = os.path.realpath(folder)
            self._folders[folder] = real if self._outside(real) else None
        if self._folders[folder] is not None:
            return os.path.join(self._folders[folder], os.path.basename(path))
        if os.path.islink(path):
            real = os.path.realpath(path)
            return real if self._outside(real) else None
        return None


class AudioLocator:
    """Existence checks and extension fallback for audio files, from cached directory listings."""

    def __init__(self) -> None:
        self._listings: dict[str, frozenset[str]] = {}

    def _names_in(self, directory: Path) -> frozenset[str]:
        key = os.fspath(directory)
        names = self._listings.get(key)
        if names is None:
            try:
                names = frozenset(os.listdir(key))
            except (FileNotFoundError, NotADirectoryError, PermissionError):
                names = frozenset()
            self._listings[key] = names
        return names

    def exists(self, path: Path) -> bool:
        return path.name in self._names_in(path.parent)

    def find(self, path: Path) -> Path:
        """`path` if it exists, else the same stem with another audio extension that exists,
        else `path` unchanged (so that a missing record still names the file it expected)."""
        if self.exists(path):
            return path
        names = self._names_in(path.parent)
        for extension in AUDIO_EXTENSIONS:
            candidate = path.with_name(path.stem + extension) if path.suffix else \
                path.with_name(path.name + extension)
            if candidate.name in names:
                return candidate
        return path


def partition(name: str, records: list[Record], locator: AudioLocator,
              root: Path | None = None) -> DatasetRecords:
    """Split records into those whose audio exists and those whose audio is missing."""
    present, missing = [], []
    for record in records:
        (present if locator.exists(record.audio_path) else missing).append(record)
    return DatasetRecords(name=name, records=present, missing=missing, root=root)


def audio_root_path(audio_root: str | Path | None, default: Path) -> Path:
    """The absolute audio root: the user's, or `default` (the annotation file's folder) if None.

    Absolute so that records stay valid if a later stage changes the working directory.
    """
    root = Path(audio_root).expanduser() if audio_root is not None else default
    return root.absolute()
