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


def _bad_inputs(tmp_path):
    """(name, files to write, argv after `score`, text the one line must hold): hostile or
    careless inputs of hardening round 3 that ended in exit 1 (an "unexpected" error)."""
    mcq = ("question,correct_answer,distractor_1_answer,distractor_2_answer,distractor_3_answer,"
           "audio_path\n")
    return [
        ("latin-1 csv", {"m.csv": (mcq + "Which caf\xe9?,a,b,c,d,a.wav\n").encode("latin-1")},
         ["--dataset", "muchomusic", "--annotations", "m.csv"], "not UTF-8 text"),
        ("deep cmibench", {"d.jsonl": b"[" * 100_000},
         ["--dataset", "cmibench", "--annotations", "d.jsonl"], "nested too deeply"),
        ("deep lp-musiccaps", {"annotation.json": b'{"a":' * 100_000},
         ["--dataset", "musiccaps", "--annotations", "annotation.json"], "nested too deeply"),
        ("options seed", {"m.csv": (mcq + "Q?,a,b,c,d,a.wav\n").encode()},
         ["--dataset", "muchomusic", "--annotations", "m.csv", "--options-seed", "-1"],
         "options_seed=-1"),
        ("shots", {"m.csv": (mcq + "Q?,a,b,c,d,a.wav\n").encode()},
         ["--dataset", "muchomusic", "--annotations", "m.csv", "--shots", "3"], "shots=3"),
    ]


@pytest.mark.parametrize("case", range(5))
def test_bad_score_inputs_exit_2_with_one_line(tmp_path, capsys, monkeypatch, case, run_dir):
    name, files, argv, text = _bad_inputs(tmp_path)[case]
    run = run_dir
    for rel, data in files.items():
        (tmp_path / rel).write_bytes(data)
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "score", "--run", str(run), *argv, "--out",
                           str(tmp_path / "out"))
    assert code == 2 and text in err and "unexpected" not in err, (name, err)
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "Traceback" not in err, (name, err)  # (progress bars aside)


def test_a_resumed_predictions_file_with_a_non_text_prediction_is_named(tmp_path):
    from musilingo.errors import UserError
    from musilingo.score.run import PredictionLog

    path = tmp_path / "predictions.jsonl"
    path.write_text('{"id": "a:0", "prediction": "x"}\n{"id": "b:0", "prediction": 3}\n')
    with pytest.raises(UserError, match=r"predictions.jsonl:2: field 'prediction' is int, not "
                                        "text"):
        PredictionLog(path)
