"""`import-checkpoint` of a published MusiLingo model (the hub layout of m-a-p/MusiLingo-*-v1):
only the adapter tensors are read, from the one shard that holds them; no remote code runs."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from tests.helpers.cli import run_cli
from tests.helpers.runs import MAX_NEW
from tests.helpers.published import published_folder
from musilingo.errors import UserError
from musilingo.infer import GenerationConfig, Predictor
from musilingo.runs.command import import_checkpoint
from musilingo.runs.import_checkpoint import read_published_model

LLM_DIM, ENC_DIM = 64, 128   # tiny-llama's width, the tiny encoder's width
def test_published_folder_imports_and_captions(tmp_path, audio_dir):
    folder, weight, bias = published_folder(tmp_path / "MusiLingo-short-v1")
    out = tmp_path / "run"
    result = CliRunner().invoke(import_checkpoint, [str(folder), "--out", str(out), "--llm",
                                                    "tiny-llama", "--encoder", "tiny"])
    assert result.exit_code == 0, result.output
    assert "template 'instruct'" in result.output
    assert not (folder / "REMOTE_CODE_RAN").exists()
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["template"] == {"name": "instruct", "end": "###", "max_target_tokens": 160,
                               "text": "###Human: <Audio><AudioHere></Audio> {question} "
                                       "###Assistant: ", "bos": True}
    assert cfg["kind"] == "linear" and cfg["lora"] is None
    assert (cfg["encoder_dim"], cfg["llm_dim"], cfg["num_layers"]) == (ENC_DIM, LLM_DIM, 3)
    assert cfg["imported_from"] == str(folder.absolute())
    p = Predictor.load(out, generation=GenerationConfig(max_new_tokens=MAX_NEW))
    torch.testing.assert_close(p.model.adapter.proj.weight, weight)
    torch.testing.assert_close(p.model.adapter.proj.bias, bias)
    rows = p.caption(audio_dir / "clips" / "yt_a.wav")
    assert rows and all(isinstance(r["caption"], str) for r in rows)


def test_defaults_come_from_the_published_config(tmp_path):
    """Without --llm/--encoder: the config's llama_model, and mert_model as the mert-330m preset
    (whose 1024-wide input this 128-wide test adapter contradicts: refused before writing)."""
    folder, _, _ = published_folder(tmp_path / "pub")
    with pytest.raises(UserError, match=r"takes 128-wide features, but --encoder mert-330m is "
                                        r"1024 wide"):
        from musilingo.runs.import_checkpoint import import_checkpoint as run_import

        run_import(str(folder), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_stage1_and_custom_templates(tmp_path):
    from musilingo.runs.import_checkpoint import published_template

    caption = published_template({"prompt_template": "", "end_sym": "\n", "max_txt_len": 32}, "x")
    assert (caption.name, caption.text, caption.end) == ("caption", "<AudioHere>", "\n")
    other = published_template({"prompt_template": "USER: {} ASSISTANT: ", "end_sym": "</s>",
                                "max_txt_len": 64}, "x")
    assert other.name == "imported" and other.has_question
    assert other.text == "USER: <Audio><AudioHere></Audio> {question} ASSISTANT: "
    with pytest.raises(UserError, match="no single"):
        published_template({"prompt_template": "no slot", "end_sym": "#", "max_txt_len": 1}, "x")


def test_published_layouts_that_are_refused(tmp_path):
    ambiguous, _, _ = published_folder(tmp_path / "two", extra_adapter=True)
    with pytest.raises(UserError, match=r"2 keys .* ending in 'llama_proj.weight'"):
        read_published_model(str(ambiguous))
    no_adapter, _, _ = published_folder(tmp_path / "none", adapter_prefix="model.not_")
    with pytest.raises(UserError, match=r"no key ending in 'llama_proj.weight'"):
        read_published_model(str(no_adapter))
    lost, _, _ = published_folder(tmp_path / "lost")
    (lost / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(UserError, match=r"names model-00002-of-00003.safetensors, which is missing"):
        read_published_model(str(lost))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(UserError, match=r"no model.safetensors.index.json or"):
        read_published_model(str(empty))


def test_single_file_published_model(tmp_path):
    folder = tmp_path / "single"
    folder.mkdir()
    save_file({"model.llama_proj.weight": torch.ones(4, 3), "model.llama_proj.bias": torch.zeros(4),
               "model.llama_model.x": torch.zeros(2)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"llama_model": "x"}))
    weight, bias, config = read_published_model(str(folder))
    assert weight.shape == (4, 3) and bias.shape == (4,)
    assert config["max_txt_len"] == 32 and config["end_sym"] == "\n"   # MusiLingoConfig defaults


@pytest.mark.parametrize("shard", ["/etc/passwd", "../outside.safetensors",
                                   "sub/../../outside.safetensors", "C:\\x.safetensors"])
def test_index_may_not_name_files_outside_the_folder(tmp_path, shard):
    folder, _, _ = published_folder(tmp_path / "model")
    (tmp_path / "outside.safetensors").write_bytes((folder / "model-00002-of-00003.safetensors")
                                                   .read_bytes())
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    for key in ("model.llama_proj.weight", "model.llama_proj.bias"):
        index["weight_map"][key] = shard
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(UserError, match="refused shard name"):
        read_published_model(str(folder))


def test_index_shard_linking_outside_is_refused(tmp_path):
    folder, _, _ = published_folder(tmp_path / "model")
    private = tmp_path / "private.safetensors"
    (folder / "model-00002-of-00003.safetensors").rename(private)
    (folder / "model-00002-of-00003.safetensors").symlink_to(private)
    with pytest.raises(UserError, match=r"refused shard .*outside the model folder"):
        read_published_model(str(folder))


def test_hub_cache_snapshot_links_into_its_blobs_are_read(tmp_path):
    """The hub cache stores snapshots/<rev>/<file> -> ../../blobs/<sha>; that is the model's own."""
    built, weight, _ = published_folder(tmp_path / "built")
    repo = tmp_path / "models--m-a-p--MusiLingo-short-v1"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for i, f in enumerate(sorted(built.iterdir())):
        blob = repo / "blobs" / f"sha{i}"
        f.rename(blob)
        (snapshot / f.name).symlink_to(f"../../blobs/sha{i}")
    got, _, _ = read_published_model(str(snapshot))
    assert torch.equal(got, weight)


