"""Rebuild WordNet 3.0's `index.sense` from its data, index and cntlist.rev files.

Why: nltk's WordNet reader opens `index.sense` while it loads (to map sense keys between WordNet
versions), so a WordNet folder without it cannot even look up a synset. Debian ships the file in
a separate package (`wordnet-sense-index`); when only `wordnet-base` is installed we derive it.
The format is WordNet's senseidx(5WN): one line per sense, sorted by sense key,

    lemma%ss_type:lex_filenum:lex_id:head_word:head_id synset_offset sense_number tag_cnt

where ss_type is 1 noun, 2 verb, 3 adjective, 4 adverb, 5 adjective satellite; head_word/head_id
are only set for satellites (the first word of the head synset its `&` pointer leads to);
sense_number is the synset's 1-based position in the lemma's line of index.<pos>; tag_cnt comes
from cntlist.rev (0 when absent). The test suite checks the result against Debian's own file.
"""
from __future__ import annotations

import re
from pathlib import Path

_SS_TYPE = {"n": 1, "v": 2, "a": 3, "r": 4, "s": 5}
_POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
# Adjectives may carry a syntactic marker in data.adj, e.g. "aforesaid(a)"; sense keys omit it.
_ADJ_MARKER = re.compile(r"\([a-z]+\)$")
_HEAD_MARKER = re.compile(r"\([a-z]+\):(?=\d\d$)")


def _data_lines(path: Path):
    with open(path, encoding="latin-1") as fp:  # WordNet 3.0 files are ASCII; be lenient
        for line in fp:
            if not line.startswith("  "):  # the licence header lines start with two spaces
                yield line


def _parse_synset(line: str):
    """(offset, lex_filenum, ss_type, [(raw word, lex_id)], [(pointer, target_offset)]).

    A raw word keeps its adjective marker: cntlist.rev keeps it in satellites' head words."""
    fields = line.split(" | ")[0].split()
    offset, lex_filenum, ss_type = fields[0], fields[1], fields[2]
    n_words = int(fields[3], 16)
    words = []
    for i in range(n_words):
        words.append((fields[4 + 2 * i], int(fields[5 + 2 * i], 16)))
    at = 4 + 2 * n_words
    n_pointers = int(fields[at])
    pointers = [(fields[at + 1 + 4 * i], fields[at + 2 + 4 * i]) for i in range(n_pointers)]
    return offset, lex_filenum, ss_type, words, pointers


def _sense_numbers(root: Path) -> dict[tuple[str, str, str], int]:
    """(lemma, pos, offset) -> 1-based sense number, from the index.<pos> files."""
    numbers = {}
    for pos, name in _POS_FILES.items():
        for line in _data_lines(root / f"index.{name}"):
            fields = line.split()
            lemma, n_synsets, n_pointers = fields[0], int(fields[2]), int(fields[3])
            offsets = fields[6 + n_pointers:6 + n_pointers + n_synsets]
            for number, offset in enumerate(offsets, start=1):
                numbers[(lemma, pos, offset)] = number
    return numbers


def _tag_counts(root: Path) -> dict[str, int]:
    path = root / "cntlist.rev"
    if not path.is_file():
        return {}
    counts = {}
    with open(path, encoding="latin-1") as fp:
        for line in fp:
            key, _number, count = line.split()
            # cntlist.rev sometimes keeps an adjective marker in a satellite's head word
            # ("last%5:00:00:dying(a):00") where index.sense never does.
            counts[_HEAD_MARKER.sub(":", key)] = int(count)
    return counts


def build_sense_index(root: Path) -> list[str]:
    """The lines (with newlines) of index.sense for the WordNet database in folder `root`."""
    synsets = {}  # (pos, offset) -> parsed synset; adjective satellites live in data.adj
    for pos, name in _POS_FILES.items():
        for line in _data_lines(root / f"data.{name}"):
            parsed = _parse_synset(line)
            synsets[(pos, parsed[0])] = parsed
    numbers = _sense_numbers(root)
    counts = _tag_counts(root)
    lines = {}  # sense key -> line
    for (pos, offset), (_, lex_filenum, ss_type, words, pointers) in synsets.items():
        head = ":"
        if ss_type == "s":
            head_offset = next(target for symbol, target in pointers if symbol == "&")
            raw_head, head_id = synsets[("a", head_offset)][3][0]
            head = f"{_ADJ_MARKER.sub('', raw_head).lower()}:{head_id:02d}"
        seen = set()  # a synset listing "Earth" and "earth" has one sense: the first one's
        for raw_word, lex_id in words:
            lemma = _ADJ_MARKER.sub("", raw_word).lower()
            if lemma in seen:
                continue
            seen.add(lemma)
            key = f"{lemma}%{_SS_TYPE[ss_type]}:{lex_filenum}:{lex_id:02d}:{head}"
            number = numbers.get((lemma, pos, offset), 0)
            lines[key] = f"{key} {offset} {number} {counts.get(key, 0)}\n"
    return [lines[key] for key in sorted(lines)]


def write_sense_index(root: Path, dest: Path) -> Path:
    """Write index.sense built from `root` to `dest` (a file path); returns `dest`."""
    dest.write_text("".join(build_sense_index(root)), encoding="utf-8")
    return dest
