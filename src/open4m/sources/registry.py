"""The registry of sample sources: a name per source, the recipe strings that build it.

A source is built from a *spec*: a recipe string or, for a mixture, a list of entries.

- ``NAME`` or ``NAME:ARG`` where NAME is registered in the family (``synthetic``, ``world``,
  ``world:DIR``, ``text:corpus.txt``, ``tokens:DIR``);
- a path: the family's sources that recognise paths are asked in registration order (a folder with
  ``index.json`` is a shard root, any other folder a token folder);
- a list of entries ``{source, weight, ...}``: the family's ``mixture`` source.

Families say what the samples are: ``tokens`` (model-form token dicts for `open4m train`),
``labelled`` (an RGB image and its target for fine-tuning), ``images`` (one modality's tensors for
tokenizer training). A builder is called as ``builder(arg, **options)``, where ``arg`` is the text
after ``NAME:`` (or the path, or the entry list) and ``options`` are those of the caller's options
that the builder's signature takes: one call site (`open4m train`) passes the same options to
every source of its family, and each source reads what it needs.

Built-in sources register lazily (a ``"module:function"`` builder), so importing the registry
imports no source module; :func:`register_source` adds your own.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..config import resolve_input_path
from ..errors import ConfigError, NotFound, UnknownNameError

__all__ = ["SourceInfo", "register_source", "build_source", "list_sources", "source_info", "is_generated",
           "resolve_spec_path"]

FAMILIES = ("tokens", "labelled", "images", "aligned")
Builder = Callable[..., Any]


@dataclass(frozen=True)
class SourceInfo:
    """One registered source."""

    name: str
    family: str
    builder: Builder | str  # a callable, or "module:function" imported on first use
    form: str  # the recipe string(s) that build it, for docs and `list_sources`
    summary: str
    generated: bool = False  # rendered from seeds: its validation split is generated, not a folder
    takes_path: bool = False  # ARG (or the whole spec) is a path, resolved against a recipe's folder
    matches: Callable[[Path], bool] | None = None  # recognises a plain path as this source

    def build(self, arg: Any, options: Mapping[str, Any]) -> Any:
        builder = self.builder
        if isinstance(builder, str):
            module, _, attr = builder.partition(":")
            builder = getattr(importlib.import_module(module), attr)
        options = {"family": self.family, **options}  # a mixture builds its parts in its own family
        params = inspect.signature(builder).parameters.values()
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            names = {p.name for p in params}
            options = {k: v for k, v in options.items() if k in names}
        return builder(arg, **options)


_REGISTRY: dict[str, dict[str, SourceInfo]] = {f: {} for f in FAMILIES}


def register_source(name: str, builder: Builder | str, *, family: str = "tokens", form: str = "", summary: str = "",
                    generated: bool = False, takes_path: bool = False,
                    matches: Callable[[Path], bool] | None = None, overwrite: bool = False) -> SourceInfo:
    """Register `builder(arg, **options)` as source `name` of `family`; returns its entry.

    `matches(path)` lets a plain path select this source; `generated` marks sources rendered from
    seeds (their validation data is another split, not a folder); `takes_path` says that ARG is a
    path. A name may not contain ``:``.
    """
    if family not in _REGISTRY:
        raise ConfigError(f"unknown source family {family!r}; use one of {list(FAMILIES)}")
    if not name or ":" in name or "/" in name:
        raise ConfigError(f"a source name is a word without ':' or '/', got {name!r}")
    if name in _REGISTRY[family] and not overwrite:
        raise ConfigError(f"source {name!r} ({family}) is registered already; pass overwrite=True to replace it")
    info = SourceInfo(name, family, builder, form or name, summary, generated, takes_path, matches)
    _REGISTRY[family][name] = info
    return info


def list_sources(family: str | None = None) -> list[SourceInfo]:
    """Every registered source (of one family), in registration order."""
    families = [family] if family else list(FAMILIES)
    return [info for f in families for info in _family(f).values()]


def source_info(name: str, family: str = "tokens") -> SourceInfo:
    """The entry of a registered source name."""
    table = _family(family)
    if name not in table:
        raise UnknownNameError(f"no {family} source named {name!r}; registered: {sorted(table)}")
    return table[name]


def _family(family: str) -> dict[str, SourceInfo]:
    if family not in _REGISTRY:
        raise UnknownNameError(f"unknown source family {family!r}; use one of {list(FAMILIES)}")
    return _REGISTRY[family]


def _resolve(spec: Any, family: str) -> tuple[SourceInfo, Any]:
    """(entry, arg) of a spec."""
    table = _family(family)
    if isinstance(spec, Sequence) and not isinstance(spec, (str, bytes)):
        if "mixture" not in table:
            raise ConfigError(f"{family} sources have no mixture; give one source")
        return table["mixture"], list(spec)
    if isinstance(spec, Path):
        spec = str(spec)
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"a source is a string (a name or a path) or a list of mixture entries, got {spec!r}")
    name, sep, arg = spec.partition(":")
    folder_named_like_source = not sep and name in table and table[name].takes_path and \
        not table[name].generated and Path(spec).is_dir()  # `--data shards`: the user's folder called shards
    if name in table and not folder_named_like_source:
        return table[name], (arg or None)
    path = Path(spec)
    for info in table.values():
        if info.matches is not None and info.matches(path):
            return info, spec
    names = ", ".join(i.form for i in table.values())
    if not path.exists():
        close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise NotFound(f"{spec} does not exist{hint}; point the data source at an existing folder, or use one of: "
                       f"{names}")
    raise NotFound(f"data source {spec!r} is neither a registered {family} source nor a folder; use one of: {names}")


def build_source(spec: Any, modality_names: Sequence[str] | None = None, *, family: str = "tokens",
                 **options: Any) -> Any:
    """A source from its spec (see the module doc); `options` go to the builder as far as it takes them.

    `open4m train` passes ``modality_names``, ``num_samples``, ``seed``, ``image_size``, ``folders``
    and ``split``; fine-tuning ``task``, ``split``, ``num_samples``, ``image_size``, ``classes``;
    tokenizer training ``model`` and ``image_size``.
    """
    info, arg = _resolve(spec, family)
    if modality_names is not None:
        options["modality_names"] = list(modality_names)
    return info.build(arg, options)


def is_generated(spec: Any, family: str = "tokens") -> bool:
    """Whether a spec names a source rendered from seeds (`synthetic`, `world[:DIR]`), whose validation split is generated too."""
    if not isinstance(spec, str) or not spec:
        return False
    info = _family(family).get(spec.partition(":")[0])
    return bool(info and info.generated)


def resolve_spec_path(spec: Any, base: Path, family: str = "tokens") -> Any:
    """A spec with its relative path made relative to `base` (a recipe's folder): `world:DIR`, a folder, mixture entries."""
    if isinstance(spec, list):
        return [{**e, "source": resolve_spec_path(e["source"], base, family)} if isinstance(e, Mapping) and "source" in e
                else e for e in spec]
    if not isinstance(spec, str) or not spec:
        return spec
    name, sep, arg = spec.partition(":")
    info = _family(family).get(name)
    if info is not None:
        if sep and arg and info.takes_path and "://" not in arg:
            return f"{name}:{resolve_input_path(arg, base)}"
        return spec
    return spec if "://" in spec else resolve_input_path(spec, base)
