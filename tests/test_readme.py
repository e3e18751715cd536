"""The README is tested: its quick-start commands, read from README.md itself, run in order
through the real CLI on tiny stand-ins for the user's data, so a claim that stops being true
fails here.

The stand-ins keep the commands as written; only what a test machine cannot have is swapped,
by a table (`SWAP`): the real MERT-v1-330M becomes the small random checkpoint in its exact hub
layout, CUDA becomes the CPU, a published MusiLingo hub id becomes a folder in the hub layout,
and the 7B Vicuna becomes tiny-llama. Training commands get a few overrides (`EXTRA`) so that
they take seconds. The `evaluate` module route shown in the README runs as Python.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from musilingo.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
# Appended per verb: tiny and quick, never changing what the command means.
EXTRA = {
    "train": ["llm=tiny-llama", "max_steps=2", "batch_size=2", "grad_accum=1",
              "dtype=fp32", "deepspeed=zero0", "num_workers=0", "progress=false"],
    "caption": ["--max-new-tokens", "4"],
    "ask": ["--max-new-tokens", "4"],
    "score": ["--max-new-tokens", "4", "--batch-size", "4"],
    "extract": ["--no-progress", "--decode-workers", "0"],
}


def readme_blocks(name: str) -> list[str]:
    """The fenced bash block under the README heading `name`, as one command per entry."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {name}", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands, current = [], ""
    for line in block.splitlines():
        line = line.split(" #")[0].rstrip() if not line.lstrip().startswith("#") else ""
        if not line:
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            commands.append(current.strip())
            current = ""
    return commands


@pytest.fixture(scope="module")
def sandbox(shared_data, tmp_path_factory):
    """The files the quick start names, made small: an LP-MusicCaps-MSD folder and its audio,
    a MusicCaps CSV + clips and MusicInstruct JSON (the synthetic set writes those formats),
    a song, a predictions file, a published MusiLingo folder, and the swap table."""
    from musilingo.synth import generate
    from musilingo.models.llm import tiny_llama_folder
    from tests.helpers.published import published_folder

    root = tmp_path_factory.mktemp("readme")
    synth = generate(root / "synth", n_train=8, n_test=4, seconds=3.0, workers=1)
    shutil.copytree(synth / "audio", root / "clips")
    shutil.copy(synth / "captions.csv", root / "musiccaps-public.csv")
    shutil.copy(synth / "qa.json", root / "music_instruct_short.json")
    # LP-MusicCaps-MSD: its columns, as the hub's JSON layout, over the same clips
    (root / "lp-musiccaps-msd").mkdir()
    (root / "msd_audio").mkdir()
    rows = []
    for i, wav in enumerate(sorted((root / "clips").glob("*.wav"))):
        shutil.copy(wav, root / "msd_audio" / wav.name)
        rows.append({"track_id": wav.stem, "title": "t", "artist_name": "a", "release": "r",
                     "year": 2000, "tag": ["piano"], "caption_writing": f"A piece number {i}.",
                     "caption_summary": "s", "caption_paraphrase": "p",
                     "caption_attribute_prediction": "c", "path": wav.name})
    (root / "lp-musiccaps-msd" / "train.json").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n")
    shutil.copy(shared_data / "audio" / "lp-music-caps-samples" / "electronic.mp3",
                root / "my_song.mp3")
    shutil.copy(shared_data / "outputs" / "cmi-bench_captioning" / "salmonn" /
                "salmonn_MusicCaps.json", root / "published_outputs.json")
    mert = shared_data / "models" / "mert-v1-330m-layout"
    published, _, _ = published_folder(root / "MusiLingo-short-v1", enc_dim=64,
                                       mert_model=str(mert))
    swap = {"mert-330m": str(mert), "--device cuda": "--device cpu",
            "m-a-p/MusiLingo-short-v1": str(published),
            "/models/vicuna-7b-v0": str(tiny_llama_folder())}
    return root, swap


