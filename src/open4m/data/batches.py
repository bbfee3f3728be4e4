"""From samples to masked training batches, reproducibly and per rank.

A *source* (built by `open4m.sources`) is anything yielding samples (dicts modality -> token ids,
chunks, pixels or embeddings): a list, a map-style dataset (`len` + indexing: exact resume,
shuffled per epoch), or an iterable (a shard stream: resumed by replaying). Every masking draw
uses a numpy Generator seeded by (seed, epoch, sample index), so batch k of a run is a pure
function of the recipe: workers, restarts and rank counts do not change it.

This sits in `data` beside the masking it applies, below `sources`: it needs nothing from a
source but `len`/indexing or iteration, so every source, and any list of samples, feeds it.

Global batch layout: optimizer step s consumes `world x accum` micro-batches ("pieces") of
`batch_size` samples; rank r, micro-step m takes piece `r * accum + m`. Two ranks with
`accum=1` and one rank with `accum=2` therefore see the same samples with the same masks.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .masking import OFFICIAL_MIXTURES, AlphaMixture, DirichletMasking, collate, led_modalities, rgb_to_all_mixture

__all__ = ["is_map_style", "build_masker", "MaskedBatches", "StreamBatches", "batch_loader", "sample_batches",
           "ordered_batches"]


def is_map_style(source: Any) -> bool:
    """A source with a length and indexing (exact resume, shuffled per epoch) rather than a stream."""
    return (hasattr(source, "__len__") and hasattr(source, "__getitem__")
            and not isinstance(source, torch.utils.data.IterableDataset))


# ------------------------------------------------------------------------------------------
# Masking
# ------------------------------------------------------------------------------------------
def build_masker(mixture: str, modality_names: Sequence[str], *, alpha: float = 0.5, input_tokens: int = 128,
                 target_tokens: int = 128, image_size: int = 224, input_only: Sequence[str] = (),
                 target_only: Sequence[str] = (), allow_missing: bool = False,
                 target_alphas: Mapping[str, float] | None = None, rgb_share: float = 0.5,
                 biased_shares: Mapping[str, float] | None = None,
                 biased_input_alphas: Mapping[str, float] | None = None) -> DirichletMasking:
    """The 4M masking of `mixture` over `modality_names`.

    `target_alphas` overrides `alpha` for some targets of the symmetric and rgb-to-all mixtures: a
    modality's expected share of the target budget grows with its alpha, so a task that learns slowly can
    get more of the budget without changing the others' relative shares. `rgb_share` is the rgb-to-all
    mixture's share of samples whose only input is the raw-pixel modality (official: one half);
    `biased_shares` its shares of samples whose input one modality (or a `+`-joined set) dominates (4M's
    caption-biased part), `biased_input_alphas` the input alphas of modalities those parts show in part.
    """
    weights = dict(target_alphas or {})
    unknown = sorted(set(weights) - set(modality_names))
    if unknown:
        raise ConfigError(f"data.target_alphas names {unknown}, which data.modalities lacks; choose from "
                          f"{list(modality_names)}")
    bad = sorted(m for m, a in weights.items() if not float(a) > 0)
    if bad:
        raise ConfigError(f"data.target_alphas must be > 0, got {[(m, weights[m]) for m in bad]}")
    if weights and mixture not in ("symmetric", "rgb-to-all"):
        raise ConfigError(f"data.target_alphas works with the symmetric and rgb-to-all mixtures; {mixture!r} fixes its own "
                          "alphas")
    if rgb_share != 0.5 and mixture != "rgb-to-all":
        raise ConfigError(f"data.rgb_share sets the rgb-to-all mixture's pixel-only share; mixture {mixture!r} has none "
                          "(use mixture: rgb-to-all, or leave rgb_share at 0.5)")
    if biased_shares and mixture != "rgb-to-all":
        raise ConfigError(f"data.biased_shares adds parts to the rgb-to-all mixture; mixture {mixture!r} has its own "
                          "(use mixture: rgb-to-all, or leave biased_shares empty)")
    if biased_input_alphas and mixture != "rgb-to-all":
        raise ConfigError(f"data.biased_input_alphas sets inputs of the rgb-to-all mixture's biased parts; mixture "
                          f"{mixture!r} has none (use mixture: rgb-to-all with biased_shares)")
    for option, shown in (("biased_shares", {m for key in biased_shares or {} for m in led_modalities(key)}),
                          ("biased_input_alphas", set(biased_input_alphas or {}))):
        never_input = sorted(shown & set(target_only))
        if never_input:
            raise ConfigError(f"data.{option} names {never_input}, which data.target_only keeps from the input; "
                              "a biased part shows them as input: drop one of the two")
    if mixture == "symmetric":
        names = list(modality_names)
        mix = AlphaMixture.single(names, alpha, [float(weights.get(m, alpha)) for m in names])
    elif mixture == "rgb-to-all":
        mix = rgb_to_all_mixture(modality_names, alpha, weights, rgb_share, biased_shares, biased_input_alphas)
    elif mixture in OFFICIAL_MIXTURES:
        mix = OFFICIAL_MIXTURES[mixture]
        absent = [m for m in mix.modalities if m not in modality_names]
        if absent:
            raise ConfigError(f"mixture {mixture!r} masks {absent}, which data.modalities lacks; add them or use "
                             "mixture: symmetric")
    else:
        raise ConfigError(f"unknown mixture {mixture!r}: use symmetric, rgb-to-all or one of {sorted(OFFICIAL_MIXTURES)}")
    return DirichletMasking(mix, input_tokens, target_tokens, image_size=image_size, input_only=input_only,
                            target_only=target_only, allow_missing=allow_missing)


# ------------------------------------------------------------------------------------------
# Batches
# ------------------------------------------------------------------------------------------
class MaskedBatches(torch.utils.data.Dataset):
    """Item k = this rank's k-th micro-batch from a map-style source, masked; pure function of k.

    `masker` is any per-sample ``(sample, rng) -> sample`` function: the 4M masking (then batches
    are token dicts), a fine-tuning augmentation, or None (samples stacked as they are, the
    batches of tokenizer training); other results are stacked by `default_collate`.
    """

    def __init__(self, source: Any, masker: Any, batch_size: int, seed: int, *, rank: int = 0,
                 world: int = 1, accum: int = 1, shuffle: bool = True) -> None:
        self.source, self.masker, self.batch_size, self.seed = source, masker, batch_size, seed
        self.rank, self.world, self.accum, self.shuffle = rank, world, accum, shuffle
        self.n = len(source)
        if self.n == 0:
            raise DataError("the data source is empty; check data.source")
        self._perm: tuple[int, np.ndarray] | None = None

    def _index(self, epoch: int, pos: int) -> int:
        if not self.shuffle:
            return pos
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return int(self._perm[1][pos])

    def positions(self, k: int) -> range:
        """Global sample positions (over the concatenation of epochs) of micro-batch k."""
        step, micro = divmod(k, self.accum)
        piece = step * self.world * self.accum + self.rank * self.accum + micro
        return range(piece * self.batch_size, (piece + 1) * self.batch_size)

    def __getitem__(self, k: int) -> dict:
        masked = []
        set_epoch = getattr(self.source, "set_epoch", None)  # sources that draw per epoch (stored crops)
        for g in self.positions(k):
            epoch, pos = divmod(g, self.n)
            index = self._index(epoch, pos)
            if set_epoch is not None:
                set_epoch(epoch)
            sample = self.source[index]
            masked.append(sample if self.masker is None else
                          self.masker(sample, np.random.default_rng([self.seed, epoch, index])))
        return _collate(masked, self.masker)


class StreamBatches(torch.utils.data.IterableDataset):
    """Micro-batches `start, start+1, ...` (up to `stop`, or endlessly) from an iterable source; resuming
    replays the stream up to `start`.

    The stream is read pass after pass: before pass e a source with `set_epoch` is told e (shard
    order, shuffle buffer and stored-crop choice are drawn per epoch), and masks are seeded by the
    sample's position in the whole run, so every pass is masked anew. Exact only when the stream itself
    is deterministic per epoch.

    The global batch layout is the map-style one: step s is `world x accum` pieces of `batch_size`
    samples and rank r, micro-step m takes piece `r x accum + m`, so the batches of a step do not
    depend on how the pieces are spread over ranks (2 ranks x accum 1 = 1 rank x accum 2):
    - a source with `split(part, parts)` (shards) is read as `world x accum` part streams, each over
      its own shards; piece p of every step is the next batch of part p, so a rank opens only its own
      parts' shards, and a resumed run replays only those;
    - any other stream is read whole by every rank, which keeps the samples of its own pieces
      (consecutive runs of `batch_size` samples, dealt out in piece order);
    - a source that splits itself by rank (`splits_by_rank` without `split`: a stream mixture, seeded
      per rank) is read as it comes; its batches then depend on the number of ranks.
    """

    def __init__(self, source: Any, masker: Any, batch_size: int, seed: int, *, rank: int = 0,
                 world: int = 1, accum: int = 1, start: int = 0, stop: int | None = None) -> None:
        super().__init__()
        self.source, self.masker, self.batch_size, self.seed = source, masker, batch_size, seed
        self.rank, self.world, self.accum, self.start, self.stop = rank, world, accum, start, stop

    def __iter__(self) -> Iterator[dict]:
        count = None if self.stop is None else max(self.stop - self.start, 0)
        first, parts = self.rank * self.accum, self.world * self.accum
        split = getattr(self.source, "split", None)
        if split is not None:
            # Part `first + m` serves micro-steps m, m + accum, ...: it skips the ones before `start`.
            streams = [self._batches(split(first + m, parts), first + m, None, len(range(m, self.start, self.accum)))
                       for m in range(self.accum)]
            batches = (next(streams[k % self.accum]) for k in itertools.count(self.start))
        elif getattr(self.source, "splits_by_rank", False):
            batches = self._batches(self.source, self.rank, None, self.start)
        else:
            def mine(i: int) -> bool:
                return first <= (i // self.batch_size) % parts < first + self.accum

            batches = self._batches(self.source, 0, mine, self.start)
        yield from itertools.islice(batches, count)

    def _batches(self, source: Any, stream_id: int, keep: Any, skip: int) -> Iterator[dict]:
        """Batches of the samples of `source` that `keep(position)` accepts (all when None), pass after
        pass, masks seeded by (seed, stream_id, position); the first `skip` batches are read, not masked."""
        set_epoch = getattr(source, "set_epoch", None)
        buf, skipped, count, i = [], 0, 0, -1
        for epoch in itertools.count():
            if set_epoch is not None:
                set_epoch(epoch)
            seen = 0
            for sample in source:
                i, seen = i + 1, seen + 1
                if keep is not None and not keep(i):
                    continue
                count += 1
                if skipped < skip:  # replaying what the resumed run already consumed
                    if count % self.batch_size == 0:
                        skipped += 1
                    continue
                buf.append(sample if self.masker is None else
                           self.masker(sample, np.random.default_rng([self.seed, stream_id, i])))
                if len(buf) == self.batch_size:
                    yield _collate(buf, self.masker)
                    buf = []
            if not seen:
                raise DataError("the data stream gave no samples" if epoch == 0 else
                                f"the data stream ended after one pass ({i + 1} samples) and gives none on the "
                                "next; give a source that can be iterated again (its __iter__ starts over)")


def _collate(samples: list, masker: Any) -> Any:
    """Masked samples -> one token-dict batch; anything else stacked by `default_collate`."""
    return collate(samples) if isinstance(masker, DirichletMasking) else torch.utils.data.default_collate(samples)


def batch_loader(source: Any, masker: Any, batch_size: int, seed: int, *, start: int = 0, stop: int | None = None,
                 rank: int = 0, world: int = 1, accum: int = 1, shuffle: bool = True,
                 num_workers: int = 0, pin_memory: bool = False) -> Iterator[dict]:
    """This rank's micro-batches `start, start+1, ...` (up to `stop`) as an iterator (unmasked without a masker).

    `pin_memory=True` page-locks each batch in the loader so host-to-GPU copies can overlap compute
    (`tensor.to("cuda", non_blocking=True)`); it is ignored where no accelerator is present.
    """
    if is_map_style(source):
        ds = MaskedBatches(source, masker, batch_size, seed, rank=rank, world=world, accum=accum, shuffle=shuffle)
        sampler = range(start, stop if stop is not None else 2**62)
    else:
        ds = StreamBatches(source, masker, batch_size, seed, rank=rank, world=world, accum=accum, start=start,
                           stop=stop)
        sampler = None
        num_workers = min(num_workers, 1)  # one worker keeps the stream's order
    # a private generator: creating the loader must not draw from torch's global RNG (dropout, drop-path and
    # diffusion noise use it, and a resumed run restores it from the checkpoint before building the loader)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, sampler=sampler, num_workers=num_workers,
                                         persistent_workers=False, generator=torch.Generator().manual_seed(seed),
                                         pin_memory=pin_memory and torch.cuda.is_available())
    return iter(loader)


def sample_batches(source: Any, batch_size: int, seed: int, *, transform: Any = None, **options: Any) -> Iterator[Any]:
    """Unmasked batches of a source (samples stacked by `default_collate`), in `batch_loader`'s order.

    ``transform(sample, rng)`` (e.g. a fine-tuning augmentation) runs per sample with a generator
    seeded by (seed, epoch, index). Batch k is a pure function of (seed, k) for a map-style source,
    so tokenizer training and fine-tuning resume exactly; `options` are `batch_loader`'s (start,
    stop, rank, world, accum, shuffle, num_workers, pin_memory).
    """
    return batch_loader(source, transform, batch_size, seed, **options)


def ordered_batches(source: Any, batch_size: int, *, transform: Any = None, num_workers: int = 0) -> Iterator[Any]:
    """Every sample of a map-style source once, in order, the last batch partial (validation sets).

    ``transform(sample, rng)`` runs with a generator seeded by the sample's index.
    """
    if not is_map_style(source):
        raise DataError("validation needs a map-style source (a length and indexing), not a stream")
    data = _Indexed(source, transform)
    return iter(torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                            generator=torch.Generator().manual_seed(0)))


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, source: Any, transform: Any) -> None:
        self.source, self.transform = source, transform

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> Any:
        sample = self.source[i]
        return sample if self.transform is None else self.transform(sample, np.random.default_rng(i))
