"""One configuration mechanism for every verb (musilingo/options.py): recipe < flags < key=value,
flags and help generated from the verb's dataclass, recipes listed from configs/<verb>/, old key
names read with one deprecation line."""
from __future__ import annotations

from dataclasses import dataclass

import click
import pytest
from click.testing import CliRunner

from musilingo import options
from musilingo.cli import VERBS, cli
from musilingo.errors import UserError
from musilingo.options import option as _opt

CACHE_SUBCOMMANDS = ("info", "verify", "export")


def _help(*argv: str) -> str:
    result = CliRunner().invoke(cli, [*argv, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize("argv", [(v,) for v in VERBS if v != "cache"] +
                         [("cache", sub) for sub in CACHE_SUBCOMMANDS])
def test_every_verb_takes_a_recipe_flags_and_key_value(argv):
    text = _help(*argv)
    assert "--config TEXT recipe: a YAML file or a shipped name (" in text
    assert "KEY=VALUE" in text
    assert "OVERRIDES" in text or "ARGS" in text


@dataclass
class Toy:
    out: str | None = _opt(None, "where it goes")
    batch_size: int = _opt(8, "how many at once")
    fast: bool = _opt(False, "go fast")
    RENAMED = {"out_dir": "out"}


def test_precedence_and_old_names(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(options, "_warned", set())
    recipe = tmp_path / "r.yaml"
    recipe.write_text("out_dir: from-recipe\nbatch_size: 2\n")
    cfg = options.load_config(Toy, "toy", str(recipe), {"batch_size": None, "fast": True}, [])
    assert (cfg.out, cfg.batch_size, cfg.fast) == ("from-recipe", 2, True)
    # a flag beats the recipe's old name; a key=value with the old name beats the flag
    cfg = options.load_config(Toy, "toy", str(recipe), {"out": "flag"}, [])
    assert cfg.out == "flag"
    cfg = options.load_config(Toy, "toy", str(recipe), {"out": "flag"}, ["out_dir=override"])
    assert cfg.out == "override"
    assert capsys.readouterr().err.count("`out_dir` is now called `out` in musilingo toy") == 1
    with pytest.raises(UserError, match="unknown config key.*nope.*musilingo toy --help"):
        options.load_config(Toy, "toy", None, {}, ["nope=1"])
    with pytest.raises(UserError, match="batch_size='many' is not a int"):
        options.load_config(Toy, "toy", None, {}, ["batch_size=many"])


def test_positional_arguments_are_told_from_overrides():
    audio, overrides = options.split_overrides(
        ["song.wav", "batch_size=2", "a=b.wav", "out_dir=x", "What is x=3?"], Toy)
    assert audio == ["song.wav", "a=b.wav", "What is x=3?"]
    assert overrides == ["batch_size=2", "out_dir=x"]


def test_flags_come_from_the_dataclass():
    @click.command()
    @options.config_options(Toy, "toy")
    def toy(recipe, overrides, **flags):
        click.echo(repr(sorted((k, v) for k, v in flags.items() if v is not None)))

    out = CliRunner().invoke(toy, ["--batch-size", "3", "--fast"]).output
    assert out.strip() == "[('batch_size', 3), ('fast', True)]"
    text = " ".join(CliRunner().invoke(toy, ["--help"]).output.split())
    assert "--batch-size INTEGER how many at once [default: 8]" in text
    assert "--fast / --no-fast go fast" in text
    assert "(none shipped for toy)" in text


def test_one_name_per_concept_across_verbs():
    """The concepts the verbs share have one name; the old names are only read, never offered."""
    from musilingo.extract.config import ExtractConfig
    from musilingo.infer.config import CaptionConfig
    from musilingo.score.config import ScoreConfig
    from musilingo.train.config import TrainConfig

    fields = {cls: set(cls.__dataclass_fields__) for cls in
              (ExtractConfig, TrainConfig, ScoreConfig, CaptionConfig)}
    for old in ("out_dir", "micro_batch_size", "online_stride", "precision", "limit",
                "num_workers_decode"):
        assert not any(old in f for f in fields.values()), old
    assert all("out" in f for f in fields.values())
    assert {"batch_size"} <= fields[TrainConfig] & fields[ExtractConfig] & fields[ScoreConfig]
    assert "stride" in fields[TrainConfig] and "stride" in fields[ExtractConfig]
    assert "dtype" in fields[TrainConfig] and "dtype" in fields[CaptionConfig]
    assert "storage_dtype" in fields[ExtractConfig] and "dtype" not in fields[ExtractConfig]
    assert "standardize" in fields[TrainConfig] and "normalize" in fields[ExtractConfig]


def test_an_old_run_folder_config_still_loads(tmp_path, monkeypatch, capsys):
    """config.yaml of a run written before the renames: read, with the deprecation lines."""
    from musilingo.train.config import TrainConfig

    monkeypatch.setattr(options, "_warned", set())
    cfg = TrainConfig.from_dict({"out_dir": "runs/x", "micro_batch_size": 3, "precision": "fp32",
                                 "normalize": True, "online_stride": 65,
                                 "datasets": [{"name": "synth"}]})
    assert (cfg.out, cfg.batch_size, cfg.dtype, cfg.standardize, cfg.stride) == \
        ("runs/x", 3, "fp32", True, 65)
    assert capsys.readouterr().err.count("is now called") == 5


def test_a_shared_field_is_reworded_for_the_verb_that_uses_it_differently():
    """serve takes no AUDIO and chat takes one: their --cache help says what --cache means there,
    in the click help as in help_of; caption keeps the shared wording."""
    from click.testing import CliRunner

    from musilingo.cli import cli
    from musilingo.infer.config import CaptionConfig, ChatConfig
    from musilingo.options import help_of
    from musilingo.serve.command import ServeConfig

    assert "instead of audio uploaded from the browser" in help_of(ServeConfig, "cache")
    assert "AUDIO is then a clip id" in help_of(ChatConfig, "cache")
    assert "clips are then named by their cache clip ids" in help_of(CaptionConfig, "cache")
    for verb, needle in (("serve", "uploaded from the browser"), ("chat", "clip id of the cache")):
        out = CliRunner().invoke(cli, [verb, "--help"]).output
        assert needle in " ".join(out.split()), out