def test_damaged_published_files_are_user_errors(tmp_path, capsys):
    """A truncated shard, an overwritten index or config: exit 2 naming the file, not a crash."""
    folder, _, _ = published_folder(tmp_path / "trunc")
    shard = folder / "model-00002-of-00003.safetensors"
    shard.write_bytes(shard.read_bytes()[:-40])
    with pytest.raises(UserError, match=r"model-00002-of-00003.safetensors: damaged weights file"):
        read_published_model(str(folder))
    index_bad, _, _ = published_folder(tmp_path / "index")
    (index_bad / "model.safetensors.index.json").write_text('{"weight_map": {')
    with pytest.raises(UserError, match=r"model.safetensors.index.json: unreadable JSON"):
        read_published_model(str(index_bad))
    config_bad, _, _ = published_folder(tmp_path / "config")
    (config_bad / "config.json").write_bytes(b"\xff\xfe garbage")
    with pytest.raises(UserError, match=r"config.json: unreadable JSON"):
        read_published_model(str(config_bad))
    single = tmp_path / "single"
    single.mkdir()
    (single / "config.json").write_text("{}")
    (single / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad json")
    code, _, err = run_cli(capsys, "import-checkpoint", str(single), "--out", str(tmp_path / "o"))
    assert code == 2, err
    assert "model.safetensors: damaged weights file" in err and "Traceback" not in err
