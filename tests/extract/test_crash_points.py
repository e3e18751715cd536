"""Crash consistency of an extraction, at every write, not a sample (issue 34).

`musilingo extract` is killed (`os._exit(9)`, what kill -9 leaves) just before each write it
makes in turn: the cache's creation under a temporary name and its rename, every shard's
features and commit record, and the row index written at the end. Then the same extraction
runs again, as the README tells the user to, and the cache must equal an uninterrupted run's:
every array and attribute bit for bit, the same commit records (`assert_same_cache`), and
no other file (a temporary that a killed write never renamed is swept by the re-run).
The clips: three short recordings (two of them longer than one segment, so a shard holds rows
of two lengths) and one absent file (a failed row); one-row shards, so that there are several
commits and the index has rows of each status.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from musilingo.cache import FeatureCache
from tests.helpers.crash import files, kill_at_every_write
from tests.helpers.extraction import assert_same_cache

JOB = r'''
from pathlib import Path

from musilingo.extract.job import ExtractConfig, run_extract
from musilingo.extract.plan import clips_from_paths
from musilingo.models.encoders.hubert import FrozenEncoder

AUDIO = Path({audio!r})
ENCODER = FrozenEncoder.load("tiny")


def config(work):
    return ExtractConfig(out=str(work / "cache.zarr"), encoder="tiny", segment_seconds=1.0,
                         min_tail_seconds=0.25, shard_rows=1, batch_size=2, stride=65,
                         storage_dtype="float16", threads=1, decode_workers=0, progress=False)


def clips():
    return clips_from_paths(sorted(AUDIO.glob("*.wav")) + [AUDIO / "absent.wav"], root=AUDIO)


def _warm_up():
    """One extraction in the parent, elsewhere: no fork then pays a lazy import or a first call."""
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp())
    run_extract(clips(), config(scratch), {{"name": "crash"}}, encoder=ENCODER,
                log=lambda *_: None)
    shutil.rmtree(scratch)


_warm_up()


def job(work, arm):
    arm()
    run_extract(clips(), config(work), {{"name": "crash"}}, encoder=ENCODER, log=lambda *_: None)


def again(work):
    job(work, lambda on=True: None)
'''


@pytest.mark.slow
def test_extraction_killed_at_every_write_ends_as_an_uninterrupted_run(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    for name, seconds in (("a", 1.6), ("b", 0.6), ("c", 2.2)):
        sf.write(audio / f"{name}.wav", rng.uniform(-0.5, 0.5, int(24000 * seconds)), 24000)
    source = JOB.format(audio=str(audio))
    writes, killed = kill_at_every_write(source, tmp_path / "kills", what="store")
    reference = tmp_path / "kills" / "reference" / "cache.zarr"
    status = FeatureCache.open(reference).status_counts()
    assert writes > 20 and status == {"done": 5, "failed": 1, "pending": 0}, (writes, status)
    for k, work in enumerate(killed, start=1):  # killed, then the same command again
        try:
            assert_same_cache(work / "cache.zarr", reference)
            assert files(work) == files(reference.parent), "other files than a whole run's"
        except AssertionError as exc:
            raise AssertionError(f"killed before write {k} of {writes}: {exc}") from None
    print(f"extraction: {writes} writes, {len(killed)} kills, all recovered")
