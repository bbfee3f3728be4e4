"""`text:PATH`: captions from text files, the caption-only part of 4M-21's co-training mixture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from ..errors import DataError, NotFound
from .base import stream_slot

__all__ = ["TextCorpus", "build"]


class TextCorpus(torch.utils.data.IterableDataset):
    """Captions from `.txt` files (one text per non-empty line) or `.jsonl` files (a `text` field).

    Samples are ``{"__key__": "<file>:<line>", modality: text}``: a sample with only a caption, as
    the text-only part of a mixture. Lines are dealt round-robin to ranks and workers.
    """

    def __init__(self, paths: str | Path | Sequence[str | Path], modality: str = "caption", field: str = "text") -> None:
        super().__init__()
        items = [paths] if isinstance(paths, (str, Path)) else list(paths)
        files: list[Path] = []
        for p in map(Path, items):
            files += sorted(q for q in p.rglob("*") if q.suffix in (".txt", ".jsonl")) if p.is_dir() else [p]
        missing = [str(f) for f in files if not f.is_file()]
        if missing or not files:
            raise NotFound(f"text corpus files not found: {missing or items}; give .txt or .jsonl files or a folder of them")
        self.files, self.modality, self.field = files, modality, field

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, slots = stream_slot()
        n = 0
        for f in self.files:
            with f.open(encoding="utf-8") as fh:
                for i, line in enumerate(fh):
                    line = line.strip()
                    if not line:
                        continue
                    n += 1
                    if (n - 1) % slots != slot:
                        continue
                    if f.suffix == ".jsonl":
                        try:
                            line = str(json.loads(line)[self.field])
                        except (json.JSONDecodeError, KeyError, TypeError) as err:
                            raise DataError(f"{f}:{i + 1}: expected a JSON object with a {self.field!r} field ({err})") from err
                    yield {"__key__": f"{f.name}:{i + 1}", self.modality: line}


def build(arg: str | None, *, modality_names: Sequence[str] = ("caption",)) -> TextCorpus:
    """`text:PATH` (a file or a folder of .txt/.jsonl): samples of the one modality the entry lists (`caption`)."""
    if not arg:
        raise NotFound("the text source needs files: text:PATH (a .txt/.jsonl file or a folder of them)")
    if len(modality_names) != 1:
        raise DataError(f"a text corpus holds one modality; list it alone in the entry (modalities: [caption]), "
                        f"got {list(modality_names)}")
    return TextCorpus(arg, modality=modality_names[0])
