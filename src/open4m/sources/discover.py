"""Which folder of a dataset root holds which registered modality, without a folder map.

A pre-tokenized root holds folders named as `open4m tokenize` and the official datasets name them:
the registry name (``tok_dinov2_global``, ``t5_caption``), the registry ``path`` (``tok_rgb`` for
``tok_rgb@224`` and ``tok_rgb@448``, ``rgb`` for the pixels ``rgb@224``), or ``tok_<name>`` for
pre-tokenized sequences (``tok_caption``, ``tok_det``). :func:`folder_for` finds the folder of one
modality; :func:`discover` names the modality of every folder and lists the folders that match
none, so a typo or an unregistered modality is reported instead of silently left out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from .. import modalities
from ..errors import DataError
from ..modalities import Kind

__all__ = ["Discovered", "folder_candidates", "folder_for", "discover", "IGNORED_FOLDERS"]

log = logging.getLogger(__name__)

#: Folders of a root that hold no modality of their own.
IGNORED_FOLDERS = frozenset({"crop_settings", "mask_valid", "dataloader_cache"})
_TRAINABLE = (Kind.PIXELS, Kind.IMAGE_TOKENS, Kind.SEQUENCE, Kind.SEQUENCE_EMBEDDING)


def folder_candidates(name: str) -> list[str]:
    """The folder names that may hold modality ``name``, most specific first."""
    mod = modalities.get(name)
    out = [name]
    if mod.kind is Kind.SEQUENCE:
        out.insert(0, f"tok_{mod.base_name}")  # what `open4m tokenize` writes beats raw text of the same name
    if mod.path:
        out.append(mod.path)
    return list(dict.fromkeys(out))


def folder_for(name: str, present: Iterable[str], folders: Mapping[str, str] | None = None) -> str | None:
    """The folder holding modality ``name`` among ``present`` (an explicit ``folders`` entry wins), or None."""
    if folders and name in folders:
        return folders[name]
    have = set(present)
    return next((f for f in folder_candidates(name) if f in have), None)


@dataclass
class Discovered:
    """Modality name -> folder, and the folders that match no registered modality."""

    folders: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)  # registered modalities the model does not read as they are

    def message(self, root: str) -> str:
        parts = []
        if self.unknown:
            parts.append(f"folders {self.unknown} match no registered modality (by name, registry path or tok_<name>): "
                         "register them (open4m.modalities.register) or map them with data.folders")
        if self.raw:
            parts.append(f"folders {self.raw} hold raw modalities: tokenize them with `open4m tokenize`")
        return f"{root}: " + "; ".join(parts)


def _resolution(name: str) -> int | None:
    return modalities.get(name).resolution


def discover(root: str, present: Sequence[str], modality_names: Sequence[str] | None = None, *,
             folders: Mapping[str, str] | None = None, image_size: int | None = None) -> Discovered:
    """The folder of each modality of ``modality_names`` (all trainable registered modalities found when None).

    A folder that is the ``path`` of several modalities (``tok_rgb`` for ``tok_rgb@224`` and ``tok_rgb@448``)
    goes to the one at ``image_size`` (default 224; else the smallest resolution). Requested modalities with no
    folder are an error naming the folders that are there.
    """
    present = [f for f in present if not f.startswith(".")]
    if modality_names:
        found = {n: folder_for(n, present, folders) for n in modality_names}
        missing = [n for n, f in found.items() if f is None or f not in present]
        if missing:
            tried = {n: (folders or {}).get(n) or folder_candidates(n) for n in missing}
            raise DataError(f"{root}: no folder for {missing} (looked for {tried}); folders there: {sorted(present)}. "
                            "Map other names with data.folders: {modality: folder}")
        used = set(found.values())
        return Discovered({n: f for n, f in found.items() if f is not None},
                          sorted(f for f in present if f not in used and f not in IGNORED_FOLDERS))
    out = Discovered()
    registry = modalities.all_modalities()
    for folder in sorted(present, key=lambda f: (not f.startswith("tok_"), f)):  # tokens before raw text
        if folder in IGNORED_FOLDERS:
            continue
        names = [n for n, m in registry.items() if m.kind in _TRAINABLE and folder in folder_candidates(n)]
        if not names:
            (out.raw if folder in registry else out.unknown).append(folder)
            continue
        exact = [n for n in names if n == folder or f"tok_{n}" == folder]
        if exact:
            name = exact[0]
        else:
            at_size = [n for n in names if _resolution(n) == (image_size or 224)]
            name = at_size[0] if at_size else min(names, key=lambda n: (_resolution(n) or 0, n))
        if name in out.folders:  # e.g. `caption` raw text beside `tok_caption`: the tokens win
            continue
        out.folders[name] = folder
    if out.unknown or out.raw:
        log.warning(out.message(root))
    if not out.folders:
        raise DataError(f"{root} holds no folder of a registered modality (folders: {sorted(present)}); "
                        "write one with `open4m tokenize` or map folders with data.folders")
    return out
