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

Reading a bundle's tokenizers (`load_tokenizers`, `bundle_missing`, `SHIPPED`) is what the world
source needs too, so it lives in the library (`open4m.sources.world`); this module re-exports it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..atomic import write_text_atomic
from ..data.synthetic import world
from ..data.synthetic.world import IMAGE_MODALITIES, SEQUENCE_MODALITIES, WorldSpec
# a world model's tokenizers are what the world source reads: they live with it in the library
from ..sources.world import SHIPPED, MissingModelError, bundle_missing, is_legacy, load_tokenizers

__all__ = ["SHIPPED", "MissingModelError", "WorldModel", "bundle_missing", "load_tokenizers", "save_bundle"]


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
        fourm = FourM.from_pretrained(path / "fourm.safetensors" if is_legacy(path) else path).float().eval()
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
