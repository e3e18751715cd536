"""LoRA on the frozen LLM, trained with the adapter from the same cache: saved in PEFT's own
format (never the base weights), loaded back for generation, resumed exactly, ZeRO stages."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from musilingo.errors import UserError
from musilingo.runs.adapter_file import load_model
from musilingo.train import run


def quiet(*_a, **_k):
    pass


@pytest.fixture
def lora_cfg(make_cfg, synth):
    def make(**kw):
        base = dict(stage="instruct", datasets=[{"name": "synth", "annotations": str(synth)}],
                    lora_rank=4, lora_targets="q_proj,v_proj", max_steps=20, batch_size=8,
                    standardize=True)
        return make_cfg(**{**base, **kw})
    return make


def test_lora_trains_saves_in_peft_format_and_loads_back(lora_cfg, cache, tmp_path):
    r = run(lora_cfg(out=str(tmp_path / "lora")), log=quiet)
    assert sum(r.losses[-5:]) / 5 < sum(r.losses[:3]) / 3 - 0.3, r.losses
    folder = r.run_dir
    assert json.loads((folder / "adapter_config.json").read_text())["lora"] == \
        {"r": 4, "alpha": 16.0, "dropout": 0.0, "targets": ["q_proj", "v_proj"]}
    peft_cfg = json.loads((folder / "lora" / "adapter_config.json").read_text())
    assert peft_cfg["r"] == 4 and sorted(peft_cfg["target_modules"]) == ["q_proj", "v_proj"]
    saved = load_file(str(folder / "lora" / "adapter_model.safetensors"))
    assert saved and all("lora_A" in k or "lora_B" in k for k in saved)   # no base weight
    assert len(saved) == 2 * 2 * 2                   # A and B, q and v, 2 layers
    assert any(float(v.abs().max()) > 0 for k, v in saved.items() if "lora_B" in k)  # it trained

    # peft itself loads the folder over the base LLM, with our tensors
    from peft import PeftModel

    from musilingo.models.llm import load_llm

    base, _ = load_llm("tiny-llama")
    peft_model = PeftModel.from_pretrained(base, str(folder / "lora"))
    ours = {k.replace(".default.", "."): v for k, v in peft_model.named_parameters()
            if "lora_" in k}
    assert set(ours) == set(saved)
    assert all(torch.equal(ours[k].float(), saved[k]) for k in saved)

    # musilingo's loader puts the same LoRA on the run's LLM: the LLM's output changes
    model = load_model(folder)
    assert hasattr(model.llm, "peft_config")
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        with_lora = model.llm(input_ids=ids).logits
        with model.llm.disable_adapter():
            without = model.llm(input_ids=ids).logits
    assert not torch.allclose(with_lora, without)

    # every generating verb loads runs through the Predictor: it answers with the LoRA on
    from musilingo.infer import GenerationConfig, Predictor

    p = Predictor.load(folder, cache=str(cache), generation=GenerationConfig(max_new_tokens=4))
    assert hasattr(p.model.llm, "peft_config")
    (row,) = p.ask("train_0000", "What instrument is playing?")
    assert isinstance(row["answer"], str)

    # the Hub export carries the PEFT folder, which peft loads directly
    from musilingo.runs.export import export_run

    hub = export_run(folder, tmp_path / "hub")
    again = PeftModel.from_pretrained(load_llm("tiny-llama")[0], str(hub / "lora"))
    assert {k for k, _ in again.named_parameters() if "lora_" in k} == \
        {k for k, _ in peft_model.named_parameters() if "lora_" in k}
    assert json.loads((hub / "adapter_config.json").read_text())["lora"]["r"] == 4
    card = (hub / "README.md").read_text()
    assert "`linear` with LoRA on the LLM" in card and "LoRA on the LLM (rank 4" in card


def test_lora_resume_is_exact_and_zero2_matches_zero0(lora_cfg, tmp_path):
    kw = dict(max_steps=6, save_every=3, batch_size=4, num_workers=0)
    full = run(lora_cfg(out=str(tmp_path / "full"), **kw), log=quiet)
    part = run(lora_cfg(out=str(tmp_path / "part"), stop_after=4, **kw), log=quiet)
    assert part.stopped_early
    rest = run(lora_cfg(out=str(tmp_path / "part"), resume=True, **kw), log=quiet)
    assert rest.losses == pytest.approx(full.losses[3:], rel=1e-5)
    a = load_file(str(tmp_path / "full" / "lora" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "part" / "lora" / "adapter_model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    z2 = run(lora_cfg(out=str(tmp_path / "z2"), deepspeed="zero2", **kw), log=quiet)
    assert z2.losses == pytest.approx(full.losses, rel=1e-4)


def test_lora_target_names_the_llm_does_not_have_are_refused(lora_cfg, tmp_path):
    with pytest.raises(UserError, match=r"lora_targets='query,v_proj': query is not a Linear "
                                        r"layer of tiny-llama; use some of .*q_proj"):
        run(lora_cfg(lora_targets="query,v_proj", out=str(tmp_path / "x")), log=quiet)
    with pytest.raises(UserError, match="lora_rank=-1"):
        run(lora_cfg(lora_rank=-1, out=str(tmp_path / "y")), log=quiet)


@pytest.mark.parametrize("kw, line", [
    (dict(lora_targets=""), "lora_targets is empty"),
    (dict(lora_targets=" , "), "lora_targets is empty"),
    # before: a 25.6 GB allocation for a rank wider than the layer, then exit 1
    (dict(lora_rank=100_000), r"lora_rank=100000 is wider than the narrowest targeted layer "
                              r"of tiny-llama \(\d+\): use lora_rank <= \d+"),
    (dict(lora_rank=2, lora_alpha=1e30), r"scales the LoRA update by 5e\+29"),
    (dict(lora_rank=2, lora_alpha=float("nan")), "lora_alpha=nan"),
])
def test_lora_settings_out_of_range_are_refused_before_any_work(lora_cfg, tmp_path, kw, line):
    with pytest.raises(UserError, match=line):
        run(lora_cfg(out=str(tmp_path / "x"), **kw), log=quiet)
    assert not (tmp_path / "x" / "adapter.safetensors").exists()


def test_lora_under_zero3_saves_whole_matrices(lora_cfg, tmp_path):
    """ZeRO-3 partitions the LLM; the saved LoRA matrices are gathered whole, as under ZeRO-0."""
    kw = dict(max_steps=3, batch_size=4, num_workers=0)
    z0 = run(lora_cfg(out=str(tmp_path / "z0"), **kw), log=quiet)
    z3 = run(lora_cfg(out=str(tmp_path / "z3"), deepspeed="zero3", **kw), log=quiet)
    assert z3.losses == pytest.approx(z0.losses, rel=1e-4)
    a = load_file(str(tmp_path / "z0" / "lora" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "z3" / "lora" / "adapter_model.safetensors"))
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_a_run_folder_of_the_earlier_format_loads_the_same(lora_cfg, tmp_path):
    """adapter_config.json of earlier releases: `adapter` for the kind, `normalized` for the
    standardisation, and `"lora": "lora"` naming PEFT's folder, whose config holds the rank."""
    r = run(lora_cfg(out=str(tmp_path / "run"), max_steps=2), log=quiet)
    new = load_model(r.run_dir)
    path = r.run_dir / "adapter_config.json"
    cfg = json.loads(path.read_text())
    old = {k: v for k, v in cfg.items() if k not in ("kind", "standardized", "lora")}
    old.update(format="musilingo-adapter/1", adapter=cfg["kind"],
               normalized=cfg["standardized"], lora="lora")
    path.write_text(json.dumps(old))
    again = load_model(r.run_dir)
    assert again.config == new.config and again.config.lora.r == 4
    assert again.config.standardized is True
    lora = {n: p for n, p in again.llm.named_parameters() if "lora_" in n}
    assert lora and all(torch.equal(p, dict(new.llm.named_parameters())[n])
                        for n, p in lora.items())
    path.write_text(json.dumps(dict(cfg, format="musilingo-adapter/9")))
    with pytest.raises(UserError, match="format 'musilingo-adapter/9' is newer"):
        load_model(r.run_dir)


