"""How every verb is configured: a dataclass, a YAML recipe, flags, and `key=value` overrides.

    @dataclass
    class ExtractConfig:
        stride: int = option(325, "base window in encoder frames")    # help = the CLI's help

    @click.command()
    @config_options(ExtractConfig, "extract")   # --config RECIPE, a flag per field, KEY=VALUE...
    def extract(recipe, overrides, **flags):
        cfg = load_config(ExtractConfig, "extract", recipe, flags, overrides)

Precedence: the recipe (a YAML file, or a name shipped in musilingo/configs/<verb>/) < flags <
`key=value` arguments, whose values are read as YAML (`lr=3e-5`, `strict=true`, dotted keys reach
into lists: `datasets.0.cache=x.zarr`). A field's type is its real type hint: values are coerced
to it, and a `Literal[...]` type (or `option(..., choices=registry)`) is at once the flag's
choices, the help and the check. Rules across fields are each dataclass's `validate()`; every
check raises a one-line UserError naming the field. The values every verb shares (dtypes,
devices, wave normalisation, the stride-divides-t rule) and their checks are vocabulary.py's.

Nothing here imports torch: building a verb's --help must stay fast.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import field, fields
from importlib import resources
from pathlib import Path

import click

from .errors import UserError

def option(default, help: str, **metadata):
    """A dataclass field with `help` metadata (list/dict defaults are copied per instance).

    `choices=callable` names a registry whose names are the field's allowed values (asked when
    a value is checked, so a registered newcomer counts); fixed choices are a `Literal` type."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default),
                     metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


def help_of(cls, name: str) -> str:
    """The help text of field `name` of dataclass `cls`: a class's `HELP` (along the class
    hierarchy) rewords a shared field for its verb, else the field's own help."""
    own = {k: v for c in reversed(cls.__mro__) for k, v in vars(c).get("HELP", {}).items()}
    return own.get(name) or {f.name: f.metadata.get("help", "") for f in fields(cls)}[name]


# ------------------------------------------------------------------------ field types
@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict:
    """The real type of every field of dataclass `cls` (string annotations resolved)."""
    return typing.get_type_hints(cls)


def field_type(cls, name: str):
    """(base type, allowed values or None) of a field: `X | None` is X, `Literal[...]` is the
    type of its values with the values as the choices, and a field declared with
    `option(..., choices=registry)` takes the registry's names at the moment of asking."""
    hint = _hints(cls)[name]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is typing.Literal:
        values = typing.get_args(hint)
        return type(values[0]), values
    registry = next(f for f in fields(cls) if f.name == name).metadata.get("choices")
    return (typing.get_origin(hint) or hint), (tuple(registry()) if registry else None)


def choices(cls, name: str) -> tuple | None:
    """The values field `name` of `cls` allows (None: any of its type)."""
    return field_type(cls, name)[1]


def item_type(cls, name: str):
    """The element type of a `list[X]` field (None for a bare `list`)."""
    args = typing.get_args(_hints(cls)[name])
    return args[0] if args else None


def coerce(cls, name: str, value):
    """Strings to the field's number/bool type (YAML reads `3e-5` as a string: no dot); numbers
    checked against it: an int field refuses 2.5, a float field refuses nan and inf; a field
    with choices refuses any other value."""
    kind, allowed = field_type(cls, name)
    value = _coerce(kind, name, value)
    _check_choice(name, value, allowed)
    return value


def check_choices(cfg, cls=None) -> None:
    """A UserError naming the first field of `cfg` (of its group `cls`) holding a value its
    choices do not allow: for configs built directly in Python rather than by `from_dict`."""
    cls = cls or type(cfg)
    for f in fields(cls):
        _check_choice(f.name, getattr(cfg, f.name), choices(cls, f.name))


def _check_choice(name: str, value, allowed) -> None:
    if allowed is not None and value is not None and value not in allowed:
        raise UserError(f"{name}={value!r}: use one of {', '.join(map(str, allowed))}")


def _coerce(kind, name: str, value):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        if kind is int and float(value) != int(value):
            raise UserError(f"{name}={value!r} is not a whole number")
        if kind is float and not math.isfinite(value):
            raise UserError(f"{name}={value!r} must be a finite number")
        return int(value) if kind is int else value
    if not isinstance(value, str) or kind not in (bool, int, float):
        return value
    try:
        if kind is bool:
            if value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
                return value.lower() in ("true", "yes", "on", "1")
            raise ValueError
        number = kind(value)
        if kind is float and not math.isfinite(number):
            raise UserError(f"{name}={value!r} must be a finite number")
        return number
    except ValueError:
        raise UserError(f"{name}={value!r} is not a {kind.__name__}") from None


