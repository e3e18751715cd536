"""The model card and config.yaml that `musilingo export` publishes: escaped, no local paths, and
metadata naming only what the run really used."""
from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers.cli import run_cli
from tests.helpers.runs import save_run

NASTY = "x`\n# Pwned\n<img src=x onerror=alert(1)> [click](javascript:alert(1)) &lt;"


def _run(tmp_path, *, llm="smollm2", encoder="mert-330m", datasets=None, init="runs/s1", **kw):
    from musilingo.models.encoders.hubert import FrozenEncoder

    enc = FrozenEncoder.load("tiny")
    run = save_run(tmp_path / "run", encoder_dim=enc.hidden_size,
                   num_layers=enc.num_hidden_states,
                   encoder_meta=dict(enc.identity(), encoder=encoder), **kw)
    config = json.loads((run / "adapter_config.json").read_text())
    config["llm"] = llm   # what a run on that LLM records; the card reads nothing else of it
    (run / "adapter_config.json").write_text(json.dumps(config))
    recipe = {"stage": "instruct", "llm": llm, "cache": "/home/alice/private/msd.zarr",
              "out": "runs/s2", "init_adapter": init, "max_steps": 10, "lr": 1e-4,
              "datasets": datasets if datasets is not None else [
                  {"name": "musicinstruct", "annotations": "/home/alice/data/mi.json",
                   "audio_root": "/home/alice/audio",
                   "question": "What genre/style is this?"}]}
    (run / "config.yaml").write_text(yaml.safe_dump(recipe))
    return run


def _export(run, tmp_path, capsys):
    out = tmp_path / "hub"
    code, _, err = run_cli(capsys, "export", str(run), "--out", str(out))
    assert code == 0, err
    text = (out / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    return out, text, meta


def test_card_names_only_what_the_run_used_and_no_local_path(tmp_path, capsys):
    run = _run(tmp_path)
    out, card, meta = _export(run, tmp_path, capsys)
    assert meta["base_model"] == ["HuggingFaceTB/SmolLM2-135M-Instruct", "m-a-p/MERT-v1-330M"]
    assert "datasets" not in meta          # the user's own JSON is not m-a-p/Music-Instruct
    assert "own files" in card
    published = card + (out / "config.yaml").read_text()
    for private in ("/home/alice", "runs/s1", "runs/s2", str(tmp_path)):
        assert private not in published, private
    assert "<local path>" in card and "What genre/style is this?" in published
    assert "started from an earlier run's adapter" in card
    # No evaluation recorded: the card must not point at a control table that is not there.
    assert "control above" not in card and "no evaluation with the shuffled-audio control" in card
    assert yaml.safe_load((out / "config.yaml").read_text())["llm"] == "smollm2"


def test_hub_data_sets_and_hub_models_are_named(tmp_path, capsys):
    run = _run(tmp_path, llm="lmsys/vicuna-7b-v1.5", encoder="m-a-p/MERT-v1-95M",
               datasets=[{"name": "msd", "annotations": "seungheondoh/LP-MusicCaps-MSD"}])
    _, card, meta = _export(run, tmp_path, capsys)
    assert meta["base_model"] == ["lmsys/vicuna-7b-v1.5", "m-a-p/MERT-v1-95M"]
    assert meta["datasets"] == ["seungheondoh/LP-MusicCaps-MSD"]


def test_every_interpolated_value_is_escaped(tmp_path, capsys):
    from musilingo.runs.card import record_evaluation

    run = _run(tmp_path, encoder=NASTY, llm=NASTY)
    record_evaluation(run, {"dataset": NASTY, "kind": NASTY, "source": NASTY,
                            "protocols": {NASTY: {NASTY: 0.5}},
                            "control": [{"protocol": NASTY, "metric": NASTY, "real": 0.5,
                                         "shuffled": 0.4, "delta": 0.1}]})
    _, card, meta = _export(run, tmp_path, capsys)
    assert "base_model" not in meta
    # Rendered as the Hub renders it (CommonMark + tables): the value is shown, never obeyed.
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable("table").render(card)
    assert "<img" not in html and 'href="javascript' not in html and "<a " not in html
    assert "Pwned</h" not in html and "&lt;img src=x" in html
    assert "control above" in card       # this time the control is recorded
    assert card.count(r"\<img src=x onerror=alert(1)\> \[click\](javascript:alert(1)) \&lt;") >= 3


@pytest.mark.parametrize("value,local", [
    ("/data/x.zarr", True), ("~/x", True), ("s3://bucket/x.zarr", True), ("runs\\s1", True),
    ("m-a-p/MERT-v1-330M", False), ("smollm2", False), ("What genre/style is it?", False),
    ("exp/model.safetensors", True), ("org/model-v1.5", False), ("caption_writing", False)])
def test_what_counts_as_a_local_path(value, local):
    from musilingo.runs.public import is_local

    assert is_local(value) is local


def test_markdown_helpers_cannot_be_broken_out_of():
    from musilingo.markdown import md_code, md_fence

    assert md_code("a``b") == "```a``b```" and md_code("`x") == "`` `x ``"
    assert md_code("a\nb\r\u2028c") == "`a b c`"
    assert md_fence("x\n````\ny") == "`````"


def test_the_card_describes_the_adapter_that_was_trained(tmp_path, capsys):
    """Before: every card said `Linear(...)` over the mean of the hidden states, whatever the
    run's adapter kind and layer aggregation were."""
    linear = _export(_run(tmp_path / "a"), tmp_path / "a", capsys)[1]
    assert "An adapter of kind `linear`" in linear and \
        "`Linear(128, 64)` (the paper's) over the mean of 3" in linear
    mlp = _export(_run(tmp_path / "b", kind="mlp", aggregation="learned"), tmp_path / "b",
                  capsys)[1]
    assert "An adapter of kind `mlp`" in mlp and "`Linear(128, 64)`, GELU, `Linear(64, 64)`" in mlp
    assert "learned softmax weights over 3 hidden states" in mlp and "the mean of" not in mlp
