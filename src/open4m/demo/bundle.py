"""A world-model bundle: one FourM, its tokenizers and its modality registry entries, in one folder.

The folder is the layout of every open4m model (`FourM.save_pretrained`): `config.json`,
`model.safetensors` (its metadata describes the world's modalities, pixel normalisation included),
the generated model card `README.md`, `tokenizers.json` + `tokenizers/` (one VQ-VAE per image
modality, one text tokenizer for every sequence modality), plus `world.json` (the world spec,
recipe, timings and evaluation that :class:`WorldModel` and the card read). So
`open4m.pipeline("rgb->depth", model=FOLDER)` and `open4m generate --model FOLDER` run a bundle
with no tokenizer arguments and no world code. Weights are stored in float16 to keep the wheel
small and loaded back as float32. Bundles of the earlier layout (`fourm.safetensors`,
`tok_<modality>.safetensors`, `text_tokenizer.json`) still load; `WorldModel.load(old).save(new)`
converts one. :class:`WorldModel` runs the any-to-any tasks on world arrays.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from . import world
from .world import IMAGE_MODALITIES, SEQUENCE_MODALITIES, WorldSpec
from ..atomic import write_text_atomic
from ..errors import NotFound

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "world64"
_FILES = ("world.json", "model.safetensors", "tokenizers.json")
_LEGACY_FILES = ("world.json", "fourm.safetensors", "text_tokenizer.json",
                 *(f"tok_{b}.safetensors" for b in IMAGE_MODALITIES))


class MissingModelError(NotFound):
    """No bundle where one was expected; the message says how to make one."""


def save_bundle(out: str | Path, spec: WorldSpec, model: Any, tokenizers: Mapping[str, Any], text_tok: Any,
                info: Mapping[str, Any]) -> Path:
    """Write a bundle in the standard model layout (weights as float16); returns its folder.

    ``tokenizers`` maps image modalities (``depth``) to their VQ-VAEs; ``info`` is what `world.json`
    records besides the spec (recipe, timings, eval, notes), from which the model card is written.
    """
    from .model_card import card_info

    out = Path(out)
    named: dict[str, Any] = {spec.tok(b): copy.deepcopy(tok).half() for b, tok in tokenizers.items()}
    named.update({name: text_tok for name in spec.sequence_modalities})  # one object: saved once
    card = card_info(spec, model, tokenizers, text_tok, info)
    _half_except_pos_emb(copy.deepcopy(model)).save_pretrained(out, tokenizers=named, card=card, overwrite=True)
    write_text_atomic(out / "world.json", json.dumps({"spec": spec.to_dict(), **info}, indent=2) + "\n",
                      overwrite=True)
    return out


def _half_except_pos_emb(model: torch.nn.Module) -> torch.nn.Module:
    """float16 weights, but float32 sincos tables: loading checks those against freshly built ones."""
    tables = {n: b.clone() for n, b in model.named_buffers() if n.endswith("pos_emb")}
    model.half()
    for name, table in tables.items():
        owner, _, attr = name.rpartition(".")
        setattr(model.get_submodule(owner), attr, table)
    return model


def _is_legacy(path: Path) -> bool:
    """A bundle written before the standard layout (its FourM in `fourm.safetensors`)."""
    return not (path / "model.safetensors").is_file() and (path / "fourm.safetensors").is_file()


def bundle_missing(path: str | Path) -> list[str]:
    """The files a bundle folder lacks (empty when it is complete), in whichever layout it has."""
    path = Path(path)
    if _is_legacy(path):
        return [f for f in _LEGACY_FILES if not (path / f).is_file()]
    missing = [f for f in _FILES if not (path / f).is_file()]
    return missing or _unlisted_tokenizers(path)


def _unlisted_tokenizers(path: Path) -> list[str]:
    """The world modalities `tokenizers.json` names no file for, and the listed files that are absent."""
    from ..hub import Origin
    from ..tokenizers.resolver import read_manifest

    spec = WorldSpec.from_dict(json.loads((path / "world.json").read_text())["spec"])
    table = read_manifest(Origin(path))
    names = [*spec.token_modalities, *spec.sequence_modalities]
    return ([f"tokenizers.json entry for {n}" for n in names if n not in table]
            + sorted({table[n] for n in names if n in table and not (path / table[n]).is_file()}))


def load_tokenizers(path: str | Path | None = None) -> tuple[WorldSpec, dict[str, Any], Any, dict[str, Any]]:
    """A bundle's spec (its modalities registered), image tokenizers, text tokenizer and info: all but the FourM."""
    path = Path(path) if path else SHIPPED
    missing = bundle_missing(path)
    if missing:
        where = "no world model is shipped in this installation" if path == SHIPPED else f"{path} is not a world-model bundle"
        raise MissingModelError(f"{where} (missing {', '.join(missing)}). Train one from scratch with "
                                f"`open4m demo --train --out DIR` (about 35 minutes on 2 CPU cores), then run "
                                f"`open4m demo --model DIR/model`.")
    meta = json.loads((path / "world.json").read_text())
    spec = WorldSpec.from_dict(meta["spec"])
    world.register_modalities(spec)
    toks, text_tok = _legacy_tokenizers(path) if _is_legacy(path) else _listed_tokenizers(path, spec)
    return spec, {b: t.float().eval() for b, t in toks.items()}, text_tok, meta


