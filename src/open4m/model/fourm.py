"""The FourM encoder-decoder.

`FourM.forward` takes the official batch format (see `open4m.batch`) and returns the official
outputs (a `LossOutput` unpacks as the official `(loss, {modality: loss})`), so code written for
the released models ports unchanged. Internally the work is split
into pieces the sampler reuses: token selection (`select_encoder_tokens`,
`select_decoder_tokens`), `encode` (encoder + context projection), `decode` and the heads.

Deliberate differences from the reference implementation (each keeps loaded checkpoints
computing the same function):
- attention is fused SDPA with additive masks (or FlexAttention with block masks, `attention="flex"`);
  no softmax is materialised;
- image-target decoders have no input token table (it was dead weight);
- `loss_type="mod"` averages over modalities that have targets (the reference counted empty
  modalities as zeros in the mean) and `loss_type="token"` is the true mean over target tokens
  (the reference weighted by tokens x vocabulary size);
- decoder modality order is the dict order unless shuffling is asked for, from a generator.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .. import modalities
from ..atomic import write_text_atomic
from ..batch import validate_mod_dict
from ..hub import HubOptions, Origin
from ..modalities import Modality
from ..ops import additive_mask
from . import checkpoint, flex
from .config import FourMConfig
from .embeddings import (
    ImageTokenDecoderEmbedding,
    build_decoder_embedding,
    build_encoder_embedding,
)
from .layers import DecoderBlock, EncoderBlock, LayerNorm, Linear, _BlockOptions
from .linear_cross_entropy import linear_cross_entropy
from ..errors import ConfigError, DataError, OutputExists


@dataclass
class EncoderTokens:
    """The encoder's selected tokens: content `x`, positional+modality `emb`, padding and modality ids."""

    x: torch.Tensor  # (B, N, D)
    emb: torch.Tensor  # (B, N, D)
    blocked: torch.Tensor  # (B, N) bool, True = padding
    mod_ids: torch.Tensor  # (B, N) long, -1 = padding / register


@dataclass
class DecoderTokens:
    """The decoder's selected query tokens, their targets and the self-attention mask."""

    x: torch.Tensor  # (B, M, D)
    emb: torch.Tensor  # (B, M, D)
    blocked: torch.Tensor  # (B, M) bool
    target_ids: torch.Tensor  # (B, M) long, 0 at padding
    attn_blocked: torch.Tensor  # (B, M, M) bool, True = query may not attend to key
    mod_ids: torch.Tensor  # (B, M) long, -1 = padding


@dataclass
class LossOutput:
    """What `FourM.forward` returns when it computes the loss; unpacks as `loss, per_modality`.

    - `loss`: the training objective, a scalar (see `loss_type` in `FourM.forward`);
    - `per_modality[m]`: modality m's mean cross-entropy over its predicted target tokens;
    - `num_targets[m]`: how many target tokens of m were predicted (all rows of the batch together),
      a long scalar on the model's device: sum it, compare it, weight by it without a host sync.

    Whether a modality had targets is `num_targets[m] > 0`, never its loss value: a modality with
    none (no target positions, or a sequence target of a single token, which has no next token to
    predict) reports a loss of exactly 0 that keeps its head in the graph, so data-parallel ranks
    stay in step. `loss, per_mod = model(...)` and `model(...)[0]` work as with the official tuple.
    """

    loss: torch.Tensor
    per_modality: dict[str, torch.Tensor]
    num_targets: dict[str, torch.Tensor]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.loss, self.per_modality))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int | slice) -> Any:
        return (self.loss, self.per_modality)[index]


@dataclass
class Context:
    """Encoder output as the decoder sees it, plus the cross-attention mask."""

    context: torch.Tensor  # (B, N, D) = proj(encoder output) + encoder emb
    mask: torch.Tensor | None  # additive (B, 1, 1, N) or None when nothing is padded