def test_the_lora_file_must_hold_exactly_the_runs_matrices(lora_cfg, tmp_path):
    """Nothing but the run's LoRA matrices reaches the frozen LLM from a run folder."""
    from safetensors.torch import save_file

    r = run(lora_cfg(out=str(tmp_path / "run"), max_steps=1), log=quiet)
    weights = r.run_dir / "lora" / "adapter_model.safetensors"
    saved = load_file(str(weights))
    save_file({**saved, "base_model.model.model.norm.weight": torch.zeros(64)}, str(weights))
    with pytest.raises(UserError, match="holds base_model.model.model.norm.weight, which the "
                                        "run's LoRA"):
        load_model(r.run_dir)
    first = sorted(saved)[0]
    save_file({k: v for k, v in saved.items() if k != first}, str(weights))
    with pytest.raises(UserError, match=f"lacks {first}"):
        load_model(r.run_dir)
    save_file({**saved, first: saved[first][:1]}, str(weights))
    with pytest.raises(UserError, match="has shape"):
        load_model(r.run_dir)
    save_file({**saved, first: saved[first] * float("nan")}, str(weights))
    with pytest.raises(UserError, match="NaN or Inf"):
        load_model(r.run_dir)


def test_lora_lr_sets_the_lora_matrices_own_rate(lora_cfg, tmp_path):
    """lora_lr puts the LoRA matrices in groups of their own: equal to lr it trains exactly as
    one rate does, and another value moves them at their own rate."""
    from musilingo.train.engine import param_groups

    kw = dict(max_steps=4, batch_size=4, num_workers=0)
    one = run(lora_cfg(out=str(tmp_path / "one"), **kw), log=quiet)
    same = run(lora_cfg(out=str(tmp_path / "same"), lora_lr=3e-2, **kw), log=quiet)
    assert same.losses == pytest.approx(one.losses, rel=1e-6)
    slow = run(lora_cfg(out=str(tmp_path / "slow"), lora_lr=1e-6, **kw), log=quiet)
    b_one = load_file(str(one.run_dir / "lora" / "adapter_model.safetensors"))
    b_slow = load_file(str(slow.run_dir / "lora" / "adapter_model.safetensors"))
    moved = {k: float(v.abs().max()) for k, v in b_one.items() if "lora_B" in k}
    barely = {k: float(v.abs().max()) for k, v in b_slow.items() if "lora_B" in k}
    assert all(barely[k] < 1e-3 * moved[k] for k in moved)     # lora_B starts at zero
    model = load_model(one.run_dir)
    for p in model.parameters():
        p.requires_grad_(True)
    groups = param_groups(model, 0.05, lora_lr=1e-3)
    assert [("lr" in g, g["weight_decay"]) for g in groups] == \
        [(False, 0.05), (False, 0.0), (True, 0.05)]
    with pytest.raises(UserError, match="learning rates must be positive"):
        run(lora_cfg(out=str(tmp_path / "bad"), lora_lr=0.0, **kw), log=quiet)


