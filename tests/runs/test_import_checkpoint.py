"""`import-checkpoint`: a reference `.pth` becomes a working run folder; anything else is refused."""
from __future__ import annotations

import json
import os

import pytest
import torch
from click.testing import CliRunner

from tests.helpers.runs import MAX_NEW
from musilingo.errors import UserError
from musilingo.infer import GenerationConfig, Predictor
from musilingo.runs.command import import_checkpoint
from musilingo.runs.import_checkpoint import read_reference_checkpoint

LLM_DIM = 64  # tiny-llama's width


def _reference(path, model: dict | None = None, **extra):
    torch.manual_seed(0)
    if model is None:
        model = {"llama_proj.weight": torch.randn(LLM_DIM, 128).half(),
                 "llama_proj.bias": torch.randn(LLM_DIM).half()}
    torch.save({"model": model, "optimizer": {"state": {}, "param_groups": []},
                "config": {"run": {"lr": 3e-5}}, "epoch": 5, **extra}, path)
    return path


def test_import_writes_a_run_folder_that_answers(tmp_path, audio_dir, tiny_encoder):
    pth = _reference(tmp_path / "checkpoint_5.pth")
    out = tmp_path / "imported"
    result = CliRunner().invoke(import_checkpoint, [str(pth), "--out", str(out), "--llm",
                                                    "tiny-llama", "--encoder", "tiny",
                                                    "--layers", "3"])
    assert result.exit_code == 0, result.output
    assert "ignored top-level entries config, epoch, optimizer" in result.output
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert (cfg["encoder_dim"], cfg["llm_dim"], cfg["num_layers"], cfg["t"], cfg["stride"]) == \
        (128, LLM_DIM, 3, 325, 325)
    assert cfg["template"]["name"] == "instruct" and cfg["encoder"]["encoder"] == "tiny"
    p = Predictor.load(out, generation=GenerationConfig(max_new_tokens=MAX_NEW))
    want = torch.load(pth, weights_only=True)["model"]
    torch.testing.assert_close(p.model.adapter.proj.weight, want["llama_proj.weight"].float())
    torch.testing.assert_close(p.model.adapter.proj.bias, want["llama_proj.bias"].float())
    rows = p.ask(audio_dir / "clips" / "yt_a.wav", "What instrument is playing?")
    assert rows[0]["scope"] == "track" and isinstance(rows[0]["answer"], str)
    again = CliRunner().invoke(import_checkpoint, [str(pth), "--out", str(out), "--llm", "x",
                                                   "--encoder", "tiny", "--layers", "3"])
    assert isinstance(again.exception, UserError) and "--overwrite" in str(again.exception)


class Exploit:
    """Unpickling this would run `touch MARKER`: weights_only must refuse before it runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"llama_proj.weight": torch.zeros(2, 2),
                          "llama_proj.bias": torch.zeros(2)}, "config": Exploit(marker)}, path)
    with pytest.raises(UserError, match=r"evil.pth: refused: it holds Python objects .*"
                                        r"GLOBAL posix.system"):
        read_reference_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("model, message", [
    ({"llama_proj.weight": torch.zeros(4, 8)}, r"'model' has no 'llama_proj.bias'"),
    ({"llama_proj.weight": torch.zeros(4, 8), "llama_proj.bias": torch.zeros(4),
      "llama_model.embed_tokens.weight": torch.zeros(2, 4)},
     r"unexpected key 'llama_model.embed_tokens.weight'"),
    ({"llama_proj.weight": torch.zeros(4, 8), "llama_proj.bias": torch.zeros(5)},
     r"llama_proj.weight has shape \[4, 8\] and llama_proj.bias \[5\]"),
    ({"llama_proj.weight": torch.zeros(4, 8, 1), "llama_proj.bias": torch.zeros(4)},
     r"shape \[4, 8, 1\]"),
    ({"llama_proj.weight": torch.zeros(4, 8, dtype=torch.long), "llama_proj.bias": torch.zeros(4)},
     r"'model'\['llama_proj.weight'\] is not a floating-point tensor"),
    ({"llama_proj.weight": torch.full((4, 8), float("nan")), "llama_proj.bias": torch.zeros(4)},
     r"NaN or infinite"),
])
def test_unexpected_contents_are_refused(tmp_path, model, message):
    path = _reference(tmp_path / "bad.pth", model=model)
    with pytest.raises(UserError, match=rf"bad.pth: .*{message}"):
        read_reference_checkpoint(path)


def test_other_files_are_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "lightning.pth")
    with pytest.raises(UserError, match=r"lightning.pth: expected a dict with a 'model' entry.*"
                                        r"found keys state_dict"):
        read_reference_checkpoint(tmp_path / "lightning.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(UserError, match="found a list"):
        read_reference_checkpoint(tmp_path / "list.pth")
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(UserError, match="text.pth: not a PyTorch checkpoint"):
        read_reference_checkpoint(tmp_path / "text.pth")
    with pytest.raises(UserError, match="no such checkpoint file"):
        read_reference_checkpoint(tmp_path / "absent.pth")


def test_width_contradicting_the_encoder_is_refused(tmp_path):
    from musilingo.runs.import_checkpoint import import_checkpoint as run_import

    path = _reference(tmp_path / "m95.pth", model={"llama_proj.weight": torch.zeros(LLM_DIM, 768),
                                                   "llama_proj.bias": torch.zeros(LLM_DIM)})
    with pytest.raises(UserError, match=r"takes 768-wide features, but --encoder mert-330m is "
                                        r"1024 wide: pass --encoder mert-95m"):
        run_import(path, tmp_path / "out", llm="tiny-llama")
    out, _ = run_import(path, tmp_path / "out", llm="tiny-llama", encoder="mert-95m")
    assert json.loads((out / "adapter_config.json").read_text())["num_layers"] == 13


def test_width_contradicting_the_llm_is_refused_at_import(tmp_path):
    """A [576, 1024] adapter (SmolLM2-wide) imported for tiny-llama (64 wide) used to import and
    fail only at `ask`."""
    from musilingo.runs.import_checkpoint import import_checkpoint as run_import

    path = _reference(tmp_path / "wide.pth", model={"llama_proj.weight": torch.zeros(576, 1024),
                                                    "llama_proj.bias": torch.zeros(576)})
    with pytest.raises(UserError, match=r"writes 576-wide embeddings, but --llm tiny-llama is 64 "
                                        r"wide"):
        run_import(path, tmp_path / "out", llm="tiny-llama")
    assert not (tmp_path / "out").exists()
    tiny = _reference(tmp_path / "tiny.pth", model={"llama_proj.weight": torch.zeros(64, 1024),
                                                    "llama_proj.bias": torch.zeros(64)})
    with pytest.raises(UserError, match=r"takes 1024-wide features, but --encoder tiny is 128 wide"):
        run_import(tiny, tmp_path / "out", llm="tiny-llama", encoder="tiny")