# ------------------------------------------------------------------------ dicts -> dataclasses
_warned: set[tuple[str, str]] = set()


def _deprecated(verb: str, old: str, new: str) -> None:
    if (verb, old) not in _warned:
        _warned.add((verb, old))
        import sys

        print(f"note: `{old}` is now called `{new}` in musilingo {verb}; the old name is read "
              "for now", file=sys.stderr)


def renamed(renames: dict, data: dict, verb: str) -> dict:
    """`data` with old names ({old: new}, a config class's RENAMED) replaced by the new ones, one
    deprecation line per old name: recipes, run folders and caches written before a rename still
    load. Where both names are set, the new one wins."""
    out = dict(data)
    for old, new in renames.items():
        if old in out:
            value = out.pop(old)
            out.setdefault(new, value)
            _deprecated(verb, old, new)
    return out


def _renamed_item(renames: dict, item: str, verb: str) -> str:
    """One `key=value` with an old top-level key name replaced by the new one."""
    key, eq, value = item.partition("=")
    head, dot, rest = key.strip().partition(".")
    if head not in renames:
        return item
    _deprecated(verb, head, renames[head])
    return renames[head] + dot + rest + eq + value


def from_dict(cls, data: dict, verb: str, what: str = "config"):
    """An instance of dataclass `cls` from a raw dict (old names mapped, unknown keys refused,
    values coerced to the fields' types and checked against their choices; a `list[X]` field
    of dataclass X gets each mapping built the same way)."""
    if not isinstance(data, dict):
        raise UserError(f"a {what} entry must be a mapping of "
                        f"{', '.join(f.name for f in fields(cls))}, got {data!r}")
    data = renamed(getattr(cls, "RENAMED", {}), data, verb)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        hint = (f"see `musilingo {verb} --help` for the keys" if what == "config" else
                f"use {', '.join(sorted(known))}")
        raise UserError(f"unknown {what} key(s) {', '.join(unknown)}; {hint}")
    values = {}
    for key, value in data.items():
        inner = item_type(cls, key)
        if dataclasses.is_dataclass(inner) and isinstance(value, list):
            label = getattr(inner, "WHAT", key)
            value = [v if isinstance(v, inner) else from_dict(inner, v, verb, label)
                     for v in value]
        values[key] = coerce(cls, key, value)
    return cls(**values)


# ------------------------------------------------------------------------ recipes, overrides
CONFIGS = "configs"  # musilingo/configs/<verb>/<name>.yaml: the shipped recipes of each verb


def _shipped(verb: str):
    return resources.files("musilingo") / CONFIGS / verb


def recipes(verb: str) -> list[str]:
    """The names of the recipes shipped for `verb` (the files of musilingo/configs/<verb>/)."""
    folder = _shipped(verb)
    if not folder.is_dir():
        return []
    return sorted(x.name[:-5] for x in folder.iterdir() if x.name.endswith(".yaml"))


def recipe_path(name: str | Path, verb: str) -> Path:
    """A recipe file: a path, or the name of a recipe shipped for `verb` (`pretrain_msd`);
    `<verb>_<name>`, the flat names of earlier releases (`extract_msd`), still resolve."""
    p = Path(name).expanduser()
    if p.is_file():
        return p
    stem = Path(str(name)).name
    stem = stem[:-5] if stem.endswith(".yaml") else stem
    prefix = verb.replace("-", "_") + "_"
    for candidate in (stem, stem[len(prefix):] if stem.startswith(prefix) else None):
        if candidate and (_shipped(verb) / f"{candidate}.yaml").is_file():
            return Path(str(_shipped(verb) / f"{candidate}.yaml"))
    names = recipes(verb)
    raise UserError(f"no recipe {name!r} for musilingo {verb}: give a YAML path" +
                    (f" or one of {', '.join(names)}" if names else " (none is shipped)"))


def load_recipe(name: str | Path, verb: str) -> dict:
    import yaml

    path = recipe_path(name, verb)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a recipe is a mapping of config keys")
    return data


