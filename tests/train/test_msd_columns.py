"""LP-MusicCaps-MSD from a cache as Arrow columns (train/data.py `ColumnExamples`): the same
examples, checks, shard groups and losses as the record path, without a Python object per row."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from musilingo.errors import UserError
from musilingo.features.sources import CacheSource
from musilingo.train import run
from musilingo.train.config import DataSpec
from musilingo.train.data import ColumnExamples, build_trainset, example_lengths


def _msd(folder, ids, *, paths=None, captions=None):
    """LP-MusicCaps-MSD's columns for `ids` (the audio is never present: a training node)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(ids)
    text = captions or [f"caption {i}: a calm piece for clip {c}" for i, c in enumerate(ids)]
    pq.write_table(pa.table({
        "track_id": ids, "title": ids, "artist_name": ["a"] * n, "release": ["r"] * n,
        "year": [2000] * n, "tag": [["rock"]] * n, "caption_writing": text,
        "caption_summary": [t.upper() for t in text], "caption_paraphrase": text,
        "caption_attribute_prediction": text,
        "path": paths or [f"{i % 3}/{c}.clip.mp3" for i, c in enumerate(ids)]}),
        folder / "train.parquet")
    return folder


@pytest.fixture
def source(cache):
    from musilingo.cache import FeatureCache

    return CacheSource(FeatureCache.open(cache))


def _both(spec, stage, source, monkeypatch, fraction=1.0):
    columns = build_trainset(spec, stage, source, fraction)
    with monkeypatch.context() as m:            # the record path: a source without `groups`
        m.delattr(CacheSource, "groups")
        records = build_trainset(spec, stage, source, fraction)
    return columns, records


@pytest.mark.parametrize("stage", ["pretrain", "instruct"])
def test_columns_give_the_record_paths_examples(source, tmp_path, monkeypatch, stage):
    cached = source.cache.clip_ids
    ids = cached[:10] + ["TRnotcached1"] + cached[10:] + ["TRnotcached2"]
    ann = _msd(tmp_path / "msd", ids)
    spec = DataSpec(name="msd", annotations=str(ann), audio_root=str(tmp_path / "audio"),
                    split="train", question="Describe it." if stage == "instruct" else None)
    columns, records = _both(spec, stage, source, monkeypatch)
    assert isinstance(columns.examples, ColumnExamples)
    assert isinstance(records.examples, list)
    assert len(columns.examples) == len(records.examples) == len(cached)
    def key(it):  # what training reads (columns do not materialise the other MSD columns)
        return it.id, it.clip_id, it.question, it.answer, it.audio_path, it.meta["source"]

    assert [key(e) for e in columns.examples] == [key(e) for e in records.examples]
    assert columns.skipped == records.skipped == 2
    assert columns.missing_ids == records.missing_ids == ["TRnotcached1", "TRnotcached2"]
    assert list(columns.examples.groups) == [source.group(e.clip_id) for e in records.examples]
    assert columns.examples[0].answer.startswith("caption 0:")   # caption_writing, not summary
    # group_by_length reads the lengths from the columns, equal to the items' own.
    assert (example_lengths(columns.examples).tolist()
            == example_lengths(records.examples).tolist())
    picked = columns.examples.select([2, 0])
    assert [e.id for e in picked] == [records.examples[2].id, records.examples[0].id]


def test_paths_leaving_the_root_and_bad_rows_are_refused_alike(source, tmp_path, monkeypatch):
    ids = source.cache.clip_ids[:6]
    paths = ["a/x.mp3", "../outside.mp3", "/etc/passwd.mp3", "b/../c/y.mp3", "d/e.mp3",
             "a/..b.mp3"]
    spec = DataSpec(name="msd", annotations=str(_msd(tmp_path / "msd", ids, paths=paths)),
                    audio_root=str(tmp_path / "audio"), split="train")
    columns, records = _both(spec, "pretrain", source, monkeypatch)
    assert [e.clip_id for e in columns.examples] == [e.clip_id for e in records.examples]
    assert [e.clip_id for e in columns.examples] == [ids[0], ids[3], ids[4], ids[5]]
    bad = _msd(tmp_path / "bad", ids, captions=["ok"] * 3 + ["  "] + ["ok"] * 2)
    spec = DataSpec(name="msd", annotations=str(bad), split="train")
    with pytest.raises(UserError, match=r"bad:train:4: column 'caption_writing' is '  '"):
        build_trainset(spec, "pretrain", source, 1.0)


def test_training_on_msd_columns_gives_the_record_paths_losses(make_cfg, source, tmp_path,
                                                               monkeypatch):
    """The whole trainer, shard-aware shuffle and held-out validation included."""
    ann = _msd(tmp_path / "msd", source.cache.clip_ids)
    kw = dict(datasets=[{"name": "msd", "annotations": str(ann),
                         "audio_root": str(tmp_path / "audio")}],
              max_steps=3, shuffle="shards", val_fraction=0.25, val_every=3)
    quiet = lambda *a, **k: None  # noqa: E731
    columns = run(make_cfg(out=str(tmp_path / "columns"), **kw), log=quiet)
    monkeypatch.delattr(CacheSource, "groups")
    records = run(make_cfg(out=str(tmp_path / "records"), **kw), log=quiet)
    assert columns.losses == records.losses and columns.val_best == records.val_best
