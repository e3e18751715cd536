"""The models home: one builder, one process builds, every rank gets a complete folder."""
from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from musilingo.models.home import build_folder, models_home


def _build_counting(folder: str, log: str, delay: float) -> str:
    def build(tmp: Path) -> None:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(delay)  # long enough for the other process to find the lock taken
        (tmp / "weights.bin").write_bytes(b"w" * 1000)
        (tmp / "config.json").write_text("{}")

    return str(build_folder(Path(folder), build, what="a test model"))


def test_concurrent_builders_build_once(tmp_path):
    folder, log = tmp_path / "m" / "model", tmp_path / "builds.log"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_build_counting, [(str(folder), str(log), 1.0)] * 2)
    assert results == [str(folder)] * 2
    assert len(log.read_text().split()) == 1                 # one build, the other waited
    assert (folder / "weights.bin").stat().st_size == 1000
    assert sorted(p.name for p in folder.parent.iterdir()) == [".model.lock", "model"]


def test_a_failed_build_publishes_nothing_and_a_damaged_folder_is_rebuilt(tmp_path):
    folder = tmp_path / "model"

    def broken(tmp: Path) -> None:
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError, match="conversion failed"):
        build_folder(folder, broken, what="x")
    assert not folder.exists() and [p.name for p in tmp_path.iterdir()] == [".model.lock"]
    folder.mkdir()                       # left by an older release: no config.json
    (folder / "junk").write_text("x")
    build_folder(folder, lambda tmp: (tmp / "config.json").write_text("{}"), what="x")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "musilingo_build.json"]


def _killed_builder(folder: str) -> None:
    def build(tmp: Path) -> None:
        (tmp / "weights.bin").write_bytes(b"w" * 1000)
        os._exit(9)  # what kill -9 leaves: no cleanup of the temporary folder

    build_folder(Path(folder), build, what="a test model")


def test_a_killed_build_leaves_nothing_behind_the_next_build(tmp_path):
    """Before: every killed demo left a `.tiny-lm-*.tmp<pid>` folder in the models home."""
    folder = tmp_path / "model"
    ctx = multiprocessing.get_context("spawn")
    for _ in range(2):  # each build sweeps what the killed one before it left
        killed = ctx.Process(target=_killed_builder, args=(str(folder),))
        killed.start()
        killed.join()
        assert killed.exitcode == 9
        assert [p.name for p in tmp_path.glob(".model.tmp*")] == [f".model.tmp{killed.pid}"]
    build_folder(folder, lambda tmp: (tmp / "config.json").write_text("{}"), what="x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]


def test_an_edited_built_model_is_refused_with_the_rebuild_command(tmp_path):
    """Before: an edited model.safetensors under the models home was used silently."""
    from musilingo.errors import UserError
    from musilingo.models import home

    folder = tmp_path / "model"

    def build(tmp: Path) -> None:
        (tmp / "weights.bin").write_bytes(bytes(range(256)) * 4)
        (tmp / "config.json").write_text("{}")

    build_folder(folder, build, what="a test model")
    data = bytearray((folder / "weights.bin").read_bytes())
    data[500] ^= 1
    (folder / "weights.bin").write_bytes(bytes(data))
    home._CHECKED.clear()
    with pytest.raises(UserError, match=rf"{folder}: a test model's weights.bin is not the file it "
                                        rf"built .*rm -r {folder}"):
        build_folder(folder, build, what="a test model")
    (folder / "weights.bin").unlink()
    with pytest.raises(UserError, match="weights.bin is missing"):
        build_folder(folder, build, what="a test model")
    build(folder)                                   # restored: accepted again
    (folder / "extra.py").write_text("print('hi')")
    with pytest.raises(UserError, match="holds extra.py, which its build did not write"):
        build_folder(folder, build, what="a test model")
    (folder / "extra.py").unlink()
    assert build_folder(folder, build, what="a test model") == folder


def test_an_empty_musilingo_home_means_the_default(monkeypatch):
    monkeypatch.setenv("MUSILINGO_HOME", "")
    assert models_home() == Path.home() / ".cache" / "musilingo"


def _rank_builds_tiny_encoder(rank: int, home: str, port: int, queue) -> None:
    """Rank `rank` of a 2-process gloo group; rank 1 builds the tiny encoder while rank 0 waits,
    the order in which torchrun's ranks used to publish a folder without weights."""
    import torch.distributed as dist

    os.environ.update(MUSILINGO_HOME=home, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      OMP_NUM_THREADS="1")
    dist.init_process_group("gloo", rank=rank, world_size=2)
    from musilingo.models.encoders.hubert import tiny_encoder_folder

    try:
        if rank == 1:
            folder = tiny_encoder_folder()
        dist.barrier()
        if rank == 0:
            folder = tiny_encoder_folder()
        queue.put((rank, sorted(p.name for p in folder.iterdir())))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_a_rank_above_zero_builds_a_complete_encoder_folder(tmp_path):
    """Under torch.distributed, transformers' save_pretrained writes weights on rank 0 only; the
    builder writes them itself, so the folder rank 1 publishes is complete and loads."""
    from tests.helpers.multinode import free_port

    home = tmp_path / "home"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_rank_builds_tiny_encoder, args=(r, str(home), port, queue))
             for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0, 0]
    files = dict(queue.get(timeout=5) for _ in range(2))
    assert files[0] == files[1] and "model.safetensors" in files[1], files
    from musilingo.models.encoders import load_encoder

    os.environ["MUSILINGO_HOME"], before = str(home), os.environ.get("MUSILINGO_HOME")
    try:
        encoder = load_encoder("tiny")
    finally:
        os.environ.pop("MUSILINGO_HOME") if before is None else \
            os.environ.__setitem__("MUSILINGO_HOME", before)
    assert encoder.num_hidden_states == 3
