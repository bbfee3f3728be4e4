"""Per-modality embeddings: what turns a modality's tensor into transformer tokens, and back to logits.

Every embedding returns two things kept apart until the end, as 4M does: `x`, the content
(token embeddings, projected pixels or vectors), and `emb`, the positional + modality embedding
that the model adds to the encoder input *and* to the decoder context.

Encoder side: pixels (`rgb@*`), image tokens (`tok_*`), sequences (`caption`, `det`, ...), and
sequence embeddings (`t5_caption`). Decoder side: image tokens (queries are the learned mask
token) and sequences (teacher-forced, right-shifted ids); both own the output head `to_logits`.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from ..errors import ConfigError, DataError
from ..modalities import Kind, Modality
from .layers import Linear

SINCOS_TABLE_LENGTH = 512  # rows of the 1D sincos table, as in the released checkpoints


def sincos_1d(length: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """(1, length, dim) table: concat(sin(p·ω), cos(p·ω)), ω_k = T^(-k/(dim/2))."""
    if dim % 2:
        raise ConfigError(f"1D sincos positional embeddings need an even dim, got {dim}")
    omega = temperature ** (-torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = torch.arange(length, dtype=torch.float64)[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()[None]


def sincos_2d(h: int, w: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """(1, h*w, dim) table for a row-major grid: concat(sin(rω), cos(rω), sin(cω), cos(cω))."""
    if dim % 4:
        raise ConfigError(f"2D sincos positional embeddings need dim divisible by 4, got {dim}")
    omega = temperature ** (-torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")
    r = rows.flatten()[:, None] * omega[None]
    c = cols.flatten()[:, None] * omega[None]
    return torch.cat([r.sin(), r.cos(), c.sin(), c.cos()], dim=1).float()[None]


def rank_positions(excluded: torch.Tensor, pos_emb: torch.Tensor, limit: int | None = None) -> torch.Tensor:
    """Positional embeddings by rank among the non-excluded positions (zero where excluded).

    A sequence's visible tokens are numbered 0, 1, 2, ... in order whatever their offsets in the
    tensor, which is what makes span-masked inputs and targets position-consistent. Ranks at or
    beyond `limit` fall back to position 0 (the official decoder's treatment of overlong targets).
    """
    rank = (~excluded).long().cumsum(dim=1) - 1
    rank = rank.clamp_(min=0)
    if limit is not None:
        rank = rank.masked_fill(rank >= limit, 0)
    # Only a sequence longer than the table can overflow it: the shape test spares the common case a host
    # sync. A compiled graph skips the check (a data-dependent branch would break it); eager calls check.
    if (excluded.shape[1] > pos_emb.shape[1] and not torch.compiler.is_compiling()
            and int(rank.max()) >= pos_emb.shape[1]):
        raise DataError(
            f"sequence has {int(rank.max()) + 1} tokens but the positional table holds {pos_emb.shape[1]}; "
            "truncate it to the modality's max_tokens"
        )
    out = pos_emb[0][rank]
    return out.masked_fill(excluded[..., None], 0.0)


class _ModalityEmbedding(nn.Module):
    """Holds what every embedding has: the modality embedding and the positional table."""

    def __init__(self, modality: Modality, dim: int, num_positions: int, grid: tuple[int, int] | None) -> None:
        super().__init__()
        self.modality = modality
        self.dim = dim
        self.mod_emb = nn.Parameter(torch.zeros(1, 1, dim))
        if not modality.sincos_pos_emb:
            self.pos_emb = nn.Parameter(torch.zeros(1, num_positions, dim))
        elif grid is not None:
            self.register_buffer("pos_emb", sincos_2d(*grid, dim))
        else:
            self.register_buffer("pos_emb", sincos_1d(max(num_positions, SINCOS_TABLE_LENGTH), dim))

    def grid_emb(self, batch: int) -> torch.Tensor:
        return (self.pos_emb + self.mod_emb).expand(batch, -1, -1)


class PixelEncoderEmbedding(_ModalityEmbedding):
    """Raw pixels → patches (channel-last inside a patch, as officially) → bias-free linear."""

    def __init__(self, modality: Modality, dim: int, image_size: int, patch_size: int) -> None:
        grid = (image_size // patch_size, image_size // patch_size)
        super().__init__(modality, dim, grid[0] * grid[1], grid)
        self.patch_size = patch_size
        self.image_size = image_size
        self.proj = nn.Linear((modality.num_channels or 3) * patch_size * patch_size, dim, bias=False)

    def forward(self, d: dict) -> tuple[torch.Tensor, torch.Tensor]:
        img = d["tensor"]
        b, c, h, w = img.shape
        if h != self.image_size or w != self.image_size:
            raise DataError(
                f"{self.modality.name}: expected {self.image_size}x{self.image_size} images, got {h}x{w}; "
                "resize the input or use a model built for that resolution"
            )
        p = self.patch_size
        patches = rearrange(img, "b c (nh ph) (nw pw) -> b (nh nw) (ph pw c)", ph=p, pw=p)
        return self.proj(patches.to(self.proj.weight.dtype)), self.grid_emb(b)  # pixels arrive fp32 for any model dtype


class ImageTokenEncoderEmbedding(_ModalityEmbedding):
    """A grid of VQ token ids → embeddings (flattened row-major)."""

    def __init__(self, modality: Modality, dim: int, image_size: int, patch_size: int) -> None:
        grid = (image_size // patch_size, image_size // patch_size)
        super().__init__(modality, dim, grid[0] * grid[1], grid if modality.sincos_pos_emb else None)
        self.token_emb = nn.Embedding(modality.vocab_size, dim)

    def forward(self, d: dict) -> tuple[torch.Tensor, torch.Tensor]:
        ids = d["tensor"].reshape(d["tensor"].shape[0], -1)
        return self.token_emb(ids), self.grid_emb(ids.shape[0])


class SequenceEncoderEmbedding(_ModalityEmbedding):
    """Token ids → embeddings, positions by rank among the visible tokens."""

    def __init__(self, modality: Modality, dim: int) -> None:
        super().__init__(modality, dim, modality.positions, None)
        self.token_emb = nn.Embedding(modality.vocab_size, dim, padding_idx=0)

    def forward(self, d: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return self.token_emb(d["tensor"]), rank_positions(d["input_mask"], self.pos_emb) + self.mod_emb


class SequenceEmbEncoderEmbedding(_ModalityEmbedding):
    """Precomputed float embeddings (T5 caption features) projected into the model."""

    def __init__(self, modality: Modality, dim: int) -> None:
        super().__init__(modality, dim, modality.positions, None)
        self.orig_emb_dim = modality.orig_emb_dim or 4096
        self.emb_proj = nn.Linear(self.orig_emb_dim, dim)

    def forward(self, d: dict) -> tuple[torch.Tensor, torch.Tensor]:
        feats = d["tensor"]
        if feats.shape[-1] != self.orig_emb_dim:
            raise DataError(f"{self.modality.name}: expected {self.orig_emb_dim}-d embeddings, got {feats.shape[-1]}")
        return self.emb_proj(feats), rank_positions(d["input_mask"], self.pos_emb) + self.mod_emb


class ImageTokenDecoderEmbedding(_ModalityEmbedding):
    """Decoder side of an image-token modality: positions, modality embedding and the output head.

    Queries are the model's shared mask token, so no input token table is needed (the official
    one is dead weight; the checkpoint layer writes and skips it for compatibility).
    """

    def __init__(self, modality: Modality, dim: int, image_size: int, patch_size: int) -> None:
        grid = (image_size // patch_size, image_size // patch_size)
        super().__init__(modality, dim, grid[0] * grid[1], grid if modality.sincos_pos_emb else None)
        self.to_logits = Linear(dim, modality.vocab_size, bias=False)

    def embed(self, d: dict) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """(x, emb, ids): x is None (the model substitutes mask tokens)."""
        ids = d["tensor"].reshape(d["tensor"].shape[0], -1)
        return None, self.grid_emb(ids.shape[0]), ids


class SequenceDecoderEmbedding(_ModalityEmbedding):
    """Decoder side of a sequence: teacher-forced token embeddings, target-rank positions, head."""

    def __init__(self, modality: Modality, dim: int, tie: bool = True) -> None:
        super().__init__(modality, dim, modality.positions, None)
        self.max_length = modality.positions
        self.token_emb = nn.Embedding(modality.vocab_size, dim, padding_idx=0)
        self.to_logits = Linear(dim, modality.vocab_size, bias=False)
        if tie:
            self.to_logits.weight = self.token_emb.weight

    def embed(self, d: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids = d["tensor"]
        emb = rank_positions(d["target_mask"], self.pos_emb, limit=self.max_length) + self.mod_emb
        return self.token_emb(ids), emb, ids

    def embed_positions(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Embeddings of tokens at explicit target ranks (autoregressive decoding, one step at a time)."""
        positions = positions.masked_fill(positions >= self.max_length, 0)
        return self.token_emb(ids) + self.pos_emb[0][positions] + self.mod_emb


