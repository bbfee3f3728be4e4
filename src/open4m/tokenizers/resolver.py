"""The one tokenizer resolver: which tokenizer serves a modality, found and loaded on first use.

For a modality name (``tok_depth@224``, ``caption``, ``sam_mask`` ...) the first of these wins:

1. an override the caller gave (a tokenizer object, a path or an id; None for "none: keep the
   tokens"), keyed by the modality name or a short form (``tok_depth``, ``depth``; ``text`` for
   every sequence modality);
2. a folder of tokenizers (``--tokenizers DIR``): files named like those keys;
3. the model's own folder (local or on the Hub): its ``tokenizers.json`` manifest, which
   ``FourM.save_pretrained(..., tokenizers=...)`` writes, maps modalities to files in the folder or
   to released ids; for a modality it does not list (or a folder without one), the files of its
   ``tokenizers/`` sub-folder named like those keys, as in 2;
4. the registry: :attr:`open4m.modalities.Modality.tokenizer` names the released tokenizer (a Hub id,
   or ``text`` for the WordPiece vocabulary), fetched through ``huggingface_hub``.

Nothing is loaded until asked for (4M-21 has about fifteen tokenizers), each source is loaded once
even when several modalities share it (Canny and SAM edges; every sequence), and a tokenizer whose
vocabulary differs from the model's is refused with the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from .. import modalities
from ..atomic import write_text_atomic
from ..errors import CheckpointError, ConfigError, NotFound
from ..hub import HubOptions, Origin, is_hub_id
from ..modalities import Kind
from ..pretrained import find
from ..weights import WEIGHTS_NAME

__all__ = ["TokenizerSet", "tokenizer_keys", "data_name", "data_mismatch", "SAM_MASK_KEYS", "write_manifest", "read_manifest", "MANIFEST_NAME"]

MANIFEST_NAME = "tokenizers.json"
MANIFEST_FORMAT = 1
_TEXT_KEYS = ("text", "caption")
_TEXT_FILES = ("text.json", "tokenizer.json", "text_tokenizer.json")
SAM_MASK_KEYS = ("sam_mask", "tok_sam_mask", "sam_instance_mask")


def tokenizer_keys(name: str) -> list[str]:
    """Names a tokenizer may be given under for a modality, most specific first."""
    if name in SAM_MASK_KEYS:
        return list(dict.fromkeys([name, *SAM_MASK_KEYS]))
    mod = modalities.all_modalities().get(name)
    if mod is not None and mod.kind in (Kind.SEQUENCE, Kind.SEQUENCE_EMBEDDING):
        return list(dict.fromkeys([name, *_TEXT_KEYS]))
    base = name.split("@", 1)[0]
    return list(dict.fromkeys([name, base, base.removeprefix("tok_")]))


def data_name(name: str) -> str:
    """The data a modality is made from: ``tok_depth@224`` -> ``depth`` (what a tokenizer's metadata names)."""
    return name.split("@", 1)[0].removeprefix("tok_")


def _same_data(a: str, b: str) -> bool:
    """Whether two data names are one kind of data: equal, one a variant of the other (``semseg`` and
    ``semseg_coco``), or both edge maps (one released tokenizer serves Canny, SAM and HED edges)."""
    return a == b or a.startswith(b + "_") or b.startswith(a + "_") or (a.endswith("_edge") and b.endswith("_edge"))


def data_mismatch(tok: Any, data: str, rivals: Sequence[str] = ()) -> str | None:
    """Why ``tok`` does not tokenize ``data`` (``depth``, ``rgb`` ...), judged from its own metadata; None when
    nothing says so. The modality it declares counts when that is another known kind of data (one of
    ``rivals``, a model's other modalities, or a registered modality); its channels (or class maps) must
    match the registry's entry of ``data``. Tokenizers that declare nothing (released ones) pass the first test."""
    config = getattr(tok, "config", None)
    if not hasattr(config, "n_channels"):
        return None  # a text tokenizer
    known = modalities.all_modalities()
    declared = data_name(config.modality) if config.modality else None
    if declared and not _same_data(declared, data) and (declared in rivals or (declared in known and data in known)):
        return f"it is the {config.modality} tokenizer (its metadata says so), not a {data} one"
    raw = known.get(data)
    if raw is None or raw.kind is not Kind.RAW_IMAGE or not raw.num_channels:
        return None
    takes = f"{config.n_labels}-class maps" if config.n_labels else f"{config.n_channels}-channel images"
    needs = f"{raw.num_labels}-class maps" if raw.num_labels else f"{raw.num_channels}-channel images"
    if bool(config.n_labels) != bool(raw.num_labels) or (not raw.num_labels and config.n_channels != raw.num_channels):
        return f"it tokenizes {takes} and {data} data are {needs}"
    return None


def _fetchable(entry: str) -> bool:
    """Whether a registry entry names a place to get a tokenizer: a released name, a Hub id, an absolute path, or a
    relative path to a tokenizer file or to a folder holding one (a user's own registration).

    Why: a world model's checkpoint records bare words (``depth``) there; read as any path, that is whatever
    the working folder holds (a ``depth/`` data folder was loaded as a tokenizer, else 'no tokenizer at
    'depth'' sent the user looking for a file the model never had)."""
    if find(entry) is not None or is_hub_id(entry):
        return True
    path = Path(entry).expanduser()
    return path.is_absolute() or path.is_file() or any((path / f).is_file() for f in (WEIGHTS_NAME, *_TEXT_FILES))


def read_manifest(origin: Origin) -> dict[str, str]:
    """A model folder's modality -> tokenizer source map (empty when it has none)."""
    path = origin.file(MANIFEST_NAME, what="model")
    if path is None:
        return {}
    try:
        payload = json.loads(Path(path).read_text())
        table = payload["tokenizers"]
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise TypeError
    except (json.JSONDecodeError, KeyError, TypeError):
        raise CheckpointError(f"{path} is not a tokenizer manifest ({{'tokenizers': {{modality: file or id}}}}); "
                         "save the model again with save_pretrained(..., tokenizers=...)") from None
    return dict(table)


def write_manifest(folder: str | os.PathLike, tokenizers: Mapping[str, Any]) -> dict[str, str]:
    """Save each tokenizer object under ``folder/tokenizers/`` (once, however many modalities share it),
    keep string sources (released ids, Hub ids) as references, and write the manifest. Returns it."""
    folder = Path(folder)
    table: dict[str, str] = {}
    saved: dict[int, str] = {}
    for name, tok in sorted(tokenizers.items()):
        if isinstance(tok, (str, os.PathLike)):
            table[name] = str(tok)
            continue
        if id(tok) not in saved:
            is_text = not hasattr(tok, "config")
            stem = "text" if is_text else name.split("@", 1)[0]
            rel = f"tokenizers/{stem}.json" if is_text else f"tokenizers/{stem}.safetensors"
            (folder / "tokenizers").mkdir(parents=True, exist_ok=True)
            tok.save_pretrained(folder / rel)
            saved[id(tok)] = rel
        table[name] = saved[id(tok)]
    write_text_atomic(folder / MANIFEST_NAME, json.dumps({"format": MANIFEST_FORMAT, "tokenizers": table}, indent=2)
                      + "\n", overwrite=True)
    return table


class TokenizerSet:
    """The tokenizers of one model's modalities, resolved lazily (see the module docstring for the order).

    ``vocab`` maps modality names to the vocabulary size the model expects, to refuse mismatches.
    """

    def __init__(self, overrides: Mapping[str, Any] | None = None, *, folder: str | os.PathLike | None = None,
                 origin: Origin | None = None, options: HubOptions | None = None, registry: bool = True,
                 vocab: Mapping[str, int] | None = None) -> None:
        self.overrides = dict(overrides or {})
        self.folder = Path(folder) if folder is not None else None
        if self.folder is not None and not self.folder.is_dir():
            raise NotFound(f"tokenizer folder {self.folder} does not exist")
        self.origin = origin
        self.options = options or (origin.options if origin else HubOptions())
        self.registry = registry
        self.vocab = dict(vocab or {})
        self._manifest: dict[str, str] | None = None
        self._loaded: dict[str, Any] = {}  # source -> tokenizer (shared sources load once)
        self._chosen: dict[str, Any] = {}  # modality -> tokenizer

    # -- where a modality's tokenizer comes from ------------------------------------------------------
    def source(self, name: str) -> Any:
        """The object, path or id that serves ``name`` (None when nothing does); loads nothing."""
        keys = tokenizer_keys(name)
        for key in keys:
            if key in self.overrides:
                return self.overrides[key]
        if self.folder is not None:
            found = self._in_folder(name, keys)
            if found is not None:
                return found
        if self.origin is not None:
            manifest = self._read_manifest()
            for key in keys:
                if key in manifest:
                    return self._manifest_source(manifest[key])
            # a folder that lost (or never had) its manifest: its tokenizers/ named as --tokenizers DIR names them
            own = self.origin.folder / "tokenizers" if self.origin.folder is not None else None
            found = self._in_folder(name, keys, own) if own is not None and own.is_dir() else None
            if found is not None:
                return found
        if self.registry:
            mod = modalities.all_modalities().get(name)
            if mod is not None and mod.tokenizer and _fetchable(mod.tokenizer):
                return mod.tokenizer
            if mod is not None and mod.tokenizer:  # it has one, but nothing says where: an error even when optional
                keys = tokenizer_keys(name)
                raise ConfigError(f"no tokenizer for {name!r}: the model's folder lists none (no tokenizers.json entry, no "
                                  f"file in its tokenizers/) and its registry entry {mod.tokenizer!r} is not a released "
                                  f"tokenizer, a Hub id or the path of a tokenizer; pass tokenizers={{{keys[0]!r}: PATH_OR_ID}} "
                                  f"(or --tokenizers {keys[0]}=PATH), or restore the model folder's tokenizers")
        return None

    def _in_folder(self, name: str, keys: list[str], folder: Path | None = None) -> Path | None:
        folder = folder if folder is not None else self.folder
        assert folder is not None
        names = [f for k in keys for f in (k, f"{k}.safetensors", f"{k}.json")]
        if keys[-1] in _TEXT_KEYS:
            names += list(_TEXT_FILES)
        return next((folder / f for f in names if (folder / f).exists()), None)

    def _read_manifest(self) -> dict[str, str]:
        if self._manifest is None:
            self._manifest = read_manifest(self.origin) if self.origin is not None else {}
        return self._manifest

    def _manifest_source(self, value: str) -> Any:
        """A manifest entry: a file inside the model's folder (fetched on demand) or an id to resolve."""
        if value.startswith("tokenizers/") or value.endswith((".safetensors", ".json")):
            assert self.origin is not None
            return self.origin.file(value, what=f"tokenizer of {self.origin}", required=True)
        return value

    # -- loading -------------------------------------------------------------------------------------
    def get(self, name: str, *, required: bool = True) -> Any:
        """The tokenizer of modality ``name`` (loaded now if needed), or None when ``required=False`` and none exists."""
        if name in self._chosen:
            return self._chosen[name]
        src = self.source(name)
        if src is None:
            if not required:
                return None
            keys = tokenizer_keys(name)
            raise ConfigError(f"no tokenizer for {name!r}: the model's folder lists none (no tokenizers.json entry, no file "
                              f"in its tokenizers/) and the registry names no released one; "
                             f"pass tokenizers={{{keys[0]!r}: PATH_OR_ID}} (or --tokenizers {keys[0]}=PATH)")
        tok = self._load(src)
        self._check_vocab(name, tok, src)
        self._check_fits(name, tok, src)
        self._chosen[name] = tok
        return tok

    def _load(self, src: Any) -> Any:
        if not isinstance(src, (str, os.PathLike)):
            return src
        key = str(src)
        if key not in self._loaded:
            from . import load_tokenizer

            o = self.options
            self._loaded[key] = load_tokenizer(src, revision=o.revision, cache_dir=o.cache_dir, token=o.token,
                                               local_files_only=o.local_files_only)
        return self._loaded[key]

    def _check_vocab(self, name: str, tok: Any, src: Any) -> None:
        expected = self.vocab.get(name)
        size = getattr(tok, "vocab_size", None)
        if expected is not None and size is not None and size != expected:
            where = src if isinstance(src, (str, os.PathLike)) else "the tokenizer given"
            raise CheckpointError(f"{where} has {size} tokens but the model's {name} vocabulary has {expected}; "
                             "use the tokenizer the model was trained with")

    def _check_fits(self, name: str, tok: Any, src: Any) -> None:
        """A VQ tokenizer's own metadata (the modality it was trained on, its channels, its image size and
        token grid) against the model's image-token modality ``name``: swapped tokenizer files (depth <->
        normals) or another model's tokenizer fail here with the reason, instead of decoding garbage."""
        config = getattr(tok, "config", None)
        mod = modalities.all_modalities().get(name)
        if name not in self.vocab or mod is None or mod.kind is not Kind.IMAGE_TOKENS or not hasattr(config, "n_channels"):
            return  # only a model's own modalities (``vocab``) are held to its grid
        where = src if isinstance(src, (str, os.PathLike)) else "the tokenizer given"
        wanted = data_name(name)
        fix = f"give {name} the {wanted} tokenizer the model was trained with"
        reason = data_mismatch(tok, wanted, rivals=[data_name(n) for n in self.vocab if n != name])
        if reason:
            raise CheckpointError(f"{where} was given for the model's {name} but {reason} (swapped tokenizer files?); "
                                  f"{fix}")
        size = mod.image_size
        if size and mod.patch_size and config.patch_proj and not config.is_mlp:
            side, own = size // mod.patch_size, size // config.patch_size
            if own != side:
                raise CheckpointError(f"{where} cuts a {size} px image into {own}x{own} tokens (patch {config.patch_size}) "
                                      f"but the model's {name} is a {side}x{side} grid (patch {mod.patch_size}); {fix}")
            released = find(str(src)) if isinstance(src, (str, os.PathLike)) else None
            if config.modality and config.image_size != size and not (released and name in released.modalities):
                raise CheckpointError(f"{where} was trained on {config.image_size} px images but the model's {name} "
                                      f"works at {size} px; {fix}")

    def check_given(self, names: list[str]) -> None:
        """Check now the tokenizers among ``names`` that were given as objects (costs no loading)."""
        for name in names:
            src = self.source(name)
            if src is not None and not isinstance(src, (str, os.PathLike)):
                self.get(name)

    def loaded(self) -> dict[str, Any]:
        """Modality -> tokenizer, for those loaded so far."""
        return dict(self._chosen)