def _listed_tokenizers(path: Path, spec: WorldSpec) -> tuple[dict[str, Any], Any]:
    """The tokenizers `tokenizers.json` lists, through the resolver every open4m model uses (vocabularies checked)."""
    from ..hub import Origin
    from ..tokenizers.resolver import TokenizerSet

    vocab = {spec.tok(b): int(spec.codebook_sizes[b]) for b in IMAGE_MODALITIES}
    vocab.update({name: spec.text_vocab_size for name in spec.sequence_modalities})
    found = TokenizerSet(origin=Origin(path), registry=False, vocab=vocab)
    return {b: found.get(spec.tok(b)) for b in IMAGE_MODALITIES}, found.get(spec.sequence_modalities[0])


def _legacy_tokenizers(path: Path) -> tuple[dict[str, Any], Any]:
    """`tok_<modality>.safetensors` and `text_tokenizer.json` of a bundle of the earlier layout."""
    from ..tokenizers import TextTokenizer, VQVAE

    toks = {b: VQVAE.from_pretrained(path / f"tok_{b}.safetensors") for b in IMAGE_MODALITIES}
    return toks, TextTokenizer.from_pretrained(path / "text_tokenizer.json")


class WorldModel:
    """The FourM of a bundle plus its tokenizers: world arrays in, world arrays/texts out."""

    def __init__(self, spec: WorldSpec, fourm: Any, tokenizers: Mapping[str, Any], text_tok: Any,
                 info: Mapping[str, Any]) -> None:
        from ..generation import Sampler

        self.spec, self.fourm, self.tokenizers, self.text, self.info = spec, fourm, dict(tokenizers), text_tok, dict(info)
        self.sampler = Sampler(fourm)

    @classmethod
    def load(cls, path: str | Path | None = None) -> "WorldModel":
        """Load a bundle folder (default: the model shipped inside the package)."""
        from ..model import FourM

        path = Path(path) if path else SHIPPED
        spec, toks, text_tok, meta = load_tokenizers(path)
        fourm = FourM.from_pretrained(path / "fourm.safetensors" if _is_legacy(path) else path).float().eval()
        return cls(spec, fourm, toks, text_tok, meta)

    def save(self, out: str | Path) -> Path:
        """Write this model as a bundle in the standard layout (how a bundle of the earlier layout is converted)."""
        return save_bundle(out, self.spec, self.fourm, self.tokenizers, self.text,
                           {k: v for k, v in self.info.items() if k != "spec"})

    # -- encoding and decoding ----------------------------------------------------------------------
    def rgb_pixels(self, rgb: np.ndarray) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> the model's pixel input."""
        return torch.stack([world.to_model_form("rgb", a) for a in rgb])

    @torch.no_grad()
    def tokenize_image(self, base: str, arrays: np.ndarray) -> torch.Tensor:
        x = torch.stack([world.to_model_form(base, a) for a in arrays])
        return self.tokenizers[base].encode(x).reshape(len(arrays), -1)

    @torch.no_grad()
    def detokenize_image(self, base: str, tokens: torch.Tensor) -> np.ndarray:
        n = self.spec.image_size // self.spec.patch_size
        return world.from_model_form(base, self.tokenizers[base].decode(tokens.reshape(-1, n, n)))

    def tokenize_text(self, key: str, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> right-padded ids ending in [EOS] (a full sequence condition)."""
        limit = world.SEQUENCE_MAX_TOKENS[key] - 2
        rows = [self.text.encode(t)[:limit].tolist() + [self.text.token_to_id("[EOS]")] for t in texts]
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), self.text.token_to_id("[PAD]"), dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, :len(r)] = torch.tensor(r)
        return out

    def _texts(self, entry: Mapping[str, torch.Tensor]) -> list[str]:
        texts = []
        for row, hidden in zip(entry["tensor"], entry["input_mask"]):
            texts.append(self.text.decode(row[~hidden].tolist()).strip())
        return texts

    # -- generation ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, conditions: Mapping[str, torch.Tensor], target: str, *, steps: int = 4,
                 temperature: float = 0.0, seed: int = 0) -> Mapping[str, torch.Tensor]:
        """One target modality from full conditions (`{modality: tensor}`); returns its token-dict entry.

        Temperature 0 (greedy) is the default: for prediction tasks the most likely tokens score best.
        """
        from ..generation import build_schedule

        mod_is_image = target in self.spec.token_modalities
        grid_tokens = (self.spec.image_size // self.spec.patch_size) ** 2
        steps = max(1, min(steps, grid_tokens // 4))  # small grids: a cosine schedule would leave steps empty
        schedule = build_schedule(f"{','.join(conditions)}->{target}", steps=steps if mod_is_image else None,
                                  temps=temperature, image_size=self.spec.image_size,
                                  model_modalities=self.fourm.input_modalities + self.fourm.output_modalities)
        gen = torch.Generator().manual_seed(seed)
        return self.sampler.generate(conditions, schedule, generator=gen)[target]

    def predict_image(self, base: str, conditions: Mapping[str, torch.Tensor], **kw: Any) -> np.ndarray:
        """An image modality (`depth`, `rgb`, ...) as world arrays."""
        entry = self.generate(conditions, self.spec.tok(base), **kw)
        return self.detokenize_image(base, entry["tensor"])

    def predict_text(self, key: str, conditions: Mapping[str, torch.Tensor], **kw: Any) -> list[str]:
        """A sequence modality (`caption`, `det`, ...) as texts."""
        return self._texts(self.generate(conditions, SEQUENCE_MODALITIES[key], **kw))

    def from_rgb(self, rgb: np.ndarray) -> dict[str, Any]:
        """Every other modality predicted from RGB alone (each target on its own, not chained)."""
        cond = {self.spec.rgb_pixels: self.rgb_pixels(rgb)}
        out: dict[str, Any] = {b: self.predict_image(b, cond) for b in IMAGE_MODALITIES if b != "rgb"}
        out.update({k: self.predict_text(k, cond) for k in SEQUENCE_MODALITIES})
        return out

    def rgb_from(self, captions: Sequence[str] | None = None, depth: np.ndarray | None = None, *,
                 steps: int = 8, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
        """RGB generated from a caption and/or a depth map."""
        cond: dict[str, torch.Tensor] = {}
        if captions is not None:
            cond[SEQUENCE_MODALITIES["caption"]] = self.tokenize_text("caption", captions)
        if depth is not None:
            cond[self.spec.tok("depth")] = self.tokenize_image("depth", depth)
        if not cond:
            raise ValueError("rgb_from needs captions, depth or both")
        return self.predict_image("rgb", cond, steps=steps, temperature=temperature, seed=seed)
