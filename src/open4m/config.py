"""The one config system: a tree of dataclasses, read from YAML, overridden by `key.sub=value`.

Every recipe in open4m (FourM pre-training, tokenizer training, fine-tuning, the world recipe)
is a dataclass whose fields are typed options with a default and a one-line doc (:func:`option`),
or nested sections (other such dataclasses, to any depth). :func:`load` reads YAML with
``safe_load``, applies command-line overrides whose values are parsed as YAML
(``optim.blr=3e-4``, ``model.arch.dim=64``, ``data.modalities=[tok_rgb@224,caption]``), checks
types, and builds the tree. An unknown key is an error naming the closest valid key, because a
misspelt key silently falling back to its default is the most expensive kind of bug in a
multi-day run.

Paths written in a recipe file (data, checkpoints to start from, the run folder) resolve relative
to that file, so a recipe means the same thing from whatever folder it is run — the way compose and
mkdocs files work; paths given as command-line overrides stay relative to the current folder,
where the user typed them. A field opts in with ``option(..., path=True)`` (or a callable for
values that only partly are paths, such as ``world:DIR``).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import math
import os
import types
import typing
from dataclasses import MISSING, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import yaml

from .errors import ConfigError, NotFound

__all__ = ["option", "section", "from_dict", "apply_overrides", "merged", "load", "to_dict", "save", "describe", "keys",
           "resolve_input_path", "resolve_checkpoint_path", "read_yaml"]

T = TypeVar("T")
logger = logging.getLogger(__name__)
PathResolver = Callable[[Any, Path], Any]


def option(default: Any, doc: str, *, path: bool | PathResolver = False) -> Any:
    """A recipe option: its default and the one line that `--keys` and the docs show.

    ``path=True`` makes a relative path in a recipe file resolve against the recipe's folder; a
    callable ``(value, recipe_dir) -> value`` does the same for values that only partly are paths.
    """
    meta = {"doc": doc, "path": path}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type, doc: str) -> Any:
    """A nested section (a dataclass of options)."""
    return field(default_factory=cls, metadata={"doc": doc})


def resolve_input_path(value: Any, base: Path) -> Any:
    """A relative path string -> the same path under ``base`` (absolute paths and None unchanged)."""
    if value is None or not isinstance(value, str) or not value:
        return value
    p = Path(value).expanduser()
    if p.is_absolute():
        return value
    resolved = base / p
    if not resolved.exists() and p.exists() and resolved.resolve() != p.resolve():
        # Recipes written before paths became relative to the recipe file meant the current folder:
        # refuse to guess rather than silently start a new run (or read other data) elsewhere.
        raise ConfigError(f"{value!r} is read relative to the recipe's folder, where {resolved} does not exist, but "
                          f"{p.resolve()} does: write {os.path.relpath(p.resolve(), base)!r} or an absolute path")
    return str(resolved)


def resolve_checkpoint_path(value: Any, base: Path) -> Any:
    """A model to start from: a released name or Hub id stays as it is; a relative path resolves against ``base``."""
    from .hub import is_hub_id
    from .pretrained import find

    if not isinstance(value, str) or not value or find(value) is not None:
        return value
    if is_hub_id(value) and not (base / value).exists():
        return value
    return resolve_input_path(value, base)


# -- the tree ------------------------------------------------------------------------------------------
def _section_type(f: dataclasses.Field) -> type | None:
    factory = f.default_factory
    return factory if isinstance(factory, type) and is_dataclass(factory) else None


def keys(cls: type, prefix: str = "") -> list[str]:
    """Every option of a recipe class as a dotted key."""
    out = []
    for f in fields(cls):
        sub = _section_type(f)
        out += keys(sub, f"{prefix}{f.name}.") if sub else [prefix + f.name]
    return out


def _dict_fields(cls: type, prefix: str = "") -> list[str]:
    """Options typed `dict` (free-form mappings such as model.arch): their sub-keys are not checked here."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        sub = _section_type(f)
        if sub:
            out += _dict_fields(sub, f"{prefix}{f.name}.")
        elif (typing.get_origin(hints[f.name]) or hints[f.name]) is dict:
            out.append(prefix + f.name)
    return out


