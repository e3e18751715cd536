"""Training items and batch plans: mixing, rank shares, segment choice and concatenation."""
from __future__ import annotations

import numpy as np
import pytest

from musilingo.errors import UserError
from musilingo.train.config import DataSpec
from musilingo.cache import FeatureCache
from musilingo.features.sources import CacheSource
from musilingo.data import Item
from musilingo.train.data import (build_trainset, epoch_plan, example_features,
                                  example_lengths, length_grouped, mixing_probs, segment_choice)


def test_epoch_plan_is_deterministic_and_mixes_as_asked():
    sizes = [10, 1000]
    equal = epoch_plan(sizes, mixing_probs(sizes, "equal"), 400, 4, seed=1, epoch=0)
    again = epoch_plan(sizes, mixing_probs(sizes, "equal"), 400, 4, seed=1, epoch=0)
    assert all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(equal, again))
    share = np.mean([d == 0 for d, _ in equal])
    assert 0.4 < share < 0.6                      # each batch from one set, equal probability
    prop = epoch_plan(sizes, mixing_probs(sizes, "proportional"), 400, 4, seed=1, epoch=0)
    assert np.mean([d == 0 for d, _ in prop]) < 0.05
    # Every batch has global-micro examples of its own set; a small set is cycled through
    # complete reshuffled passes (each example once per pass).
    small = np.concatenate([idx for d, idx in equal if d == 0])
    assert all(len(idx) == 4 for _, idx in equal) and small.max() < 10
    first_pass = small[:10]
    assert sorted(first_pass.tolist()) == list(range(10))
    other_epoch = epoch_plan(sizes, mixing_probs(sizes, "equal"), 400, 4, seed=1, epoch=1)
    assert [d for d, _ in other_epoch] != [d for d, _ in equal]
    with pytest.raises(UserError):
        mixing_probs(sizes, "weighted", [0, 0])
    assert mixing_probs(sizes, "weighted", [3, 1]).tolist() == [0.75, 0.25]


def test_group_by_length_cuts_padding_and_keeps_every_example():
    """Length grouping only changes who shares a batch: every example still comes once per pass,
    batches are near-uniform in length (padding falls), the plan is a pure function of the seed,
    and runs of micro-batches are not sorted end to end (short-to-long would bias the steps)."""
    rng = np.random.default_rng(0)
    n, micro = 640, 8
    lengths = rng.integers(10, 200, n)
    plain = epoch_plan([n], np.array([1.0]), n // micro, micro, seed=3, epoch=0)
    grouped = epoch_plan([n], np.array([1.0]), n // micro, micro, seed=3, epoch=0,
                         lengths=[lengths])
    again = epoch_plan([n], np.array([1.0]), n // micro, micro, seed=3, epoch=0,
                       lengths=[lengths])
    assert [b.tolist() for _, b in grouped] == [b.tolist() for _, b in again]
    assert sorted(np.concatenate([b for _, b in grouped]).tolist()) == list(range(n))

    def padding(plan):
        return sum(int((lengths[b].max() - lengths[b]).sum()) for _, b in plan) / lengths.sum()
    assert padding(grouped) < 0.1 * padding(plain)
    # A run's examples are those the uniform order put there; its batches are shuffled.
    run = 32 * micro
    order = np.concatenate([b for _, b in plain])
    regrouped = np.concatenate([b for _, b in grouped])
    assert set(order[:run].tolist()) == set(regrouped[:run].tolist())
    maxima = [int(lengths[b].max()) for _, b in grouped[:32]]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)
    # A tail shorter than a micro-batch stays at the end; nothing is lost or repeated.
    tail = length_grouped(np.arange(13), lengths[:13], 4, np.random.default_rng(1), run=2)
    assert sorted(tail.tolist()) == list(range(13))
    assert lengths[tail[-1]] == lengths[8:13].max()  # the tail: the last run's longest
    items = [Item("s", "c", "a question?", "an answer")]
    assert example_lengths(items).tolist() == [len("a question?") + len("an answer")]


def test_four_option_questions_train_on_the_scored_layout(synth, cache):
    """A MuChoMusic row marked train becomes MuChoMusic's prompt, its options in the order
    `score` gives a question (seed 0, key "<clip>:<n>"), and the right option's text as the
    target, which the benchmark's rule reads as the right option."""
    from musilingo.data import read_dataset
    from musilingo.data.items import mcq_prompt, shuffled_options
    from musilingo.evaluate.mcq import read_choice

    src = CacheSource(FeatureCache.open(cache))
    spec = DataSpec(name="muchomusic", annotations=str(synth / "mcq.csv"), split="train")
    ts = build_trainset(spec, "instruct", src, 0.0)
    records = read_dataset("muchomusic", synth / "mcq.csv", None, split="train").records
    assert ts.skipped == 0 and len(ts.examples) == len(records) == 16 * 4
    seen = {}
    for ex, r in zip(ts.examples, records):
        n = seen[r.clip_id] = seen.get(r.clip_id, -1) + 1
        options, right = shuffled_options(r.texts["answer"], r.meta["distractors"], 0,
                                          key=f"{r.clip_id}:{n}")
        assert ex.question == mcq_prompt(r.texts["question"], options)
        assert ex.answer == r.texts["answer"] and read_choice(ex.answer, options) == right
    assert len({ex.question for ex in ts.examples}) > 32     # each question its own order