def run_readme_command(command: str, swap: dict, capsys) -> tuple[int, str, str]:
    for old, new in swap.items():
        command = command.replace(old, new)
    argv = shlex.split(command)
    assert argv[0] == "musilingo", command
    argv = argv[1:] + EXTRA.get(argv[1], [])
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_the_quick_start_runs_as_written(sandbox, capsys, monkeypatch):
    root, swap = sandbox
    monkeypatch.chdir(root)
    commands = readme_blocks("Quick start on your own data")
    assert commands[0] == "source .venv/bin/activate"
    verbs = []
    for command in commands[1:]:
        code, out, err = run_readme_command(command, swap, capsys)
        assert code == 0, f"README command failed: {command}\n{err[-2000:]}"
        verbs.append(command.split()[1])
    assert verbs == ["extract", "extract", "cache", "train", "train", "caption", "ask", "score",
                     "score", "import-checkpoint"]
    # What the commands promise, checked where they wrote it.
    assert (root / "runs" / "s2" / "adapter.safetensors").is_file()
    assert (root / "scores" / "control.md").is_file()
    assert (root / "runs" / "short" / "adapter_config.json").is_file()
    # The same steps from the shipped recipes (recipe < flags < key=value), in their own section.
    commands = readme_blocks("Configuring a run")
    assert [c.split()[1:3] for c in commands] == [["extract", "--config"], ["train", "--config"],
                                                  ["score", "--config"]]
    for command in commands:
        code, out, err = run_readme_command(command, swap, capsys)
        assert code == 0, f"README command failed: {command}\n{err[-2000:]}"
    from musilingo.cache import FeatureCache

    assert FeatureCache.open(root / "mc.zarr").meta["encoder_dtype"] == "float32"
    assert (root / "runs" / "s2-recipe" / "adapter.safetensors").is_file()
    assert (root / "eval" / "musiccaps" / "control.md").is_file()   # the recipe's control


def test_the_evaluate_module_route_runs_as_shown(tmp_path, monkeypatch):
    text = README.read_text(encoding="utf-8")
    code = re.search(r"```python\n(import evaluate\n.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)  # "from any directory"
    namespace: dict = {}
    exec(compile(code + "\nresult = metric.compute(predictions=['a calm piano piece'], "
                        "references=['a gentle piano melody'], protocol='lp-musiccaps', "
                        "metrics=['bleu', 'rouge'])\n", "README.md", "exec"), namespace)
    assert namespace["result"]["n_items"] == 1


def test_the_adapter_kind_example_registers_a_kind_that_builds():
    """The README's new-kind snippet, as written: one class and one row give an adapter that
    `build_adapter` makes from its config, with the kind's own layers."""
    import torch

    from musilingo.models.adapter_config import ADAPTERS, AdapterConfig
    from musilingo.models.adapters import build_adapter

    text = README.read_text(encoding="utf-8")
    code = re.search(r"```python\n(import torch\nfrom torch import nn\n.*?)```", text,
                     re.S).group(1)
    try:
        exec(compile(code, "README.md", "exec"), {})
        adapter = build_adapter(AdapterConfig(llm="x", encoder_dim=8, llm_dim=4, num_layers=2,
                                              stride=65, kind="gated"))
        tokens, mask = adapter(torch.ones(1, 2, 5, 8), torch.full((1, 5), 65))
        assert tokens.shape == (1, 1, 4) and mask.all() and adapter.gate.shape == (4,)
        assert ADAPTERS["gated"].describe(adapter.config).startswith("`Linear(8, 4)` times")
    finally:
        ADAPTERS.pop("gated", None)


def test_the_first_two_lines_are_the_two_commands():
    lines = README.read_text(encoding="utf-8").split("```bash\n", 1)[1].splitlines()
    assert lines[0].startswith("make demo") and lines[1].startswith("make test")
    makefile = (README.parent / "Makefile").read_text()
    assert "demo: install" in makefile and "test: install" in makefile
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in ci
