"""The one interface every pseudo-labeler implements.

A labeler reads some modalities of an aligned sample and produces one new modality. The runner
(:func:`open4m.data.labelers.run.label_folder`) handles batching, progress, resumption and
writing, so a labeler is only the function from inputs to label.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Mapping, Sequence

from ...errors import DataError


class Labeler(ABC):
    """Maps an aligned sample (modality name -> decoded value) to one label.

    `name` is the modality folder the label is written to, `ext` its file extension, `requires`
    the modalities that must be present and `optional` those used when present.
    """

    name: str
    ext: str
    requires: tuple[str, ...] = ("rgb",)
    optional: tuple[str, ...] = ()

    @abstractmethod
    def __call__(self, sample: Mapping[str, Any]) -> Any:
        """The label of one sample."""

    def batch(self, samples: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Labels of several samples; network labelers override this to run one forward pass."""
        return [self(s) for s in samples]

    def check(self, sample: Mapping[str, Any]) -> None:
        """Raise a clear error when a required input modality is missing."""
        missing = [m for m in self.requires if m not in sample]
        if missing:
            raise DataError(f"labeler {self.name!r} needs modalities {missing}; the sample has {sorted(sample)}")