def _unknown(key: str, root: type, command: str | None) -> ConfigError:
    valid = keys(root)
    leaf = key.rsplit(".", 1)[-1]
    close = [k for k in valid if k.rsplit(".", 1)[-1] == leaf][:1]  # the right key in the wrong section
    sections = sorted({k.rsplit(".", i)[0] for k in valid for i in range(1, k.count(".") + 1)})
    close = close or difflib.get_close_matches(key, valid + sections, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    where = f" (`open4m {command} --keys` lists them all)" if command else ""
    return ConfigError(f"unknown config key {key!r}{hint}{where}")


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    """Light type check, with the conversions YAML needs (int -> float, '3e-4' -> float, 1e6 -> int)."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        annotation = next(a for a in args if a is not type(None))
    if value is None:
        raise ConfigError(f"config key {key!r} cannot be null")
    base = typing.get_origin(annotation) or annotation
    if base is Any:
        return value
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base in (int, float) and isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if base is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if base is list and isinstance(value, tuple):
        return list(value)
    if base is tuple and isinstance(value, list):
        return tuple(value)
    if not isinstance(value, base) or (base in (int, float) and isinstance(value, bool)):
        raise ConfigError(f"config key {key!r} expects {base.__name__}, got {value!r} ({type(value).__name__})")
    if base is float and not math.isfinite(value):  # a NaN rate passes every `<= 0` check and trains on NaN
        raise ConfigError(f"config key {key!r} is {value!r}; give a finite number (null turns an optional setting off)")
    return value


def _build(cls: type, data: Any, prefix: str, root: type, command: str | None, base: Path | None) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {prefix.rstrip('.') or '<root>'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    by_name = {f.name: f for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in by_name:
            raise _unknown(prefix + str(key), root, command)
        f = by_name[key]
        sub = _section_type(f)
        if sub:
            kwargs[key] = _build(sub, value or {}, f"{prefix}{key}.", root, command, base)
            continue
        value = _check_type(prefix + key, value, hints[key])
        resolver = f.metadata.get("path")
        if base is not None and resolver:
            try:
                value = (resolve_input_path if resolver is True else resolver)(value, base)
            except ConfigError as err:
                raise ConfigError(f"{prefix}{key}: {err}") from None
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:  # a section's own consistency checks
        raise ConfigError(str(err)) from None


def _renamed(cls: type) -> Mapping[str, str]:
    """A recipe class's ``renamed`` map: old dotted key -> its new home, so older recipes still load."""
    return getattr(cls, "renamed", {})


def _move_renamed(data: dict[str, Any], cls: type) -> dict[str, Any]:
    """Move keys an older open4m used to where they live now (in place), saying so once per key."""
    for old, new in _renamed(cls).items():
        *parents, leaf = old.split(".")
        node = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            continue
        value = node.pop(leaf)
        target = data
        *new_parents, new_leaf = new.split(".")
        for part in new_parents:
            target = target.setdefault(part, {})
        if new_leaf in target and target[new_leaf] != value:
            raise ConfigError(f"the recipe sets both {old!r} (its older name) and {new!r}: keep only {new!r}")
        target[new_leaf] = value
        logger.warning("recipe key %r is now %r; read it as that (rename it in the recipe)", old, new)
    return data


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, command: str | None = None,
              base: str | os.PathLike | None = None) -> T:
    """A recipe of class ``cls`` from nested mappings; relative input paths resolve against ``base``.

    Keys listed in the class's ``renamed`` map (older names) are moved to their new place first.
    """
    data = _move_renamed(copy.deepcopy(dict(data or {})), cls)
    return _build(cls, data, "", cls, command, Path(base) if base is not None else None)


def merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `changes` written over it, mapping by mapping: a change of `optim.lr` keeps the rest of
    `optim` (how a recipe's later stage names only what it changes)."""
    out = dict(base)
    for key, value in changes.items():
        nested = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = merged(out[key], value) if nested else value
    return out


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], cls: type, *, command: str | None = None) -> dict:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to nested ``data``, in place; returns it.

    A key inside a free-form mapping option (``model.arch.dim=64``) sets that entry of the mapping.
    """
    valid = set(keys(cls))
    free = _dict_fields(cls)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r}: write key=value, e.g. optim.blr=3e-4 or model.arch.dim=64")
        if key in _renamed(cls):
            logger.warning("recipe key %r is now %r; read it as that", key, _renamed(cls)[key])
            key = _renamed(cls)[key]
        if key not in valid and not any(key.startswith(d + ".") for d in free):
            raise _unknown(key, cls, command)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({str(err).splitlines()[0]})") from None
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.safe_load`'s loader, except that a key written twice in one mapping is an error: plain YAML
    keeps the last one silently, so a recipe's first value would be ignored without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue  # `<<: *base` merges (whose keys may be overridden) and complex keys: as YAML has them
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice in one mapping; keep one", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML mapping from a file (``safe_load``), with one-line errors for missing or malformed files."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"recipe {path} is a folder; give a YAML file (e.g. configs/world_tiny.yaml)")
    if not path.is_file():
        raise NotFound(f"recipe {path} does not exist (see configs/ for examples)")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not a text file ({err.reason} at byte {err.start}); a recipe is YAML text, "
                          "saved as UTF-8") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path} is not valid YAML{where}: {getattr(err, 'problem', None) or err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a mapping of sections, got {type(data).__name__}")
    return data


def load(cls: type[T], path: str | os.PathLike | None = None, overrides: Sequence[str] = (), *,
         command: str | None = None) -> T:
    """Read a YAML recipe (or start from the defaults) and apply command-line overrides.

    Input paths written in the recipe resolve against its folder; overrides stay as typed.
    """
    if path is None:
        return from_dict(cls, apply_overrides({}, overrides, cls, command=command), command=command)
    recipe = from_dict(cls, read_yaml(path), command=command, base=Path(path).resolve().parent)
    if not overrides:
        return recipe
    merged = apply_overrides(to_dict(recipe), overrides, cls, command=command)
    return from_dict(cls, merged, command=command)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The recipe as plain nested dicts (YAML- and JSON-ready)."""
    return dataclasses.asdict(cfg)


def _absolute(cfg: Any, base: Path) -> dict[str, Any]:
    """The recipe as dicts with every path option made absolute (resolved against ``base``)."""
    out = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if _section_type(f):
            out[f.name] = _absolute(value, base)
            continue
        resolver = f.metadata.get("path")
        value = dataclasses.asdict(value) if is_dataclass(value) else value
        out[f.name] = (resolve_input_path if resolver is True else resolver)(value, base) if resolver else value
    return out


def save(cfg: Any, path: str | os.PathLike) -> Path:
    """Write the recipe as YAML (atomically): what a run records as the exact settings it used, with every
    path absolute so the file means the same thing wherever it is read from."""
    from .atomic import write_text_atomic

    return write_text_atomic(path, yaml.safe_dump(_absolute(cfg, Path.cwd()), sort_keys=False))


def describe(cls: type, indent: str = "") -> str:
    """Every key with its default and documentation, nested as in YAML (for ``--keys`` and the docs)."""
    lines = []
    for f in fields(cls):
        sub = _section_type(f)
        if sub:
            lines.append(f"{indent}{f.name}:  # {f.metadata.get('doc', '')}")
            lines.append(describe(sub, indent + "  "))
            continue
        default = f.default if f.default is not MISSING else f.default_factory()
        shown = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...").strip()
        lines.append(f"{indent}{f.name}: {shown}  # {f.metadata.get('doc', '')}")
    return "\n".join(lines)