def apply_override(data: dict, item: str) -> None:
    """Apply one `key=value` (dotted keys reach into mappings and lists) to a raw config dict."""
    import yaml

    if "=" not in item:
        raise UserError(f"override {item!r} is not key=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    parts = key.strip().split(".")
    target = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(target, list):
            target = _index(target, part, key)
        else:
            if part not in target or target[part] is None:
                target[part] = [] if parts[i + 1].isdigit() else {}
            target = target[part]
    last = parts[-1]
    if isinstance(target, list):
        idx = int(last) if last.isdigit() else None
        if idx is None or idx > len(target):
            raise UserError(f"override {key}: {last!r} is not an index of the list")
        if idx == len(target):
            target.append(value)
        else:
            target[idx] = value
    else:
        target[last] = value


def _index(lst: list, part: str, key: str):
    if not part.isdigit():
        raise UserError(f"override {key}: {part!r} is not a list index")
    i = int(part)
    if i == len(lst):
        lst.append({})
    if i >= len(lst):
        raise UserError(f"override {key}: index {i} is past the end of the list ({len(lst)} items)")
    return lst[i]


def resolve(recipe: str | None, flags: dict, overrides, base: dict | None = None,
            verb: str = "", renames: dict | None = None) -> dict:
    """The raw config: `base` < recipe < flags given (not None) < key=value overrides; old key
    names (`renames`) are mapped in each layer, so a newer layer wins over an older name."""
    renames = renames or {}
    data = dict(base or {})
    if recipe:
        data.update(renamed(renames, load_recipe(recipe, verb), verb))
    data.update({k: v for k, v in flags.items() if v is not None})
    for item in overrides:
        apply_override(data, _renamed_item(renames, item, verb))
    return data


def load_config(cls, verb: str, recipe: str | None = None, flags: dict | None = None,
                overrides=(), base: dict | None = None):
    """The one way a verb turns its command line into its validated config dataclass."""
    data = resolve(recipe, flags or {}, overrides, base, verb, getattr(cls, "RENAMED", {}))
    cfg = from_dict(cls, data, verb)
    return cfg.validate() if hasattr(cfg, "validate") else cfg


def split_overrides(args, cls) -> tuple[list[str], list[str]]:
    """Positional arguments apart from trailing-style `key=value` overrides: an argument is an
    override when the part before `=` names a key of `cls` (a path such as `a=b.wav` is not)."""
    keys = {f.name for f in fields(cls)} | set(getattr(cls, "RENAMED", {}))
    positional, overrides = [], []
    for arg in args:
        key = arg.split("=", 1)[0].split(".", 1)[0] if "=" in arg else None
        (overrides if key in keys else positional).append(arg)
    return positional, overrides


def load_config_args(cls, verb: str, recipe, flags: dict, args, *, count: int | None = None,
                     minimum: int = 0, usage: str = "") -> tuple[list[str], object]:
    """(positional arguments, validated config) of a verb whose positional arguments share the
    trailing list with its `key=value` overrides; `count` (exactly) or `minimum` positional
    arguments, else a usage error saying `usage`."""
    positional, overrides = split_overrides(args, cls)
    if (count is not None and len(positional) != count) or len(positional) < minimum:
        raise click.UsageError(usage)
    return positional, load_config(cls, verb, recipe, flags, overrides)


# ------------------------------------------------------------------------ click
def field_options(cls, skip=()):
    """One click option per dataclass field (default None = "not given"; help = field help;
    the field's type decides the option's: a choice, a number, a --flag/--no-flag)."""
    def decorate(func):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip:
                continue
            flag = "--" + f.name.replace("_", "-")
            kind, allowed = field_type(cls, f.name)
            if kind in (list, dict):  # structured values: KEY=VALUE (dotted keys) only
                continue
            helptext = help_of(cls, f.name)
            default = f.default if f.default is not dataclasses.MISSING else None
            if default not in (None, "", False):  # flags default to None = "not given"
                helptext += f"  [default: {default}]"
            if kind is bool:
                opt = click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name,
                                   default=None, help=helptext)
            else:
                typ = (click.Choice(allowed) if allowed is not None else
                       kind if kind in (int, float) else str)
                opt = click.option(flag, f.name, type=typ, default=None, help=helptext)
            func = opt(func)
        return func

    return decorate


def config_options(cls, verb: str, skip=(), args: str | None = None):
    """`--config RECIPE`, a flag per field of `cls`, and KEY=VALUE overrides.

    `args`: the name of the verb's positional arguments (they share the trailing argument list
    with the overrides; `split_overrides` parts them); without it every trailing argument is an
    override."""
    def decorate(func):
        func = click.argument(args or "overrides", nargs=-1)(func)
        func = field_options(cls, skip)(func)
        names = recipes(verb)
        return click.option("--config", "recipe", default=None,
                            help="recipe: a YAML file or a shipped name (" +
                                 (", ".join(names) if names else f"none shipped for {verb}") +
                                 "); flags and KEY=VALUE arguments override it")(func)
    return decorate
