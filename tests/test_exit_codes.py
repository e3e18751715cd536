"""Exit status by kind, across verbs: a path naming the wrong kind of thing is the user's (2)."""
from __future__ import annotations

import errno

import pytest

from tests.helpers.cli import run_cli


def test_a_folder_option_given_a_file_is_exit_2(tmp_path, capsys):
    """Before: `demo --out FILE` ended in "unexpected FileExistsError" (exit 1, a bug)."""
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = run_cli(capsys, "demo", "--quick", "--out", str(afile))
    assert code == 2 and f"{afile} is in the way" in err and "unexpected" not in err, err
    (tmp_path / "audio").mkdir()
    code, _, err = run_cli(capsys, "extract", "--dataset", "folder", "--audio-root",
                           str(tmp_path / "audio"), "--out", str(afile / "c.zarr"))
    assert code == 2 and "unexpected" not in err, err


@pytest.mark.parametrize("number,text", [(errno.ENOTDIR, "part of this path is a file"),
                                         (errno.EISDIR, "is a folder where a file is expected"),
                                         (errno.EEXIST, "is in the way")])
def test_path_errnos_map_to_one_line_user_errors(number, text):
    from musilingo.cli import _path_mistake

    inner = OSError(number, "x", "/some/path")
    try:
        try:
            raise inner
        except OSError as exc:
            raise RuntimeError("wrapped by a library") from exc
    except RuntimeError as outer:
        line = _path_mistake(outer)
    assert line.startswith("/some/path") and text in line
    assert _path_mistake(OSError(errno.ENOTDIR, "x")) is None     # no path: not a path mistake
