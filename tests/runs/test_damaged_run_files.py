"""A run folder is untrusted input: every damaged file it can hold is refused by every verb that
reads it with exit 2 and one line naming the file (issue 34). Before: a template without
`text`, an empty LoRA target list, an unbounded lora_alpha and five damages of the files
`compare` reads ended in exit 1 (an "unexpected" error) or, for lora_alpha, empty captions."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers.cli import run_cli

LORA = {"r": 2, "alpha": 4.0, "dropout": 0.0, "targets": ["q_proj"]}

CONFIG_DAMAGE = {  # adapter_config.json edits -> the text the one line must hold
    "template without text": (lambda c: c["template"].pop("text"), "field 'text' is missing"),
    "template not an object": (lambda c: c.update(template="x"), "a field is malformed"),
    "t not a number": (lambda c: c.update(t="abc"), "a field is malformed (ValueError"),
    "unbounded lora_alpha": (lambda c: c.update(lora=dict(LORA, alpha=1e30)),
                             "scales the LoRA update by 5e+29"),
    "empty lora_targets": (lambda c: c.update(lora=dict(LORA, targets=[])),
                           "lora_targets is empty"),
    "lora not numbers": (lambda c: c.update(lora={"r": "x"}), "a field is malformed"),
}

FILE_DAMAGE = {  # file -> bytes, and the text the line must hold
    "config.yaml a list": ("config.yaml", b"- a\n- b\n", "not a training recipe"),
    "config.yaml not UTF-8": ("config.yaml", b"lr: \xff\xfe\n", "not a training recipe"),
    "evaluations not a list": ("evaluations.json", b'{"a": 1}', "not a list of evaluations"),
    "evaluation not an object": ("evaluations.json", b"[1]", "evaluation 1 is not an object"),
    "protocols a list": ("evaluations.json", b'[{"protocols": [1]}]', "'protocols' that are"),
    "metrics of a protocol a list": ("evaluations.json", b'[{"protocols": {"p": [1]}}]',
                                     "'protocols' that are"),
    "control rows without keys": ("evaluations.json",
                                  b'[{"protocols": {"p": {"m": 1}}, "control": [{"x": 1}]}]',
                                  "'control' rows without"),
}


def _copy(run_dir, tmp_path, name):
    folder = tmp_path / name.replace(" ", "_")
    shutil.copytree(run_dir, folder)
    return folder


def _one_line(code, err, text, where):
    assert code == 2 and text in err and str(where) in err, err
    assert "unexpected" not in err and "Traceback" not in err, err
    assert len([ln for ln in err.splitlines() if "error" in ln.lower()]) == 1, err


@pytest.mark.parametrize("case", sorted(CONFIG_DAMAGE))
def test_damaged_adapter_config_is_refused_by_export_and_compare(run_dir, tmp_path, capsys, case):
    edit, text = CONFIG_DAMAGE[case]
    folder = _copy(run_dir, tmp_path, case)
    config = json.loads((folder / "adapter_config.json").read_text())
    edit(config)
    (folder / "adapter_config.json").write_text(json.dumps(config))
    for argv in (["export", str(folder), "--out", str(tmp_path / "export")],
                 ["compare", str(folder), str(run_dir), "--out", str(tmp_path / "cmp")]):
        code, _, err = run_cli(capsys, *argv)
        _one_line(code, err, text, folder / "adapter_config.json")
    assert not (tmp_path / "export").exists() and not (tmp_path / "cmp").exists()


def test_damaged_adapter_config_is_refused_by_caption(run_dir, tmp_path, capsys, audio_dir):
    folder = _copy(run_dir, tmp_path, "caption")
    config = json.loads((folder / "adapter_config.json").read_text())
    config["lora"] = dict(LORA, alpha=1e30)  # before: loaded, and every caption came out empty
    (folder / "adapter_config.json").write_text(json.dumps(config))
    code, _, err = run_cli(capsys, "caption", "--run", str(folder),
                           str(audio_dir / "clips" / "yt_a.wav"))
    _one_line(code, err, "lora_alpha <= 256 x lora_rank", folder / "adapter_config.json")


@pytest.mark.parametrize("case", sorted(FILE_DAMAGE))
def test_damaged_run_files_are_refused_by_compare(run_dir, tmp_path, capsys, case):
    name, data, text = FILE_DAMAGE[case]
    folder = _copy(run_dir, tmp_path, case)
    (folder / name).write_bytes(data)
    code, _, err = run_cli(capsys, "compare", str(folder), str(run_dir), "--out",
                           str(tmp_path / "cmp"))
    _one_line(code, err, text, folder / name)


def test_a_damaged_loss_log_or_demo_marker_only_shortens_what_compare_shows(run_dir, tmp_path,
                                                                              capsys):
    folder = _copy(run_dir, tmp_path, "logs")
    (folder / "metrics.jsonl").write_bytes(b'{"step": 1, "loss": 2.5}\n\xff\xfe\n[1]\n'
                                           b'{"step": 2, "loss": 2.0}\n')
    (folder / "demo_done.json").write_bytes(b"[1, 2]")
    code, out, err = run_cli(capsys, "compare", str(folder), str(run_dir), "--out",
                             str(tmp_path / "cmp"))
    assert code == 0, err
    from musilingo.runs.compare import loss_curve

    assert loss_curve(folder) == [(1, 2.5), (2, 2.0)]