def test_export_publishes_only_a_lora_that_loads_and_no_local_path(lora_cfg, tmp_path):
    """export refused nothing: truncated, NaN, rank-mismatched or missing LoRA weights went out
    with exit 0 (the export then did not load), and PEFT's config named the local LLM folder."""
    from peft import PeftModel
    from safetensors.torch import save_file

    from musilingo.models.llm import load_llm
    from musilingo.runs.export import export_run

    r = run(lora_cfg(out=str(tmp_path / "run"), max_steps=1), log=quiet)
    peft_path = r.run_dir / "lora" / "adapter_config.json"
    peft_cfg = json.loads(peft_path.read_text())
    peft_cfg["base_model_name_or_path"] = str(tmp_path / "home" / "my-private-llm")
    # edits musilingo ignores (it builds the LoRA from adapter_config.json's `lora`), which
    # export published as they were: PEFT would then load something else than was trained
    peft_cfg.update(use_dora=True, lora_alpha=1e30, target_modules=["q_proj", "v_proj", "o_proj"])
    peft_path.write_text(json.dumps(peft_cfg))
    out = export_run(r.run_dir, tmp_path / "export")
    published = json.loads((out / "lora" / "adapter_config.json").read_text())
    assert published["base_model_name_or_path"] == "<local path>"
    assert published["r"] == 4 and "my-private-llm" not in (out / "README.md").read_text()
    assert published["use_dora"] is False and published["peft_type"] == "LORA"
    assert published["lora_alpha"] == 16 and published["target_modules"] == ["q_proj", "v_proj"]
    load_model(out)                                          # what went out loads
    peft_model = PeftModel.from_pretrained(load_llm("tiny-llama")[0], str(out / "lora"))
    assert not [n for n, _ in peft_model.named_parameters() if "o_proj.lora" in n]

    weights = r.run_dir / "lora" / "adapter_model.safetensors"
    saved = load_file(str(weights))
    first = sorted(k for k in saved if "lora_A" in k)[0]
    for bad, message in (({**saved, first: saved[first] * float("nan")}, "NaN or Inf"),
                         ({**saved, first: saved[first][:2]}, "has rank 2, the run's LoRA has "
                                                              "rank 4"),
                         ({**saved, "base_model.model.model.norm.weight": torch.zeros(64)},
                          "not a LoRA matrix")):
        save_file(bad, str(weights))
        with pytest.raises(UserError, match=message):
            export_run(r.run_dir, tmp_path / "bad", overwrite=True)
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(UserError, match="cannot be read as safetensors"):
        export_run(r.run_dir, tmp_path / "bad", overwrite=True)
    weights.unlink()
    with pytest.raises(UserError, match="has no adapter_model.safetensors"):
        export_run(r.run_dir, tmp_path / "bad", overwrite=True)
    assert not (tmp_path / "bad").exists()