def build_encoder_embedding(modality: Modality, dim: int, image_size: int, patch_size: int) -> nn.Module:
    """The encoder embedding a modality's kind calls for."""
    size = modality.image_size or image_size
    patch = modality.patch_size or patch_size
    if modality.kind is Kind.PIXELS:
        return PixelEncoderEmbedding(modality, dim, size, patch)
    if modality.kind is Kind.IMAGE_TOKENS:
        return ImageTokenEncoderEmbedding(modality, dim, size, patch)
    if modality.kind is Kind.SEQUENCE:
        return SequenceEncoderEmbedding(modality, dim)
    if modality.kind is Kind.SEQUENCE_EMBEDDING:
        return SequenceEmbEncoderEmbedding(modality, dim)
    raise ConfigError(f"modality {modality.name!r} ({modality.kind.value}) cannot be a model input; tokenize it first")


def build_decoder_embedding(modality: Modality, dim: int, image_size: int, patch_size: int,
                            tie: bool = True) -> nn.Module:
    """The decoder embedding (with output head) a modality's kind calls for."""
    if modality.kind is Kind.IMAGE_TOKENS:
        return ImageTokenDecoderEmbedding(modality, dim, modality.image_size or image_size,
                                          modality.patch_size or patch_size)
    if modality.kind is Kind.SEQUENCE:
        return SequenceDecoderEmbedding(modality, dim, tie=tie)
    raise ConfigError(f"modality {modality.name!r} ({modality.kind.value}) cannot be a model output")

