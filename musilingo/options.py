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
into lists: `datasets.0.cache=x.zarr`). Each dataclass validates itself with `validate()`, which
raises a one-line UserError naming the field. One dtype vocabulary (fp32, bf16, fp16; the long
torch names are accepted too) and one device default (`auto`: cuda when torch sees a GPU, else
cpu) serve every verb.

Nothing here imports torch: building a verb's --help must stay fast.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import field, fields
from importlib import resources
from pathlib import Path

import click

from .errors import UserError

DTYPES = ("fp32", "bf16", "fp16")
DTYPE_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
TORCH_NAMES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
DEVICE_HELP = "auto (cuda when a GPU is visible, else cpu), cpu, cuda or cuda:N"


def option(default, help: str, **metadata):
    """A dataclass field with `help` metadata (list/dict defaults are copied per instance)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default),
                     metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


def help_of(cls, name: str) -> str:
    """The help text of field `name` of dataclass `cls`: a class's `HELP` (along the class
    hierarchy) rewords a shared field for its verb, else the field's own help."""
    own = {k: v for c in reversed(cls.__mro__) for k, v in vars(c).get("HELP", {}).items()}
    return own.get(name) or {f.name: f.metadata.get("help", "") for f in fields(cls)}[name]


# ------------------------------------------------------------------------ shared vocabularies
def dtype_name(value: str, key: str = "dtype") -> str:
    """fp32 | bf16 | fp16 from any accepted spelling, or a UserError naming `key`."""
    name = DTYPE_ALIASES.get(str(value).lower(), str(value).lower())
    if name not in DTYPES:
        raise UserError(f"{key}={value!r}: use one of {', '.join(DTYPES)}")
    return name


def torch_dtype(value):
    """The torch dtype of any accepted spelling (a torch.dtype passes through)."""
    import torch

    if isinstance(value, torch.dtype):
        return value
    return getattr(torch, TORCH_NAMES[dtype_name(value)])


def resolve_device(requested: str | None, key: str = "device") -> str:
    """cpu, cuda or cuda:N for `requested` (auto/None: cuda when torch sees a GPU)."""
    import torch

    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"{key}={requested}: torch sees no GPU here; use cpu (or auto)")
        return requested
    if requested != "cpu":
        raise UserError(f"{key}={requested!r}: use auto, cpu, cuda or cuda:N")
    return requested


def check_positive(cfg, names, *, allow_zero: bool = False) -> None:
    """A UserError naming the first field of `names` that is not a positive (finite) number."""
    for name in names:
        value = getattr(cfg, name)
        ok = value is not None and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
        if not ok:  # nan fails every comparison, so it is refused too
            raise UserError(f"{name}={value} must be {'>= 0' if allow_zero else 'positive'}")


def check_range(cfg, name: str, low: int, high: int, what: str) -> None:
    """A UserError unless the (optional) whole-number field lies in [low, high]: a count of
    threads or processes outside it is a typo that would otherwise crash deep inside torch or
    start 100000 processes."""
    value = getattr(cfg, name)
    if value is not None and not low <= value <= high:
        raise UserError(f"{name}={value}: give {low} to {high} {what}")


# ------------------------------------------------------------------------ dicts -> dataclasses
def coerce(cls, name: str, value):
    """Strings to the field's number/bool type (YAML reads `3e-5` as a string: no dot); numbers
    checked against it: an int field refuses 2.5, a float field refuses nan and inf."""
    kind = str({f.name: f.type for f in fields(cls)}[name])
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        if kind.startswith("int") and float(value) != int(value):
            raise UserError(f"{name}={value!r} is not a whole number")
        if kind.startswith("float") and not math.isfinite(value):
            raise UserError(f"{name}={value!r} must be a finite number")
        return int(value) if kind.startswith("int") else value
    if not isinstance(value, str) or kind.startswith("str"):
        return value
    try:
        if kind.startswith("bool"):
            if value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
                return value.lower() in ("true", "yes", "on", "1")
            raise ValueError
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            number = float(value)
            if not math.isfinite(number):
                raise UserError(f"{name}={value!r} must be a finite number")
            return number
    except ValueError:
        raise UserError(f"{name}={value!r} is not a {kind.split()[0]}") from None
    return value


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


def from_dict(cls, data: dict, verb: str):
    """An instance of dataclass `cls` from a raw dict (old names mapped, unknown keys refused,
    values coerced)."""
    data = renamed(getattr(cls, "RENAMED", {}), data, verb)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"unknown config key(s) {', '.join(unknown)}; see `musilingo {verb} "
                        "--help` for the keys")
    return cls(**{k: coerce(cls, k, v) for k, v in data.items()})


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
    """One click option per dataclass field (default None = "not given"; help = field help)."""
    # Each class of the hierarchy may name allowed values of its own fields (`CHOICES`).
    choices = {k: v for c in reversed(cls.__mro__) for k, v in vars(c).get("CHOICES", {}).items()}

    def decorate(func):
        for f in reversed(dataclasses.fields(cls)):
            if f.name in skip:
                continue
            flag = "--" + f.name.replace("_", "-")
            kind, helptext = str(f.type), help_of(cls, f.name)
            default = f.default if f.default is not dataclasses.MISSING else None
            if default not in (None, "", False):  # flags default to None = "not given"
                helptext += f"  [default: {default}]"
            if "bool" in kind:
                opt = click.option(f"{flag}/--no-{f.name.replace('_', '-')}", f.name,
                                   default=None, help=helptext)
            else:
                typ = (click.Choice(choices[f.name]) if f.name in choices else
                       int if kind.startswith("int") else float if kind.startswith("float")
                       else str)
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