def test_random_segment_per_epoch_and_concat(synth, cache_2seg):
    src = CacheSource(FeatureCache.open(cache_2seg))
    ts = build_trainset(DataSpec(name="synth", annotations=str(synth / "captions.csv")),
                        "pretrain", src, 0.0)
    ex = ts.examples[0]
    assert len(src.segments(ex.clip_id)) == 2
    segs = [src.segments(ex.clip_id)[i] for i in range(2)]
    assert [s.counts.tolist() for s in segs] == [[65, 47], [65, 47]]
    picks = {segment_choice(0, e, ex.clip_id, 2) for e in range(20)}
    assert picks == {0, 1}                         # a different crop across epochs
    f, c = example_features(ex, src, mode="random", seed=0, epoch=3, factor=2, max_audio_tokens=9)
    k = segment_choice(0, 3, ex.clip_id, 2)
    assert np.array_equal(f, segs[k].features) and np.array_equal(c, segs[k].counts)
    # concat with t = 3 x stride: each segment padded to whole tokens, never merged across.
    f, c = example_features(ex, src, mode="concat", seed=0, epoch=0, factor=3, max_audio_tokens=9)
    assert c.tolist() == [65, 47, 0, 65, 47, 0]
    assert np.array_equal(f[:, 3:5], segs[1].features) and not f[:, 2].any()
    f, c = example_features(ex, src, mode="concat", seed=0, epoch=0, factor=1, max_audio_tokens=3)
    assert c.tolist() == [65, 47, 65]


def test_rows_without_features_are_counted(synth, cache):
    src = CacheSource(FeatureCache.open(cache))
    ts = build_trainset(DataSpec(name="synth", annotations=str(synth)), "instruct", src, 0.0)
    assert ts.skipped == 0 and len(ts.examples) == 112
    ex = Item("f:1", "nope", None, "x", audio_path="/nowhere.wav")
    assert not src.has(ex.clip_id)


@pytest.fixture(scope="module")
def sharded(synth, tmp_path_factory):
    """The synthetic set extracted into 2-row shards."""
    from musilingo.data import read_dataset
    from musilingo.extract.job import ExtractConfig, run_extract
    from musilingo.extract.plan import clip_list

    out = tmp_path_factory.mktemp("sharded") / "sharded.zarr"
    run_extract(clip_list(read_dataset("synth", synth, None)),
                ExtractConfig(out=str(out), stride=65, segment_seconds=3.0, shard_rows=2,
                              decode_workers=0, progress=False), {"name": "synth"},
                log=lambda *_: None)
    return out


