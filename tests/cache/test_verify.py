"""`cache info`, `cache verify` (damage detection naming the rows), `cache export --format hdf5`."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import zarr

from musilingo.cache import FeatureCache
from musilingo.cache.export import export_hdf5
from musilingo.cache.verify import reset_shards, verify_cache
from musilingo.cli import main

from tests.helpers.synthetic_cache import SHARD, write_synthetic


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def rows_of(problems):
    return sorted({p.row for p in problems})


def test_clean_cache_verifies(synthetic, capsys):
    path, _, _ = synthetic
    assert verify_cache(path) == []
    main(["cache", "verify", str(path), "--no-progress"])  # returns: exit 0
    assert "ok:" in capsys.readouterr().out


def test_flipped_bytes_name_the_row(synthetic, capsys):
    path, _, _ = synthetic
    shard1 = path / "features" / "c.1.0.0.0"
    data = bytearray(shard1.read_bytes())
    data[100] ^= 0xFF  # inside the first inner chunk (row 4: 192 B + crc32c); its crc fails
    shard1.write_bytes(bytes(data))
    problems = verify_cache(path)
    assert rows_of(problems) == [4] and "unreadable" in problems[0].what
    code, out, err = run_cli(capsys, "cache", "verify", str(path), "--no-progress")
    assert code == 4 and "row 4 (clip 'clip2' segment 0)" in out and "rows 4" in err


def test_truncated_and_missing_shards(synthetic):
    path, _, _ = synthetic
    shard0 = path / "features" / "c.0.0.0.0"
    shard0.write_bytes(shard0.read_bytes()[:100])           # a write cut short
    (path / "features" / "c.2.0.0.0").unlink()              # a shard file lost
    problems = verify_cache(path)
    assert rows_of(problems) == [0, 1, 2, 3, 8]
    # the lost file is named as such (it would otherwise read back as zeros)
    assert [p.kind for p in problems if p.row == 8] == ["missing file"]
    assert "features/c.2.0.0.0 is missing" in [p.what for p in problems if p.row == 8][0]


def test_nan_pending_and_metadata(tmp_path, capsys):
    path = tmp_path / "c.zarr"
    write_synthetic(path, pending_shards=(2,))
    g = zarr.open_group(str(path), mode="r+")
    row = g["features"][5]
    row[0, 0, 0] = np.nan
    g["features"][5] = row
    problems = verify_cache(path)
    what = {p.row: p.what for p in problems}
    assert "pending" in what[8] and set(what) == {5, 8}
    assert any("NaN" in p.what for p in problems if p.row == 5)
    # reset the damaged shard: its commit record goes, so re-running extract redoes it
    assert reset_shards(path, [p for p in problems if p.row == 5]) == [5 // SHARD]
    assert not (path / "commits" / "1.json").exists() and (path / "commits" / "0.json").exists()
    assert FeatureCache.open(path).status_counts()["pending"] == 4 + 1
    g.attrs["windows"] = 9  # metadata that no longer describes the arrays
    problems = verify_cache(path)
    assert problems[0].row is None and "features has shape" in problems[0].what


def test_damaged_commit_record(synthetic):
    path, _, _ = synthetic
    (path / "commits" / "1.json").write_bytes(b"\x00garbage")
    problems = verify_cache(path)
    assert rows_of(problems) == [4, 5, 6, 7]
    assert {p.kind for p in problems} == {"unreadable"} and "commits/1.json" in problems[0].what


def test_index_that_disagrees_with_the_records(synthetic, capsys):
    """The row index is a copy of the commit records; an edited copy is found and dropped."""
    path, _, _ = synthetic
    g = zarr.open_group(str(path), mode="r+")
    seconds = g["seconds"][:]
    seconds[2] += 1.0
    g["seconds"][:] = seconds
    problems = verify_cache(path)
    assert [p.kind for p in problems] == ["index"] and "seconds" in problems[0].what
    code, _, _ = run_cli(capsys, "cache", "verify", str(path), "--reset-damaged", "--no-progress")
    assert code == 4 and zarr.open_group(str(path), mode="r").attrs["index"] is None
    assert verify_cache(path) == []  # read from the commit records until an extract re-indexes


def test_parallel_verify_finds_the_same_rows(synthetic):
    path, _, _ = synthetic
    shard1 = path / "features" / "c.1.0.0.0"
    data = bytearray(shard1.read_bytes())
    data[100] ^= 0xFF
    shard1.write_bytes(bytes(data))
    (path / "features" / "c.2.0.0.0").unlink()
    one, two = verify_cache(path), verify_cache(path, workers=2)
    assert [str(p) for p in one] == [str(p) for p in two] and rows_of(two) == [4, 8]


def test_info(synthetic, capsys):
    path, _, _ = synthetic
    main(["cache", "info", str(path), "--failures"])
    out = capsys.readouterr().out
    assert "[9, 3, 4, 8] float16" in out and "stride 65" in out
    assert "8 done, 1 failed, 0 pending" in out and "MB" in out
    assert "clip1 segment 0: synthetic failure of row 3" in out
    main(["cache", "info", str(path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["shape"] == [9, 3, 4, 8] and data["layers"] == 3 and data["bytes"] > 0
    code, _, err = run_cli(capsys, "cache", "info", str(path.parent / "nothing.zarr"))
    assert code == 2 and err.startswith("error: no feature cache at")


def test_export_hdf5_has_the_same_content(synthetic, tmp_path, capsys):
    path, _, _ = synthetic
    h5 = tmp_path / "c.h5"
    main(["cache", "export", str(path), "--format", "hdf5", "--out", str(h5)])
    g = zarr.open_group(str(path), mode="r")
    strings = ["clip_error", "clip_id", "clip_path", "reason"]
    with h5py.File(h5, "r") as f:
        assert sorted(f.keys()) == sorted([*g.array_keys(), *strings])
        for name in g.array_keys():
            a, b = g[name][:], f[name][:]
            assert a.dtype == b.dtype and np.array_equal(a, b), name
        assert [x.decode() for x in f["clip_id"][:]] == [f"clip{i}" for i in range(5)]
        assert f["reason"][3].decode() == "synthetic failure of row 3"
        assert json.loads(f.attrs["musilingo_attrs_json"]) == dict(g.attrs)
        assert f.attrs["stride"] == 65 and json.loads(f.attrs["encoder"])["encoder"] == "synthetic"
    code, _, err = run_cli(capsys, "cache", "export", str(path), "--out", str(h5))
    assert code == 2 and "exists" in err
    with pytest.raises(Exception):
        export_hdf5(tmp_path / "none.zarr", tmp_path / "x.h5")
