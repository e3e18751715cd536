"""Training examples: annotation rows joined with pooled features, mixed into batches.

Each training example is an `Item` made by data/items.py, as scoring and the demo make theirs:
one target text (a caption, an answer with its question, or a four-option question's right
option) about one clip.
Features come from a `musilingo.features.sources.FeatureSource`, the one protocol inference uses
too: `CacheSource` reads a clip's segments from the Zarr cache (`musilingo extract`),
`EncoderSource` runs the frozen encoder on the clip's audio each time (the reference code's way).
Everything after that - segment choice, the joining rule, collation, the model - is shared, so
the two modes differ only in where a segment's window means come from.

A clip cut into several segments gives one segment per epoch, chosen at random (the paper's
random crop of a 30 s clip, recovered from the cache), or its segments in order, concatenated up
to `max_audio_tokens` (each segment re-pooled on its own: its short last window never merges with
the next segment's first).

Batches: every global micro-batch (batch_size x processes examples) comes from one data set,
drawn with equal probability (paper), in proportion to size, or by weight; each data set is
walked through its own shuffled order, reshuffled whenever it is used up. The whole plan is a
pure function of (seed, epoch), so every process computes the same plan without communication,
and a resumed run continues from a micro-batch index.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.items import CAPTION_QUESTION, occurrences, record_item, record_items
from ..data.records import Item, Record
from ..errors import UserError
from ..features import join_segments
from ..features.sources import FeatureSource
from ..models.prompts import PromptTemplate, tokenize_example


@dataclass
class TrainSet:
    name: str
    examples: "list[Item] | ColumnExamples"
    features: FeatureSource
    skipped: int       # annotation rows with no features
    missing_ids: list[str]


class ColumnExamples(Sequence):
    """Examples kept as their annotation columns (Arrow, memory-mapped by `datasets`) plus three
    index arrays: an `Item` is made (by `record_item`, as for every other data set) only when a
    batch asks for it. LP-MusicCaps-MSD's 520k rows as Python Records and Items cost ~1.3 GB per
    rank; this costs the index arrays. Order: the annotation rows in file order; `k` is each
    row's rank among its clip's rows (the item id's), `groups` its cache shard."""

    def __init__(self, parts: list, part: np.ndarray, row: np.ndarray, k: np.ndarray,
                 question: str | None, groups: np.ndarray):
        self.parts, self.part, self.row, self.k, self.question = parts, part, row, k, question
        self.groups = groups

    def __len__(self) -> int:
        return len(self.row)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        c, r = self.parts[int(self.part[i])], int(self.row[i])
        record = Record(c.track_id[r].as_py(), c.root / c.path[r].as_py(), c.where.rsplit(":")[-1],
                        {"caption": c.caption[r].as_py()}, f"{c.where}:{r + 1}")
        return record_item(record, int(self.k[i]), question=self.question)

    def clip_ids(self) -> list[str]:
        return [self.parts[int(p)].track_id[int(r)].as_py() for p, r in zip(self.part, self.row)]

    def select(self, idx) -> "ColumnExamples":
        idx = np.asarray(idx, dtype=np.int64)
        return ColumnExamples(self.parts, self.part[idx], self.row[idx], self.k[idx],
                              self.question, self.groups[idx])


def clip_ids_of(examples) -> list[str]:
    return examples.clip_ids() if isinstance(examples, ColumnExamples) else \
        [e.clip_id for e in examples]


def subset(examples, idx):
    """The examples at `idx`, of the same kind (a list, or columns)."""
    if isinstance(examples, ColumnExamples):
        return examples.select(idx)
    return [examples[int(i)] for i in idx]


def caption_question(stage: str, spec) -> str | None:
    """What caption records are asked: nothing in stage 1 (the caption template), the data
    set's `question` or the reference code's caption question in stage 2."""
    return None if stage == "pretrain" else (spec.question or CAPTION_QUESTION)


def build_trainset(spec, stage: str, features, max_missing_fraction: float) -> TrainSet:
    """Read one data set and join it with its features (rows without features are counted).

    Four-option records train on MuChoMusic's prompt with the options in the order `musilingo
    score` gives them (seed 0), and on the right option's text as the reply (data/items.py)."""
    from ..data import read_dataset

    if spec.name == "msd" and not features.online and hasattr(features, "groups"):
        return _msd_from_cache(spec, stage, features, max_missing_fraction)
    dr = read_dataset(spec.name, spec.annotations, spec.audio_root, split=spec.split,
                      caption_field=spec.caption_field)
    # A cache does not need the audio any more: rows whose audio file is absent still train.
    rows = dr.records + (dr.missing if not features.online else [])
    examples, missing = [], []
    for ex in record_items(rows, question=caption_question(stage, spec)):
        (examples if features.has(source_key(features, ex)) else missing).append(ex)
    if features.online:
        missing += [Item(r.source, r.clip_id, None, "", audio_path=str(r.audio_path))
                    for r in dr.missing]
    missing_ids = sorted({m.clip_id for m in missing})
    _check_coverage(spec, features, len(examples), len(missing), missing_ids,
                    max_missing_fraction)
    return TrainSet(spec.name, examples, features, len(missing), missing_ids)


def _check_coverage(spec, features, n_examples: int, n_missing: int, missing_ids: list,
                    max_missing_fraction: float) -> None:
    total = n_examples + n_missing
    where = f"data set {spec.name} ({spec.annotations}, split {spec.split})"
    if total == 0:
        raise UserError(f"{where} has no records: check the annotation path and the split")
    if not n_examples:
        raise UserError(f"{where}: none of its {total} rows has features "
                        f"({'no audio file' if features.online else 'clip not in the cache'}); "
                        "extract the cache from this data set first")
    frac = n_missing / total
    if frac > max_missing_fraction:
        raise UserError(f"{where}: {n_missing} of {total} rows ({frac:.1%}) have no features "
                        f"(first clips: {', '.join(missing_ids[:5])}); more than "
                        f"max_missing_fraction={max_missing_fraction}: extract them, or raise "
                        "max_missing_fraction")


def _msd_from_cache(spec, stage: str, features, max_missing_fraction: float) -> TrainSet:
    """LP-MusicCaps-MSD joined with a cache as columns (`ColumnExamples`): the same examples,
    ids, targets, coverage checks and shard groups as the record path, without a Python object
    per row."""
    import pyarrow as pa

    from ..data.msd import msd_columns

    parts = msd_columns(spec.annotations, spec.audio_root, split=spec.split,
                        caption_field=spec.caption_field)
    ids = [c.track_id.take(pa.array(c.rows)) for c in parts]
    # Each row's k (its rank among its clip's rows), from Arrow's dictionary codes of the ids.
    flat = [(i.combine_chunks() if isinstance(i, pa.ChunkedArray) else i).cast(pa.string())
            for i in ids]
    k = (occurrences(pa.concat_arrays(flat).dictionary_encode().indices.to_numpy())
         if flat else np.zeros(0, np.int64))
    part, row, ks, groups, missing = [], [], [], [], set()
    n_missing, offset = 0, 0
    for i, (c, c_ids) in enumerate(zip(parts, ids)):
        g = np.asarray(features.groups(c_ids))
        has = g >= 0
        part.append(np.full(int(has.sum()), i, dtype=np.int8))
        row.append(c.rows[has])
        ks.append(k[offset:offset + len(has)][has])
        groups.append(g[has])
        offset += len(has)
        n_missing += int((~has).sum())
        if not has.all():
            missing.update(c_ids.filter(pa.array(~has)).to_pylist())
    empty = np.zeros(0, np.int64)
    examples = ColumnExamples(parts, np.concatenate(part) if part else np.zeros(0, np.int8),
                              np.concatenate(row) if row else empty,
                              np.concatenate(ks) if ks else empty, caption_question(stage, spec),
                              np.concatenate(groups) if groups else empty)
    missing_ids = sorted(missing)
    _check_coverage(spec, features, len(examples), n_missing, missing_ids, max_missing_fraction)
    return TrainSet(spec.name, examples, features, n_missing, missing_ids)


# ------------------------------------------------------------------------------ batch plan
def _rng(*key) -> np.random.Generator:
    return np.random.default_rng([int(k) & 0xFFFFFFFF for k in key])


def mixing_probs(sizes: list[int], mixing: str, weights: list[float] | None = None) -> np.ndarray:
    if mixing == "equal":
        p = np.ones(len(sizes))
    elif mixing == "proportional":
        p = np.asarray(sizes, dtype=np.float64)
    elif mixing == "weighted":
        p = np.asarray(weights, dtype=np.float64)
        if (p < 0).any() or p.sum() <= 0:
            raise UserError("data-set weights must be non-negative and not all zero")
    else:
        raise UserError(f"mixing {mixing!r}: use equal, proportional or weighted")
    return p / p.sum()


def shard_aware_order(rng: np.random.Generator, groups: np.ndarray, window: int) -> np.ndarray:
    """A permutation of the examples that visits cache shards in a random order, `window` shards
    at a time, and shuffles the examples within each window: each shard is read about once per
    epoch (a remote cache's access pattern), while batches still mix `window` shards."""
    shards, shard_of = np.unique(groups, return_inverse=True)
    place = np.empty(len(shards), dtype=np.int64)
    place[rng.permutation(len(shards))] = np.arange(len(shards))   # each shard's turn
    # Sorted by window, then by a random key within it: O(n log n) for 520k examples.
    return np.lexsort((rng.random(len(groups)), place[shard_of] // window))


LENGTH_RUN = 32  # micro-batches whose examples are sorted by length together


def length_grouped(order: np.ndarray, lengths: np.ndarray, global_micro: int,
                   rng: np.random.Generator, run: int = LENGTH_RUN) -> np.ndarray:
    """`order` regrouped so that each global micro-batch holds examples of similar length.

    Runs of `run` micro-batches of the order are sorted by length (ties in random order), cut
    into micro-batches, and those are shuffled within the run: the examples of a run stay the
    ones a uniform order put there (so shards and epochs mix as before), only who shares a batch
    changes, and the batches' lengths do not rise or fall through the run."""
    out = np.empty_like(order)
    span = run * global_micro
    for start in range(0, len(order), span):
        part = order[start:start + span]
        part = part[np.lexsort((rng.random(len(part)), lengths[part]))]
        blocks = [part[i:i + global_micro] for i in range(0, len(part), global_micro)]
        full = len(blocks) - (len(blocks[-1]) < global_micro)  # a short tail stays last
        perm = list(rng.permutation(full)) + list(range(full, len(blocks)))
        out[start:start + len(part)] = np.concatenate([blocks[i] for i in perm])
    return out


def example_lengths(examples) -> np.ndarray:
    """A cheap proxy of each example's text length, for group_by_length: the characters of its
    question and target (no tokeniser: LP-MusicCaps-MSD's 520k rows cost one Arrow pass)."""
    if isinstance(examples, ColumnExamples):
        import pyarrow.compute as pc

        per_part = [pc.utf8_length(c.caption).to_numpy(zero_copy_only=False) for c in
                    examples.parts]
        q = len(examples.question or "")
        return np.array([per_part[p][r] + q for p, r in zip(examples.part, examples.row)],
                        dtype=np.int64) if len(examples) else np.zeros(0, np.int64)
    return np.array([len(e.question or "") + len(e.answer or "") for e in examples],
                    dtype=np.int64)


def epoch_plan(sizes: list[int], probs: np.ndarray, micro_batches: int, global_micro: int,
               seed: int, epoch: int, groups: list | None = None, window: int = 4,
               lanes: int = 1, lengths: list | None = None) -> list[tuple[int, np.ndarray]]:
    """[(data set, example indices of one global micro-batch)] for one epoch.

    `groups[d]` (the cache shard of each example of data set d, or None) switches data set d to
    the shard-aware order; without it every order is a uniform permutation (the paper's).

    `lanes` (the DataLoader's worker count) divides a shard-aware data set's shards between the
    workers: micro-batch i draws only on shards s with s % lanes == i % lanes. A DataLoader hands
    item i to worker (i - first item) % lanes, always the same worker for a lane, so each worker
    reads only its own shards and no shard is fetched by two workers. Each lane runs through its
    own shard-aware order (lanes = 1: the order of one process).

    `lengths[d]` (each example's text length, or None) regroups every order of data set d by
    length (`length_grouped`), with its own random stream: without it the plan is unchanged."""
    choice = _rng(seed, epoch, 1).choice(len(sizes), size=micro_batches, p=probs)
    members = [_lane_members(groups[d] if groups is not None else None, lanes)
               for d in range(len(sizes))]
    cursor = [[0] * len(m) for m in members]
    orders: list[list[list[np.ndarray]]] = [[[] for _ in m] for m in members]
    plan = []
    for i, d in enumerate(choice):
        lane = i % len(members[d])
        mine = members[d][lane]  # None: every example of d
        n = sizes[d] if mine is None else len(mine)
        out = []
        while len(out) < global_micro:
            k, pos = divmod(cursor[d][lane], n)
            lane_orders = orders[d][lane]
            while len(lane_orders) <= k:
                key = (seed, epoch, 2, d, len(lane_orders)) + ((lane,) if mine is not None else ())
                rng = _rng(*key)
                g = groups[d] if groups is not None else None
                if g is None:
                    lane_orders.append(rng.permutation(n))
                elif mine is None:
                    lane_orders.append(shard_aware_order(rng, np.asarray(g), window))
                else:
                    lane_orders.append(mine[shard_aware_order(rng, np.asarray(g)[mine], window)])
                if lengths is not None and lengths[d] is not None:
                    lane_orders[-1] = length_grouped(lane_orders[-1], np.asarray(lengths[d]),
                                                     global_micro, _rng(*key, 3))
            take = min(global_micro - len(out), n - pos)
            out.extend(lane_orders[k][pos:pos + take])
            cursor[d][lane] += take
        plan.append((int(d), np.asarray(out)))
    return plan


def _lane_members(groups, lanes: int) -> list:
    """[None] (one lane: all examples), or per lane the examples whose shard falls in it; one
    lane when there are no groups or too few shards to give every lane one."""
    if groups is None or lanes <= 1:
        return [None]
    shard = np.asarray(groups)
    out = [np.flatnonzero(shard % lanes == lane) for lane in range(lanes)]
    return out if all(len(m) for m in out) else [None]


def segment_choice(seed: int, epoch: int, clip_id: str, n: int) -> int:
    h = int.from_bytes(hashlib.sha256(f"{seed}/{epoch}/{clip_id}".encode()).digest()[:8], "little")
    return h % n


def source_key(source: FeatureSource, ex: Item) -> str:
    """What a source knows a clip by: its audio file (online) or its clip id (a cache)."""
    return ex.audio_path if source.online else ex.clip_id


def example_features(ex: Item, source: FeatureSource, *, mode: str, seed: int, epoch: int,
                     factor: int, max_audio_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """(features [L, W, D], counts [W]) of one example under the segment mode."""
    segments = source.segments(source_key(source, ex))  # lazy: only what is used is read
    n = len(segments)
    if n == 0:
        raise UserError(f"{ex.id}: clip {ex.clip_id} has no usable audio segment")
    if mode == "random":
        seg = segments[segment_choice(seed, epoch, ex.clip_id, n)]
        return seg.features, seg.counts
    features, counts, _ = join_segments(segments, factor, max_audio_tokens)
    return features, counts


class MicroBatches(torch.utils.data.Dataset):
    """Item i = this process's collated share of global micro-batch i of one epoch."""

    def __init__(self, sets: list[TrainSet], plan, *, rank: int, micro: int, tokenizer,
                 template: PromptTemplate, seed: int, epoch: int, factor: int, mode: str,
                 max_audio_tokens: int):
        self.sets, self.plan, self.rank, self.micro = sets, plan, rank, micro
        self.tokenizer, self.template = tokenizer, template
        self.seed, self.epoch, self.factor, self.mode = seed, epoch, factor, mode
        self.max_audio_tokens = max_audio_tokens

    def __len__(self) -> int:
        return len(self.plan)

    def _mine(self, idx):
        return idx[self.rank * self.micro:(self.rank + 1) * self.micro]

    def _expect(self, i: int, ahead: int = 4) -> None:
        """Tell each source which clips this process reads next: the DataLoader hands worker
        k of n the items k, k + n, k + 2n, ..., so this worker's next ones are i + n, ..."""
        reading_ahead = [getattr(ts.features, "readahead", 0) for ts in self.sets]
        if not any(reading_ahead):  # local caches, online features: nothing to tell
            return
        info = torch.utils.data.get_worker_info()
        step = info.num_workers if info is not None else 1
        upcoming: dict[int, list] = {}
        for j in range(i + step, min(len(self.plan), i + step * (ahead + 1)), step):
            d, idx = self.plan[j]
            ts = self.sets[d]
            if reading_ahead[d]:
                upcoming.setdefault(d, []).extend(source_key(ts.features, ts.examples[k])
                                                  for k in self._mine(idx))
        for d, keys in upcoming.items():
            self.sets[d].features.expect(keys)

    def __getitem__(self, i: int) -> dict:
        from ..models.musilingo import make_batch

        d, idx = self.plan[i]
        ts = self.sets[d]
        exs = [ts.examples[j] for j in self._mine(idx)]
        self._expect(i)
        toks = [tokenize_example(self.tokenizer, self.template, e.question, e.answer) for e in exs]
        feats = [example_features(e, ts.features, mode=self.mode, seed=self.seed, epoch=self.epoch,
                                  factor=self.factor, max_audio_tokens=self.max_audio_tokens)
                 for e in exs]
        batch = make_batch(toks, feats, pad_id=self.tokenizer.pad_token_id)
        batch["dataset"] = d
        return batch


class RunBatches(torch.utils.data.Dataset):
    """Item g = global micro-batch g of the whole run: micro-batch g % per_epoch of epoch
    g // per_epoch. One DataLoader over this serves every epoch, so its workers start once and
    persist (a spawned worker re-opens a remote cache and re-imports torch: seconds per worker
    per epoch). An epoch's plan is a pure function of (seed, epoch), computed by each process
    when it first needs that epoch, so resuming at any micro-batch reads the same batches."""

    def __init__(self, sets: list[TrainSet], *, per_epoch: int, total: int, plan_args: dict,
                 batch_args: dict):
        self.sets, self.per_epoch, self.total = sets, per_epoch, total
        self.plan_args, self.batch_args = plan_args, batch_args
        self._epoch, self._batches = None, None

    def __len__(self) -> int:
        return self.total

    def epoch(self, e: int) -> MicroBatches:
        if self._epoch != e:
            plan = epoch_plan(**self.plan_args, epoch=e)
            self._batches = MicroBatches(self.sets, plan, epoch=e, **self.batch_args)
            self._epoch = e
        return self._batches

    def __getitem__(self, g: int) -> dict:
        e, i = divmod(int(g), self.per_epoch)
        return self.epoch(e)[i]