def _gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` (B, n) of every sequence in ``t`` (B, N) or (B, N, D).

    Feature tensors go through ``index_select`` on the flattened batch: its backward needs only the
    indices, while ``torch.gather`` keeps its whole input (every embedded token of every modality,
    200 MB per base 4M-7 training step) alive until the backward pass.
    """
    if t.dim() == 2:
        return torch.gather(t, 1, idx)
    b, n = idx.shape
    rows = idx + torch.arange(b, device=idx.device)[:, None] * t.shape[1]
    return t.reshape(b * t.shape[1], t.shape[-1]).index_select(0, rows.reshape(-1)).view(b, n, t.shape[-1])


def _keep_order(blocked: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the first `n` slots after moving non-blocked positions first, order kept."""
    return torch.sort(blocked.to(torch.uint8), dim=1, stable=True).indices[:, :n]


def init_weights(model: nn.Module) -> None:
    """MAE-style init: xavier linears (q/k/v counted as separate matrices), N(0, 0.02) embeddings.

    A module-level function so every trunk built from these blocks (FourM, FourMEncoder) starts alike.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            out_f, in_f = module.weight.shape
            parts = 3 if name.endswith("qkv") else 2 if name.endswith("kv") else 1
            bound = math.sqrt(6.0 / (out_f // parts + in_f))
            nn.init.uniform_(module.weight, -bound, bound)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, LayerNorm)):
            nn.init.ones_(module.weight)
            if isinstance(module.bias, nn.Parameter):
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)
    for name, param in model.named_parameters():
        if name == "mask_token" or name == "register_tokens" or name.endswith(("mod_emb", "pos_emb")):
            nn.init.normal_(param, std=0.02)


class FourM(nn.Module):
    """Any-to-any masked multimodal encoder-decoder (4M)."""

    def __init__(self, config: FourMConfig | Mapping[str, Any] | None = None, *, tie_decoder_embeddings: bool = True,
                 attention: str = "sdpa", **overrides: Any) -> None:
        """`attention`: the attention backend, `sdpa` or `flex` (see `set_attention_backend`)."""
        super().__init__()
        self.attention = flex.check_backend(attention)
        if config is None:
            config = FourMConfig(**overrides)
        elif isinstance(config, Mapping):
            config = FourMConfig.from_dict({**config, **overrides})
        elif overrides:
            config = FourMConfig.from_dict({**config.to_dict(), **overrides})
        self.config = config
        self.origin: Origin | None = None  # where from_pretrained found it (its tokenizers are looked up there)
        dim = config.dim
        self.modality_info: dict[str, Modality] = modalities.get_many(
            sorted(set(config.domains_in) | set(config.domains_out)))

        self.encoder_embeddings = nn.ModuleDict({
            m: build_encoder_embedding(self.modality_info[m], dim, config.image_size, config.patch_size)
            for m in config.domains_in if self.modality_info[m].encoder
        })
        self.decoder_embeddings = nn.ModuleDict({
            m: build_decoder_embedding(self.modality_info[m], dim, config.image_size, config.patch_size,
                                       tie=tie_decoder_embeddings)
            for m in config.domains_out if self.modality_info[m].decoder
        })
        if not self.encoder_embeddings:
            raise ConfigError(f"none of domains_in={config.domains_in} can be a model input")

        opts = _BlockOptions(dim, config.num_heads, config.mlp_hidden_dim, config.act_layer, config.gated_mlp,
                             config.qkv_bias, config.proj_bias, config.mlp_bias, config.norm_bias, config.qk_norm)
        enc_rates, dec_rates = self._drop_path_rates(config)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        if config.num_register_tokens > 0:
            self.register_tokens = nn.Parameter(torch.zeros(1, config.num_register_tokens, dim))
        self.encoder = nn.ModuleList(EncoderBlock(opts, r) for r in enc_rates)
        self.encoder_norm = opts.norm()
        self.decoder_proj_context = nn.Linear(dim, dim, bias=True)
        self.decoder = nn.ModuleList(DecoderBlock(opts, r) for r in dec_rates)
        self.decoder_norm = opts.norm()
        init_weights(self)
        if config.share_modality_embeddings:
            for name, dec in self.decoder_embeddings.items():
                if name in self.encoder_embeddings:
                    dec.mod_emb = self.encoder_embeddings[name].mod_emb
        self.set_activation_checkpointing(config.use_act_checkpoint)

    # -- construction ------------------------------------------------------------------------
    @staticmethod
    def _drop_path_rates(config: FourMConfig) -> tuple[list[float], list[float]]:
        ne, nd = config.encoder_depth, config.decoder_depth
        if config.shared_drop_path:
            ramp = torch.linspace(0, config.drop_path_rate_encoder, ne + nd).tolist()
            return ramp[:ne], ramp[ne:]
        return (torch.linspace(0, config.drop_path_rate_encoder, ne).tolist(),
                torch.linspace(0, config.drop_path_rate_decoder, nd).tolist())

    def set_activation_checkpointing(self, enabled: bool) -> None:
        """Recompute block activations in backward (less memory, ~30% more compute)."""
        for block in (*self.encoder, *self.decoder):
            block.act_checkpoint = enabled

    def set_attention_backend(self, name: str) -> None:
        """`sdpa` (default: `F.scaled_dot_product_attention` with additive masks, every device) or `flex`
        (FlexAttention with block masks, for CUDA with `torch.compile`; see `open4m.model.flex`).

        A runtime choice: both compute the same function from the same weights, so checkpoints and
        configs do not record it. `flex` has no backward pass on the CPU (PyTorch 2.13).
        """
        self.attention = flex.check_backend(name)

    def set_sparse_embedding_gradients(self, enabled: bool) -> None:
        """Let token tables receive row-sparse gradients instead of dense (vocab x dim) ones.

        A training step touches a few hundred rows of each 30k-row table, yet a dense embedding
        gradient allocates and zero-fills the whole table every step. With this on, tied decoder
        tables accumulate their rows into the output head's dense gradient in place, and the
        encoder tables' sparse gradients are scattered into persistent buffers before the
        optimizer step (`open4m.train.optim.densify_sparse_gradients`). Same gradients, less memory
        traffic; single-process training only (DDP buckets need dense gradients).
        """
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                module.sparse = enabled

    @property
    def input_modalities(self) -> list[str]:
        return list(self.encoder_embeddings)

    @property
    def output_modalities(self) -> list[str]:
        return list(self.decoder_embeddings)

    def no_weight_decay(self) -> set[str]:
        """Parameters AdamW should not decay: norms, biases, embeddings, positional/modality/mask tokens."""
        skip = set()
        for name, param in self.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if (param.dim() < 2 or leaf in ("mod_emb", "pos_emb", "mask_token", "register_tokens")
                    or ".token_emb." in name or name.endswith("token_emb.weight")):
                skip.add(name)
        return skip

    # -- token selection -----------------------------------------------------------------------
    def _check_batch(self, mod_dict: Mapping[str, Mapping[str, torch.Tensor]], validate: bool) -> None:
        unknown = [m for m in mod_dict if m not in self.encoder_embeddings and m not in self.decoder_embeddings]
        if unknown:
            raise DataError(
                f"this model has no embedding for modality {unknown}; its inputs are {self.input_modalities} "
                f"and its outputs {self.output_modalities}. Drop those entries or use a model trained on them."
            )
        if validate and not torch.compiler.is_compiling():  # its checks read values: eager calls only
            validate_mod_dict(mod_dict)

    def select_encoder_tokens(self, mod_dict: Mapping[str, Mapping[str, torch.Tensor]],
                              num_encoder_tokens: int | None = None) -> EncoderTokens:
        """Embed every input modality, keep the visible tokens (in order), pad to a fixed count.

        `num_encoder_tokens=None` keeps as many as the batch row with the most visible tokens.
        """
        xs, embs, blocked, ids = [], [], [], []
        for name, d in mod_dict.items():
            emb_module = self.encoder_embeddings[name] if name in self.encoder_embeddings else None
            if emb_module is None:
                continue
            x, emb = emb_module(d)
            xs.append(x)
            embs.append(emb)
            blocked.append(d["input_mask"])
            ids.append(torch.full_like(d["input_mask"], self.modality_info[name].id, dtype=torch.long))
        if not xs:
            raise DataError(f"the batch has none of this model's input modalities {self.input_modalities}")
        x, emb, mask, mod_ids = (torch.cat(t, dim=1) for t in (xs, embs, blocked, ids))
        if num_encoder_tokens is None:
            num_encoder_tokens = max(int((~mask).sum(dim=1).max()), 1)
        keep = _keep_order(mask, num_encoder_tokens)
        x, emb, mask, mod_ids = (_gather(t, keep) for t in (x, emb, mask, mod_ids))
        if self.config.num_register_tokens > 0:
            b, r = x.shape[0], self.config.num_register_tokens
            x = torch.cat([self.register_tokens.expand(b, -1, -1), x], dim=1)
            emb = torch.cat([emb.new_zeros(b, r, emb.shape[-1]), emb], dim=1)
            mask = torch.cat([mask.new_zeros(b, r), mask], dim=1)
            mod_ids = torch.cat([mod_ids.new_full((b, r), -1), mod_ids], dim=1)
        keep_f = (~mask)[..., None].to(x.dtype)
        return EncoderTokens(x * keep_f, emb * keep_f, mask, mod_ids.masked_fill(mask, -1))

    def select_decoder_tokens(self, mod_dict: Mapping[str, Mapping[str, torch.Tensor]], num_decoder_tokens: int,
                              order: list[str] | None = None) -> DecoderTokens:
        """Build decoder queries for every target position and keep `num_decoder_tokens` of them.

        Sequences are teacher-forced with a one-step shift: query i sees token i and predicts i+1,
        so only positions where both are targets count.
        """
        xs, embs, blocked, targets, attn, ids = [], [], [], [], [], []
        names = order if order is not None else [m for m in mod_dict if m in self.decoder_embeddings]
        for name in names:
            d, module = mod_dict[name], self.decoder_embeddings[name]
            x, emb, tgt = module.embed(d)
            tm, dam = d["target_mask"], d["decoder_attention_mask"]
            if isinstance(module, ImageTokenDecoderEmbedding):
                xs.append(self.mask_token.expand_as(emb))
                embs.append(emb)
                blocked.append(tm)
                targets.append(tgt)
                attn.append(dam)
            else:
                xs.append(x[:, :-1])
                embs.append(emb[:, :-1])
                blocked.append(tm[:, 1:] | tm[:, :-1])
                targets.append(tgt[:, 1:])
                attn.append(dam[:, :-1])
            ids.append(torch.full_like(blocked[-1], self.modality_info[name].id, dtype=torch.long))
        if not xs:
            raise DataError(f"the batch has none of this model's output modalities {self.output_modalities}")
        x, emb, mask, tgt, dam, mod_ids = (torch.cat(t, dim=1) for t in (xs, embs, blocked, targets, attn, ids))
        keep = _keep_order(mask, num_decoder_tokens)
        x, emb, mask, tgt, dam, mod_ids = (_gather(t, keep) for t in (x, emb, mask, tgt, dam, mod_ids))
        attn_blocked = self._decoder_attention(dam, mod_ids)
        keep_f = (~mask)[..., None].to(x.dtype)
        return DecoderTokens(x * keep_f, emb * keep_f, mask, tgt.masked_fill(mask, 0), attn_blocked,
                             mod_ids.masked_fill(mask, -1))

    def _decoder_attention(self, compressed: torch.Tensor, mod_ids: torch.Tensor) -> torch.Tensor:
        """Expand the compressed mask: query i may see keys [0, cumsum_i), within its own modality."""
        b, m = compressed.shape
        keys = torch.arange(m, device=compressed.device)
        if self.config.decoder_causal_mask:
            blocked = (keys[None, :] > keys[:, None]).expand(b, m, m)
        else:
            blocked = keys[None, None, :] >= compressed.cumsum(dim=1)[:, :, None]
        if self.config.decoder_sep_mask:
            blocked = blocked | (mod_ids[:, :, None] != mod_ids[:, None, :])
        return blocked

    # -- the network -----------------------------------------------------------------------------
    def encode(self, tokens: EncoderTokens) -> Context:
        """Run the encoder and project its output into the decoder's cross-attention context."""
        mask = None
        # No mask when nothing is blocked lets SDPA take its fastest kernel; that test reads a value, so a
        # compiled graph always passes the mask instead of breaking on it.
        if torch.compiler.is_compiling() or bool(tokens.blocked.any()):
            mask = additive_mask(tokens.blocked[:, None, None, :], tokens.x.dtype)
        layer_mask = mask if mask is None or self.attention == "sdpa" else flex.FlexMask.from_blocked(
            tokens.blocked[:, None, :], tokens.blocked.shape[1])
        x = tokens.x + tokens.emb
        for block in self.encoder:
            x = block(x, layer_mask)
        x = self.encoder_norm(x)
        return Context(self.decoder_proj_context(x) + tokens.emb, mask)

    def decode(self, queries: torch.Tensor, context: Context, attn_blocked: torch.Tensor | None) -> torch.Tensor:
        """Run the decoder blocks over query embeddings; returns normed hidden states (B, M, D)."""
        if self.attention == "flex":
            sa_mask = None if attn_blocked is None else flex.FlexMask.from_blocked(attn_blocked)
            xa_mask = None if context.mask is None else flex.FlexMask.from_blocked(
                flex.blocked_keys(context.mask), queries.shape[1])
        else:
            sa_mask = None if attn_blocked is None else additive_mask(attn_blocked[:, None], queries.dtype)
            xa_mask = None if context.mask is None else context.mask.to(queries.dtype)
        y = queries
        for block in self.decoder:
            y = block(y, context.context, sa_mask, xa_mask)
        return self.decoder_norm(y)

    def logits(self, modality: str, hidden: torch.Tensor) -> torch.Tensor:
        """Output head of one modality."""
        return self.decoder_embeddings[modality].to_logits(hidden)

    def forward(self, mod_dict: Mapping[str, Mapping[str, torch.Tensor]], num_encoder_tokens: int,
                num_decoder_tokens: int, loss_type: str = "mod", return_logits: bool = False, *,
                shuffle_decoder_modalities: bool = False, generator: torch.Generator | None = None,
                validate: bool = True) -> LossOutput | dict[str, torch.Tensor]:
        """The official forward: the loss (a `LossOutput`, which unpacks as `(loss, {modality: loss})`),
        or with `return_logits` the `{modality: logits (B, M, V)}`.

        `loss_type="mod"` (official) averages the per-modality losses over the modalities that have
        targets; `"token"` is the mean over all target tokens.

        `shuffle_decoder_modalities` randomises the order of target modalities in the decoder (the
        official training behaviour; it only matters when `decoder_sep_mask` is off).
        """
        if loss_type not in ("mod", "modality", "token"):
            raise ConfigError(f"loss_type must be 'mod' or 'token', got {loss_type!r}")
        self._check_batch(mod_dict, validate)
        order = [m for m in mod_dict if m in self.decoder_embeddings]
        if shuffle_decoder_modalities:
            order = [order[i] for i in torch.randperm(len(order), generator=generator).tolist()]
        enc = self.select_encoder_tokens(mod_dict, num_encoder_tokens)
        dec = self.select_decoder_tokens(mod_dict, num_decoder_tokens, order)
        context = self.encode(enc)
        hidden = self.decode(dec.x + dec.emb, context, dec.attn_blocked)
        if return_logits:
            return {m: self.logits(m, hidden) for m in order}
        return self._loss(hidden, dec, order, loss_type)

    def _head_loss(self, modality: str, hidden: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Summed fp32 cross-entropy of one modality's head. Training takes the chunked head + loss (no
        logits kept for the backward pass); a compiled graph keeps the plain form, which the compiler fuses."""
        head = self.decoder_embeddings[modality].to_logits
        if torch.is_grad_enabled() and isinstance(head, Linear) and not torch.compiler.is_compiling():
            return linear_cross_entropy(hidden, head.weight, head.bias, target)
        return F.cross_entropy(head(hidden).float(), target, reduction="sum")

    def _loss(self, hidden: torch.Tensor, dec: DecoderTokens, order: list[str], loss_type: str) -> LossOutput:
        """Cross-entropy per target modality (fp32), combined without reading a value on the host.

        A modality with no targets in the batch gives an empty selection, a zero loss and a zero
        gradient for its head (it stays in the graph, so data-parallel ranks stay in step); counts
        are tensors, so neither eager steps nor compiled graphs branch on the data.
        """
        per_mod: dict[str, torch.Tensor] = {}
        num_targets: dict[str, torch.Tensor] = {}
        ce_sums = []
        for name in order:
            sel = dec.mod_ids == self.modality_info[name].id
            num_targets[name] = sel.sum()
            ce_sums.append(self._head_loss(name, hidden[sel], dec.target_ids[sel]))
            per_mod[name] = ce_sums[-1] / num_targets[name].clamp(min=1)
        if not order:
            return LossOutput(hidden.sum() * 0.0, per_mod, num_targets)
        counts = torch.stack(list(num_targets.values()))
        if loss_type == "token":
            total = torch.stack(ce_sums).sum() / counts.sum().clamp(min=1)
        else:  # the mean over the modalities that have targets
            present = (counts > 0).float()
            total = (torch.stack(list(per_mod.values())) * present).sum() / present.sum().clamp(min=1)
        return LossOutput(total, per_mod, num_targets)

    # -- checkpoints -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, *, strict: bool = True, map_location: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None, revision: str | None = None,
                        cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
                        local_files_only: bool = False) -> "FourM":
        """Load a released name (``4M-21_B``), a Hub repo id, a release-layout `.safetensors` file or a Hub-layout folder.

        Hub files go through ``huggingface_hub`` (its cache, ``HF_HUB_OFFLINE``, ``revision``,
        ``token``, ``local_files_only``). ``model.origin`` remembers where the model came from, so
        the tokenizers its folder lists are found (and fetched) on first use.
        """
        options = HubOptions(revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only)
        path, origin = checkpoint.locate_model(source, options)
        weights, config_dict = checkpoint.weights_and_config(path)
        state, metadata = checkpoint.read_safetensors(weights)
        config = checkpoint.config_of(weights, config_dict, metadata)
        model = cls(config, tie_decoder_embeddings=checkpoint._decoder_ties(state, config))
        checkpoint.load_state_dict_into(model, state, strict=strict)
        model.to(device=map_location, dtype=dtype)
        model.origin = origin
        return model.eval()

    def save_file(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the release layout: one safetensors file, the config in its metadata."""
        return checkpoint.atomic_save_file(checkpoint.official_state_dict(self), path, checkpoint.metadata_of(self.config),
                                           overwrite=overwrite)

    def save_pretrained(self, directory: str | os.PathLike, *, tokenizers: Mapping[str, Any] | None = None,
                        card: Mapping[str, Any] | None = None, overwrite: bool = False) -> Path:
        """Write the Hub layout: `config.json` + `model.safetensors` (which also carries the config), a
        generated model card (`README.md`) and, given ``tokenizers``, the model's own tokenizers.

        ``tokenizers`` maps modality names to tokenizer objects (saved under `tokenizers/`, once
        each however many modalities share one) or to released names / Hub ids (kept as references);
        `tokenizers.json` records the map, so `open4m.pipeline(..., model=folder_or_repo)` needs no
        tokenizer arguments. ``card`` adds to the card: description, data, metrics, license, tags.
        Without ``overwrite``, a folder that already holds any of these files is refused before anything is written.
        """
        from ..card import fourm_card
        from ..tokenizers.resolver import MANIFEST_NAME, write_manifest

        directory = Path(directory)
        if not overwrite:  # checked before writing anything: a refusal leaves no half-saved model behind
            ours = [checkpoint.WEIGHTS_NAME, checkpoint.CONFIG_NAME, "README.md", MANIFEST_NAME]
            ours += ["tokenizers"] if tokenizers else []
            there = [name for name in ours if (directory / name).exists()]
            if there:
                raise OutputExists(f"{directory} already holds {', '.join(there)}; save into a new or empty folder, "
                                   "or pass overwrite=True to replace them")
        directory.mkdir(parents=True, exist_ok=True)
        self.save_file(directory / checkpoint.WEIGHTS_NAME, overwrite=overwrite)
        write_text_atomic(directory / checkpoint.CONFIG_NAME, self.config.to_json(), overwrite=overwrite)
        table = write_manifest(directory, tokenizers) if tokenizers else {}
        if not tokenizers and (directory / MANIFEST_NAME).exists():
            (directory / MANIFEST_NAME).unlink()  # a stale manifest would point at another model's tokenizers
        rows = []
        for name, mod in self.modality_info.items():
            tokens = mod.num_tokens(self.config.image_size) if mod.is_image_like else mod.max_tokens
            role = ("in" if name in self.config.domains_in else "") + ("/out" if name in self.config.domains_out else "")
            rows.append([name, mod.kind.value, mod.vocab_size or "-", tokens or "-", role.strip("/")])
        text = fourm_card(directory.name, self.config.to_dict(), rows, table, {"repo_id": str(directory), **(card or {})})
        write_text_atomic(directory / "README.md", text, overwrite=True)
        return directory

    def push_to_hub(self, repo_id: str, *, tokenizers: Mapping[str, Any] | None = None,
                    card: Mapping[str, Any] | None = None, private: bool | None = None, token: str | bool | None = None,
                    commit_message: str = "Upload FourM with open4m", branch: str | None = None,
                    create_pr: bool = False) -> str:
        """`save_pretrained` into a temporary folder and upload it to the Hub repo ``repo_id``; returns the commit URL."""
        from ..hub import push_folder

        info = {"repo_id": repo_id, **(card or {})}
        return push_folder(repo_id, lambda d: self.save_pretrained(d, tokenizers=tokenizers, card=info),
                           private=private, token=token, commit_message=commit_message, branch=branch,
                           create_pr=create_pr)
