"""`musilingo export`: only the run's own files leave it, and a failed export leaves nothing."""
from __future__ import annotations

import os

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.runs import save_run


@pytest.fixture
def run(tmp_path):
    from musilingo.models.encoders.hubert import FrozenEncoder

    encoder = FrozenEncoder.load("tiny")
    return save_run(tmp_path / "run", encoder_dim=encoder.hidden_size,
                    num_layers=encoder.num_hidden_states,
                    encoder_meta=dict(encoder.identity(), encoder="tiny"))


def test_a_symlinked_file_is_refused_and_nothing_is_written(run, tmp_path, capsys):
    secret = tmp_path / "private.yaml"
    secret.write_text("token: do-not-publish\n")
    if (run / "config.yaml").exists():
        os.remove(run / "config.yaml")
    os.symlink(secret, run / "config.yaml")
    out = tmp_path / "hub"
    code, _, err = run_cli(capsys, "export", str(run), "--out", str(out))
    assert code == 2 and "config.yaml is a symlink" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".hub.*"))


def test_out_inside_the_run_is_refused(run, capsys):
    code, _, err = run_cli(capsys, "export", str(run), "--out", str(run / "hub"))
    assert code == 2 and "inside the run folder" in err
    assert not (run / "hub").exists()


def test_a_failed_export_leaves_no_half_folder_and_overwrite_is_whole(run, tmp_path, capsys,
                                                                        monkeypatch):
    from musilingo.runs import export

    out = tmp_path / "hub"
    assert run_cli(capsys, "export", str(run), "--out", str(out))[0] == 0
    before = sorted(p.name for p in out.iterdir())

    def broken(card):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export, "model_card", broken)
    code, _, err = run_cli(capsys, "export", str(run), "--out", str(out), "--overwrite")
    assert code == 3 and "disk is full" in err
    assert sorted(p.name for p in out.iterdir()) == before      # the old export is untouched
    code, _, _ = run_cli(capsys, "export", str(run), "--out", str(tmp_path / "fresh"))
    assert code == 3 and not (tmp_path / "fresh").exists()     # no folder without its card
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".hub.", ".fresh."))]
    monkeypatch.undo()
    assert run_cli(capsys, "export", str(run), "--out", str(out), "--overwrite")[0] == 0
    assert (out / "README.md").is_file() and (out / "adapter.safetensors").is_file()