def test_shard_aware_shuffle_fetches_each_shard_once_per_epoch(synth, sharded):
    """shuffle=shards with shard reads: one epoch reads every cache byte once; the uniform shuffle
    through the same 2-shard LRU reads most shards several times. Shard reads return exactly
    what row reads return."""
    from musilingo.train.data import shard_aware_order

    out = sharded
    spec = DataSpec(name="synth", annotations=str(synth / "captions.csv"))

    def epoch(groups):
        src = CacheSource(FeatureCache.open(out), shard_reads=True, keep_shards=2)
        ts = build_trainset(spec, "pretrain", src, 0.0)
        g = [np.array([src.group(e.clip_id) for e in ts.examples])] if groups else None
        n = len(ts.examples)
        plan = epoch_plan([n], np.array([1.0]), n // 4, 4, seed=0, epoch=0, groups=g, window=2)
        order = np.concatenate([idx for _, idx in plan])
        assert sorted(order.tolist()) == list(range(n))            # every example once
        feats = {ts.examples[j].clip_id: example_features(ts.examples[j], src, mode="random",
                                                          seed=0, epoch=0, factor=2,
                                                          max_audio_tokens=8)[0] for j in order}
        return src.cache.fetched_bytes, feats, order, g

    cache = FeatureCache.open(out)
    total = sum(cache._features[r].nbytes for r in range(cache.num_rows))
    fetched, feats, order, groups = epoch(True)
    assert fetched == total                                         # each shard exactly once
    shards = groups[0][order]
    assert all(len(set(shards[i:i + 4])) <= 2 for i in range(0, len(shards), 4))
    uniform, feats_u, _, _ = epoch(False)
    assert uniform >= 1.5 * total
    for clip, f in feats.items():                                   # shard reads = row reads
        assert np.array_equal(f, cache.segments(clip)[0].features) and np.array_equal(f, feats_u[clip])
    rng = np.random.default_rng(0)
    assert sorted(shard_aware_order(rng, np.array([3, 3, 1, 1, 2]), 2).tolist()) == [0, 1, 2, 3, 4]


def test_dataloader_workers_divide_the_shards_between_them(synth, sharded):
    """With lanes = 2 (two DataLoader workers), worker k gets micro-batches k, k + 2, ... and they
    draw only on its own shards: the two workers together read every shard once per epoch, also
    when the loader starts mid-epoch (a resume), where one shared lane order would read most
    shards twice."""
    spec = DataSpec(name="synth", annotations=str(synth / "captions.csv"))
    cache = FeatureCache.open(sharded)
    total = sum(cache._features[r].nbytes for r in range(cache.num_rows))

    def fetched(lanes, start=0):
        readers = [CacheSource(FeatureCache.open(sharded), shard_reads=True, keep_shards=3)
                   for _ in range(2)]
        ts = build_trainset(spec, "pretrain", readers[0], 0.0)
        g = [np.array([readers[0].group(e.clip_id) for e in ts.examples])]
        n = len(ts.examples)
        plan = epoch_plan([n], np.array([1.0]), n // 2, 2, seed=0, epoch=0, groups=g, window=2,
                          lanes=lanes)
        for i in range(start, len(plan)):
            worker = readers[(i - start) % 2]            # the DataLoader's hand-out
            for j in plan[i][1]:
                example_features(ts.examples[j], worker, mode="random", seed=0, epoch=0,
                                 factor=2, max_audio_tokens=8)
            if lanes == 2:
                assert {int(g[0][j]) % 2 for j in plan[i][1]} == {i % 2}
        return sum(r.cache.fetched_bytes for r in readers), plan

    together, plan = fetched(2)
    assert together <= total                       # no shard read by both workers
    assert fetched(2, start=3)[0] <= total         # resumed at an odd micro-batch: still once
    shared, _ = fetched(1)
    assert shared >= 1.3 * total                   # one order for both: shards read twice
    again = epoch_plan([len(plan) * 2], np.array([1.0]), 4, 2, seed=0, epoch=0)
    assert [x.tolist() for _, x in again] == [x.tolist() for _, x in epoch_plan(
        [len(plan) * 2], np.array([1.0]), 4, 2, seed=0, epoch=0, lanes=2)]  # rows: no lanes


def test_readahead_reads_the_next_shards_in_the_background_once(synth, sharded):
    """`expect` starts reads of upcoming shards on another thread; every shard is still fetched
    once per epoch, and the features are exactly those of plain shard reads."""
    import threading

    cache = FeatureCache.open(sharded)
    ids = [c for c in cache.plan.clip_id if cache.has(c)]
    order = sorted(ids, key=lambda c: cache.rows(c)[0])     # shard by shard, as after a shuffle

    def epoch(readahead):
        src = CacheSource(FeatureCache.open(sharded), shard_reads=True, keep_shards=2,
                          readahead=readahead)
        threads = []
        read = src.cache.read_shard
        src.cache.read_shard = lambda s: (threads.append(threading.current_thread().name),
                                          read(s))[1]
        feats = {}
        for i, clip in enumerate(order):
            src.expect(order[i + 1:i + 5])
            feats[clip] = src.segments(clip)[0].features
        return src.cache.fetched_bytes, feats, threads

    plain_bytes, plain, plain_threads = epoch(0)
    ahead_bytes, ahead, ahead_threads = epoch(2)
    total = sum(cache._features[r].nbytes for r in range(cache.num_rows))
    assert plain_bytes == ahead_bytes == total                      # no shard read twice
    assert all(np.array_equal(plain[c], ahead[c]) for c in order)
    assert not any(t.startswith("shard-readahead") for t in plain_threads)
    background = sum(t.startswith("shard-readahead") for t in ahead_threads)
    assert background >= len(ahead_threads) - 1                     # all but the very first


def test_one_set_of_dataloader_workers_serves_every_epoch(make_cfg, tmp_path, monkeypatch):
    """Before: the DataLoader (and its workers: a remote cache re-opened, torch re-imported)
    was rebuilt every epoch. Now one loader spans the run; its worker persists."""
    import os

    from musilingo.train import run
    from musilingo.train.data import RunBatches

    seen = tmp_path / "seen.txt"
    original = RunBatches.__getitem__

    def noting(self, g):  # runs in the (forked) worker
        with open(seen, "a") as f:
            f.write(f"{os.getpid()} {int(g) // self.per_epoch}\n")
        return original(self, g)

    monkeypatch.setattr(RunBatches, "__getitem__", noting)
    cfg = make_cfg(out=str(tmp_path / "run"), num_workers=1, batch_size=4, steps_per_epoch=2,
                   max_steps=5)
    run(cfg, log=lambda *a, **k: None)
    rows = [line.split() for line in seen.read_text().splitlines()]
    assert {e for _, e in rows} == {"0", "1", "2"}              # three epochs were read
    assert len({pid for pid, _ in rows}) == 1 and rows[0][0] != str(os.getpid())