def test_a_run_folder_whose_two_files_disagree_is_refused_naming_the_key(lora_cfg, tmp_path):
    """adapter_config.json contradicting adapter.safetensors ended in torch's several-line
    RuntimeError (exit 1); deleting the `lora` key ran silently without the LoRA."""
    from safetensors.torch import save_file

    from musilingo.runs.adapter_file import ADAPTER_CONFIG, ADAPTER_WEIGHTS

    r = run(lora_cfg(out=str(tmp_path / "run"), max_steps=1), log=quiet)
    config = json.loads((r.run_dir / ADAPTER_CONFIG).read_text())
    (r.run_dir / ADAPTER_CONFIG).write_text(json.dumps({**config, "lora": None}))
    with pytest.raises(UserError, match="lora holds LoRA weights but adapter_config.json names "
                                        "no LoRA"):
        load_model(r.run_dir)
    (r.run_dir / ADAPTER_CONFIG).write_text(json.dumps(config))
    weights = r.run_dir / ADAPTER_WEIGHTS
    state = load_file(str(weights))
    key = sorted(state)[0]
    save_file({**state, key: state[key][..., :1].contiguous()}, str(weights))
    with pytest.raises(UserError, match=rf"{key!r} has shape .* but adapter_config.json "
                                        "describes"):
        load_model(r.run_dir)
    save_file({**state, "extra.weight": torch.zeros(2)}, str(weights))
    with pytest.raises(UserError, match="holds 'extra.weight', which the adapter"):
        load_model(r.run_dir)
