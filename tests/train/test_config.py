"""Recipes, key=value overrides, DeepSpeed JSON resolution, the LR schedule, parameter groups."""
from __future__ import annotations

import math
from importlib import resources

import pytest
import torch

from musilingo.errors import UserError
from musilingo.options import apply_override
from musilingo.train.config import DataSpec, TrainConfig
from musilingo.train.engine import SHIPPED, lr_at, param_groups, resolve_ds_config, zero_stage
from tests.helpers.models import adapter

RECIPES = ["demo_instruct", "demo_pretrain", "instruct_mi_long", "instruct_mi_mixed",
           "instruct_mi_short", "instruct_musicqa", "pretrain_msd"]


def test_the_recipe_list_is_the_folder():
    """`train --help` lists what configs/train/ holds, and no other verb's recipes."""
    from click.testing import CliRunner

    from musilingo.options import recipes
    from musilingo.train.command import train

    assert recipes("train") == RECIPES
    text = " ".join(CliRunner().invoke(train, ["--help"], terminal_width=1000).output.split())
    assert "(" + ", ".join(RECIPES) + ")" in text and "smollm2)" not in text


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipes_load_and_resolve(name):
    cfg = TrainConfig.from_yaml(name, ["cache=x.zarr"])
    assert cfg.datasets and isinstance(cfg.datasets[0], DataSpec) and cfg.cache == "x.zarr"
    ds = resolve_ds_config(cfg, "cuda")
    assert ds["train_micro_batch_size_per_gpu"] == cfg.batch_size
    assert ds["gradient_accumulation_steps"] == cfg.grad_accum
    assert ds["bf16"]["enabled"] == (cfg.dtype == "bf16")
    if name.startswith("instruct"):
        assert (cfg.lr, cfg.min_lr, cfg.batch_size, cfg.grad_accum) == (3e-5, 1e-5, 2, 16)
        assert cfg.epochs == 6 and cfg.stage == "instruct"
    if name == "pretrain_msd":
        assert (cfg.lr, cfg.min_lr, cfg.steps_per_epoch, cfg.epochs) == (1e-4, 8e-5, 5000, 4)
        assert cfg.datasets[0].caption_field == "caption_writing"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_deepspeed_configs(name):
    cfg = TrainConfig(deepspeed=name, dtype="fp32", grad_clip=0.5)
    ds = resolve_ds_config(cfg, "cpu")
    assert "auto" not in str(ds)
    assert ds["gradient_clipping"] == 0.5 and ds["zero_force_ds_cpu_optimizer"] is False
    assert zero_stage(ds) == int(name[4])
    assert ("offload" in name) == ("offload_optimizer" in ds["zero_optimization"])
    assert (resources.files("musilingo") / "configs" / "deepspeed" / f"{name}.json").is_file()


def test_explicit_deepspeed_values_must_agree(tmp_path):
    p = tmp_path / "ds.json"
    p.write_text('{"train_micro_batch_size_per_gpu": 3, "zero_optimization": {"stage": 2}}')
    with pytest.raises(UserError, match="train_micro_batch_size_per_gpu=3"):
        resolve_ds_config(TrainConfig(deepspeed=str(p), batch_size=4), "cpu")
    assert resolve_ds_config(TrainConfig(deepspeed=str(p), batch_size=3), "cpu")
    p.write_text('{"optimizer": {"type": "Adam"}}')
    with pytest.raises(UserError, match="optimizer"):
        resolve_ds_config(TrainConfig(deepspeed=str(p)), "cpu")
    with pytest.raises(UserError, match="zero0"):
        resolve_ds_config(TrainConfig(deepspeed="zero9"), "cpu")


def test_overrides():
    data = {"datasets": [{"name": "msd"}], "lr": 1.0}
    for item in ["lr=3e-5", "datasets.0.caption_field=caption_summary", "standardize=true",
                 "datasets.1.name=musiccaps", "datasets.1.annotations=a.csv", "betas=[0.8, 0.9]",
                 "init_adapter=", "out=runs/x=y"]:
        apply_override(data, item)
    cfg = TrainConfig.from_dict(data)
    assert cfg.lr == 3e-5 and cfg.standardize is True and cfg.betas == [0.8, 0.9]
    assert cfg.datasets[0].caption_field == "caption_summary"
    assert cfg.datasets[1] == DataSpec(name="musiccaps", annotations="a.csv")
    assert cfg.init_adapter is None and cfg.out == "runs/x=y"
    with pytest.raises(UserError, match="unknown config key"):
        TrainConfig.from_dict({"learning_rate": 1})
    with pytest.raises(UserError, match="unknown data-set key"):
        TrainConfig.from_dict({"datasets": [{"nmae": "msd"}]})
    with pytest.raises(UserError, match="key=value"):
        apply_override({}, "lr")
    with pytest.raises(UserError, match="no recipe"):
        TrainConfig.from_yaml("no_such_recipe")
    # A resumed run may change where and how it logs, not what it computes.
    a, b = TrainConfig(), TrainConfig(out="elsewhere", num_workers=7, progress=False)
    assert a.result_keys() == b.result_keys() != TrainConfig(lr=1.0).result_keys()


def test_schedule_is_the_reference_one():
    kw = dict(lr=1e-4, min_lr=8e-5, warmup_lr=1e-6, warmup_steps=10, total_steps=100)
    assert lr_at(0, **kw) == 1e-6
    assert lr_at(5, **kw) == pytest.approx(1e-6 + (1e-4 - 1e-6) * 0.5)
    assert lr_at(10, **kw) == pytest.approx(8e-5 + 2e-5 * 0.5 * (1 + math.cos(math.pi * 0.1)))
    assert lr_at(100, **kw) == pytest.approx(8e-5)


def test_weight_decay_only_on_matrices():
    a = adapter(8, 4, 3, stride=65, aggregation="learned")
    groups = param_groups(a, 0.05)
    decay = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    assert decay == {id(a.proj.weight)}
    assert {id(p) for p in groups[1]["params"]} == {id(a.proj.bias), id(a.layer_logits)}
    assert torch.allclose(torch.softmax(a.layer_logits, 0), torch.full((3,), 1 / 3))


def test_llm_help_names_every_preset():
    """`train --help` lists every LLM preset resolve_llm knows, tiny-lm (the demo's) included."""
    from musilingo.models.llm import llm_presets
    from musilingo.train.config import TrainConfig
    from musilingo.options import help_of

    text = help_of(TrainConfig, "llm")
    assert "tiny-lm" in llm_presets() and all(name in text for name in llm_presets())
