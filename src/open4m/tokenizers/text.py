"""The shared WordPiece vocabulary of every 4M sequence modality (captions, boxes, metadata ...).

4M depends on fixed ids for its special tokens: ``[PAD]=0, [UNK]=1, [SOS]=2, [EOS]=3``, sentinels
``[S_0]..[S_199] = 4..203`` (span masking), value tokens ``v0=0..v0=999 = 204..1203`` and likewise
``v1``, ``v2``, ``v3`` up to 4203, then the 80 COCO class names (4204..4283, alphabetical), then the
learned word pieces. Training passes all of them to the WordPiece trainer as special tokens in that
order, which is what pins their ids; so a tokenizer trained here on any corpus gives the same ids
as the released 30k vocabulary for every structural token, and the sequence codecs work with both.

The layout is defined once, in :mod:`open4m.modalities` (``SpecialTokens``, ``special_token_layout``,
``COCO_CLASSES``, the ``*_ID`` / ``*_BASE`` constants); this module re-exports the names it always had.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch

from ..modalities import (
    CLASS_BASE,
    COCO_CLASSES,
    EOS_ID,
    NUM_BINS,
    NUM_SENTINELS,
    NUM_VALUE_KINDS,
    PAD_ID,
    SENTINEL_BASE,
    SOS_ID,
    UNK_ID,
    VALUE_BASE,
    SpecialTokens,
    special_token_layout,
)
from ..errors import CheckpointError, ConfigError, DataError, NotFound

__all__ = ["TextTokenizer", "COCO_CLASSES", "special_token_layout", "NUM_SENTINELS", "NUM_BINS", "NUM_VALUE_KINDS"]

TOKENIZER_FILE = "tokenizer.json"
_SPECIAL = SpecialTokens()
_BRACKETED = ("[PAD]", "[UNK]", "[SOS]", "[EOS]")


# Ids checked on load: the bracketed tokens, both ends of the sentinels, the start and end of each
# value kind, the first and last class name.
_LAYOUT_PROBES = (
    PAD_ID, UNK_ID, SOS_ID, EOS_ID, SENTINEL_BASE, VALUE_BASE - 1,
    *(VALUE_BASE + k * NUM_BINS + v for k in range(NUM_VALUE_KINDS) for v in (0, NUM_BINS - 1)), CLASS_BASE,
    CLASS_BASE + len(COCO_CLASSES) - 1,
)


def _added_tokens(class_names: Sequence[str]) -> list:
    from tokenizers import AddedToken

    out = []
    for text, normalized in special_token_layout(class_names):
        single = text not in _BRACKETED
        out.append(AddedToken(text, single_word=single, normalized=normalized, special=True))
    return out


class TextTokenizer:
    """WordPiece with 4M's fixed special-token ids; ``encode``/``decode`` like every open4m tokenizer."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self._check_layout()

    # -- ids 4M code needs ------------------------------------------------------------------------
    pad_id, unk_id, sos_id, eos_id = PAD_ID, UNK_ID, SOS_ID, EOS_ID

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    @staticmethod
    def sentinel_id(i: int) -> int:
        return _SPECIAL.sentinel(i)

    @staticmethod
    def value_id(kind: int, value: int) -> int:
        """Id of ``v{kind}={value}``: kind 0..3, value 0..999."""
        if not 0 <= kind < NUM_VALUE_KINDS or not 0 <= value < NUM_BINS:
            raise DataError(f"value token v{kind}={value} does not exist; use kind 0..{NUM_VALUE_KINDS - 1} and value "
                            f"0..{NUM_BINS - 1}")
        return VALUE_BASE + kind * NUM_BINS + value

    def token_to_id(self, token: str) -> int:
        idx = self.backend.token_to_id(token)
        if idx is None:
            raise DataError(f"token {token!r} is not in this vocabulary; check its spelling with "
                            "tokenizer.tokens(text)")
        return idx

    def id_to_token(self, idx: int) -> str:
        token = self.backend.id_to_token(int(idx))
        if token is None:
            raise DataError(f"id {idx} is outside this vocabulary of {self.vocab_size} tokens; use ids in "
                            f"0..{self.vocab_size - 1} (were they made by another tokenizer?)")
        return token

    def _check_layout(self) -> None:
        expected = special_token_layout()
        for idx in _LAYOUT_PROBES:
            got = self.backend.id_to_token(idx)
            if got != expected[idx][0]:
                raise CheckpointError(
                    f"vocabulary mismatch: id {idx} is {got!r}, 4M expects {expected[idx][0]!r}; "
                    "this is not a 4M-layout WordPiece tokenizer (train one with TextTokenizer.train)"
                )

    # -- encode / decode ----------------------------------------------------------------------
    def encode(self, text: str | Sequence[str], *, add_eos: bool = False) -> torch.Tensor:
        """Text -> ids ``(L,)``; a list of texts -> ``(B, L)`` padded with [PAD]=0."""
        if isinstance(text, str):
            ids = self.backend.encode(text).ids + ([self.eos_id] if add_eos else [])
            return torch.tensor(ids, dtype=torch.long)
        rows = [self.backend.encode(t).ids + ([self.eos_id] if add_eos else []) for t in text]
        out = torch.full((len(rows), max((len(r) for r in rows), default=0)), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    def tokens(self, text: str) -> list[str]:
        """The token strings of ``text`` (handy for checking how something is split)."""
        return self.backend.encode(text).tokens

    def unknown_words(self, text: str) -> list[str]:
        """The pieces of ``text`` this vocabulary encodes as [UNK] (as written), in order, each once.

        A model conditioned on them sees [UNK] in their place, not the word: callers warn with this list.
        """
        enc = self.backend.encode(text)
        words = [text[a:b] for i, (a, b) in zip(enc.ids, enc.offsets) if i == self.unk_id]
        return list(dict.fromkeys(w for w in words if w.strip()))

    def decode(self, ids: torch.Tensor | Sequence[int], *, stop_at_eos: bool = True) -> str | list[str]:
        """Ids -> text. [PAD] is dropped, decoding stops at [EOS]; value tokens and sentinels are kept."""
        t = torch.as_tensor(ids)
        if t.ndim == 2:
            return [self.decode(row, stop_at_eos=stop_at_eos) for row in t]
        seq = [int(i) for i in t.tolist()]
        if stop_at_eos and self.eos_id in seq:
            seq = seq[: seq.index(self.eos_id)]
        seq = [i for i in seq if i != self.pad_id]
        bad = [i for i in seq if not 0 <= i < self.vocab_size]
        if bad:
            raise DataError(f"ids {bad[:5]} are outside this vocabulary of {self.vocab_size} tokens; decode ids made by "
                            "this tokenizer (or the model that uses it)")
        return self.backend.decode(seq, skip_special_tokens=False)

    # -- persistence and training -------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike) -> "TextTokenizer":
        """A tokenizer JSON file (e.g. the official ``text_tokenizer_4m_wordpiece_30k.json``), a directory
        holding ``tokenizer.json``, or a Hub id."""
        from tokenizers import Tokenizer

        from .checkpoint import resolve_checkpoint

        path = resolve_checkpoint(name_or_path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
            if not path.exists():
                raise NotFound(f"{path.parent} holds no {TOKENIZER_FILE}")
        try:
            backend = Tokenizer.from_file(str(path))
        except Exception as err:  # the Rust library raises its own exception type for bad JSON
            raise CheckpointError(f"{path} is not a readable tokenizers JSON file ({err}); download or save the "
                                  "text tokenizer again") from None
        return cls(backend)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write ``tokenizer.json`` into a directory (or to ``path`` itself if it ends in ``.json``)."""
        from .checkpoint import write_json

        path = Path(path)
        target = path if path.suffix == ".json" else path / TOKENIZER_FILE
        write_json(target, json.loads(self.backend.to_str()))
        return target

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | bool | None = None,
                    commit_message: str = "Upload text tokenizer with open4m", branch: str | None = None,
                    create_pr: bool = False) -> str:
        """Upload ``tokenizer.json`` to the Hub repo ``repo_id`` (created if needed); returns the commit URL."""
        from ..hub import push_folder

        return push_folder(repo_id, self.save_pretrained, private=private, token=token, commit_message=commit_message,
                           branch=branch, create_pr=create_pr)

    @classmethod
    def train(cls, corpus: Iterable[str] | str | os.PathLike | Sequence[str | os.PathLike], vocab_size: int = 30000, *,
              min_frequency: int = 0, class_names: Sequence[str] = COCO_CLASSES, show_progress: bool = False) -> "TextTokenizer":
        """Train on text files (paths) or an iterator of strings, with the 4M normaliser/pre-tokenizer
        (BERT, lower-cased) and fixed special-token ids."""
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

        if tuple(class_names) != COCO_CLASSES:
            raise ConfigError("the 4M id layout fixes the class tokens to the 80 COCO names")
        n_fixed = len(special_token_layout(class_names))
        if vocab_size <= n_fixed:
            raise ConfigError(f"vocab_size must exceed the {n_fixed} fixed tokens, got {vocab_size}")
        backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                        strip_accents=None, lowercase=True)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##")
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=show_progress,
                                            continuing_subword_prefix="##", special_tokens=_added_tokens(class_names))
        files = _as_files(corpus)
        if files is not None:
            missing = [f for f in files if not Path(f).exists()]
            if missing:
                raise NotFound(f"corpus files not found: {missing[:5]}")
            backend.train(files, trainer=trainer)
        else:
            backend.train_from_iterator(_strings(corpus), trainer=trainer)
        return cls(backend)


def _as_files(corpus) -> list[str] | None:
    if isinstance(corpus, (str, os.PathLike)):
        return [str(corpus)]
    if isinstance(corpus, (list, tuple)) and corpus and all(isinstance(c, os.PathLike) for c in corpus):
        return [str(c) for c in corpus]
    return None


def _strings(corpus: Iterable[str]) -> Iterator[str]:
    for item in corpus:
        if not isinstance(item, str):
            raise DataError(f"a text corpus must yield strings, got {type(item).__name__}")
        yield item
