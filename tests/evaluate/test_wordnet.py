"""WordNet for METEOR prepared offline from Debian's wordnet-base files."""
from __future__ import annotations

from pathlib import Path

import pytest

from musilingo.evaluate.wordnet import (DEBIAN_WORDNET_DIR, LEXNAMES, lexnames_text,
                                        prepare_wordnet)
from musilingo.evaluate.wordnet_senses import build_sense_index


def test_lexnames_file_lists_the_45_lexicographer_files():
    lines = lexnames_text().splitlines()
    assert len(lines) == len(LEXNAMES) == 45
    assert lines[0] == "00\tadj.all\t3"
    assert lines[3] == "03\tnoun.Tops\t1"
    assert lines[29] == "29\tverb.body\t2"
    assert lines[44] == "44\tadj.ppl\t3"
    assert "02\tadv.all\t4" in lines


@pytest.mark.skipif(not (DEBIAN_WORDNET_DIR / "index.sense").is_file(),
                    reason="Debian's wordnet-sense-index is not installed to compare against")
def test_rebuilt_sense_index_equals_debians():
    built = build_sense_index(DEBIAN_WORDNET_DIR)
    with open(DEBIAN_WORDNET_DIR / "index.sense", encoding="latin-1") as fp:
        assert built == fp.readlines()


def test_prepare_copies_real_files_and_adds_lexnames(tmp_path, nltk_ready):
    source = tmp_path / "debian"
    source.mkdir()
    wordnet_dir = Path(nltk_ready.wordnet)
    # a fake source: the real files are big; symlinks prove the copy resolves links
    for name in ("data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb",
                 "index.adj", "index.adv", "noun.exc", "verb.exc", "adj.exc", "adv.exc",
                 "index.sense"):
        (source / name).symlink_to(wordnet_dir / name)
    dest = prepare_wordnet(tmp_path / "nltk_data", source)
    assert dest == tmp_path / "nltk_data" / "corpora" / "wordnet"
    assert not (dest / "data.noun").is_symlink()
    assert (dest / "data.noun").stat().st_size == (wordnet_dir / "data.noun").stat().st_size
    assert (dest / "lexnames").read_text() == lexnames_text()


def test_prepare_refuses_an_incomplete_source(tmp_path):
    (tmp_path / "data.noun").write_text("")
    with pytest.raises(FileNotFoundError, match="wordnet-base"):
        prepare_wordnet(tmp_path / "out", tmp_path)


def test_nltk_finds_wordnet_and_meteor_uses_synonyms(nltk_ready):
    from nltk.translate.meteor_score import meteor_score

    # "song" matches "vocal" only through WordNet synonyms (song.n.01 = song, vocal): one
    # match of one word scores 0.5 (fragmentation penalty 0.5 * 1^3); without WordNet, 0.
    assert meteor_score([["vocal"]], ["song"]) == pytest.approx(0.5)
    assert meteor_score([["violin"]], ["song"]) == 0.0
