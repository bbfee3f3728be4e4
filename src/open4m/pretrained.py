"""Every released 4M artifact: what it is, where it lives, and how to get it by name.

``list_pretrained()`` is the table users read (``open4m info --pretrained``); ``find(name)`` accepts
the short name (``4M-21_B``) or the Hub id (``EPFL-VILAB/4M-21_B``). Nothing is downloaded here:
:mod:`open4m.hub` fetches files when a model or tokenizer is actually loaded. The ids, modality sets
and sizes are those of the official README (``apple/ml-4m``); the text tokenizer is the one file
released only inside the official repository, fetched from a pinned commit.

Tokenizer entries also carry what the released files do not say: the value range each one expects
(``preprocess``), where the architecture alone would guess wrong (the 1-channel edge tokenizer
takes edges in [-1, 1], not standardised depth).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from .modalities import FOURM_7, FOURM_7_SR, FOURM_21

__all__ = ["Pretrained", "list_pretrained", "find", "PRETRAINED", "TEXT_TOKENIZER", "OFFICIAL_ORG"]

OFFICIAL_ORG = "EPFL-VILAB"
_TOK = f"{OFFICIAL_ORG}/4M_tokenizers_"
_IMAGE = {"input": "image", "mean": [0.5], "std": [0.5], "interpolation": "bilinear"}
_MASK = {"input": "image", "mean": [0.0], "std": [1.0], "interpolation": "bilinear"}  # SAM masks: [0, 1], as officially


@dataclass(frozen=True)
class Pretrained:
    """One released artifact.

    ``kind``: 'fourm', 'fourm-t2i', 'fourm-sr' (models), 'tokenizer' (VQ-VAE / DiVAE) or 'text'.
    ``modalities``: what a model reads and writes, or which token modalities a tokenizer serves.
    ``expects``: the input convention in words (what users ask upstream); ``preprocess`` overrides
    the tokenizer's input convention where its architecture alone would guess wrong.
    """

    name: str
    repo_id: str
    kind: str
    description: str
    modalities: tuple[str, ...] = ()
    params: str = ""
    data: str = ""
    expects: str = ""
    preprocess: dict[str, Any] = field(default_factory=dict)
    url: str = ""  # for files not on the Hub
    sha256: str = ""
    filename: str = "model.safetensors"

    @property
    def is_model(self) -> bool:
        return self.kind.startswith("fourm")


def _fourm(size: str, params: str, mods: str, data: str, kind: str = "fourm", prefix: str = "4M-") -> list[Pretrained]:
    sets = {"7": FOURM_7, "21": FOURM_21, "7-SR": FOURM_7_SR, "7-T2I": FOURM_7}
    out = []
    for d in data.split(","):
        suffix = "" if d == "mix" else f"_{d}"
        name = f"{prefix}{mods}_{size}{suffix}"
        desc = {"fourm": f"4M-{mods.split('-')[0]} {size}: any-to-any over {len(sets[mods])} modalities",
                "fourm-t2i": f"4M-7 {size} specialised for text-to-image (caption -> RGB tokens)",
                "fourm-sr": f"4M-7 {size} super-resolution: 224 px token maps -> 448 px (chain after a base model)"}[kind]
        out.append(Pretrained(name, f"{OFFICIAL_ORG}/{name}", kind, desc, sets[mods], params,
                              "CC12M+COYO700M+C4" if d == "mix" else d))
    return out


def _tokenizer(suffix: str, modalities: tuple[str, ...], description: str, expects: str,
               preprocess: dict[str, Any] | None = None) -> Pretrained:
    return Pretrained(f"4M_tokenizers_{suffix}", _TOK + suffix, "tokenizer", description, modalities,
                      expects=expects, preprocess=preprocess or {})


TEXT_TOKENIZER = Pretrained(
    "text", "apple/ml-4m", "text", "the WordPiece vocabulary (30k) shared by every sequence modality",
    ("caption", "det", "metadata", "color_palette", "human_poses", "sam_instance"),
    expects="text; structural tokens ([PAD]=0, [EOS]=3, sentinels, v0..v3 values) at fixed ids",
    url="https://raw.githubusercontent.com/apple/ml-4m/cda590faa3b9f022c28537193d3e1650527646a3/"
        "fourm/utils/tokenizer/trained/text_tokenizer_4m_wordpiece_30k.json",
    sha256="8e684e9a0673e39f70702a698869f909ba697f871a0c6b2a07b5f61e91b3526e",
    filename="text_tokenizer_4m_wordpiece_30k.json",
)

PRETRAINED: tuple[Pretrained, ...] = (
    *_fourm("B", "198M", "7", "CC12M,COYO700M"),
    *_fourm("B", "198M", "21", "mix"),
    *_fourm("L", "705M", "7", "CC12M,COYO700M"),
    *_fourm("L", "705M", "21", "mix"),
    *_fourm("XL", "2.8B", "7", "CC12M,COYO700M"),
    *_fourm("XL", "2.8B", "21", "mix"),
    *[p for s, n in (("B", "198M"), ("L", "705M"), ("XL", "2.8B")) for p in _fourm(s, n, "7-T2I", "CC12M", "fourm-t2i")],
    *_fourm("L", "705M", "7-SR", "CC12M", "fourm-sr"),
    _tokenizer("rgb_16k_224-448", ("tok_rgb@224", "tok_rgb@448"), "RGB DiVAE, 16k codes, 224-448 px",
               "RGB in [-1, 1] ((x/255 - 0.5) / 0.5; not ImageNet statistics), sides divisible by 32"),
    _tokenizer("depth_8k_224-448", ("tok_depth@224", "tok_depth@448"), "depth DiVAE, 8k codes, 224-448 px",
               "depth standardised per image (mean/std of the values between the 10% and 90% quantiles)"),
    _tokenizer("normal_8k_224-448", ("tok_normal@224", "tok_normal@448"), "surface normals DiVAE, 8k codes",
               "unit normals mapped to [-1, 1] per channel (x, y, z)"),
    _tokenizer("edge_8k_224-512", ("tok_canny_edge@224", "tok_sam_edge@224"), "edge DiVAE (Canny and SAM edges)",
               "1-channel edge map in [-1, 1] (0 = no edge -> -1)", _IMAGE),
    _tokenizer("semseg_4k_224-448", ("tok_semseg@224", "tok_semseg@448"), "COCO semantic segmentation VQ-VAE",
               "COCO-panoptic class ids + 1 (0 = no class / ignore, 1..133 = the classes), nearest-resized"),
    _tokenizer("CLIP-B16_8k_224-448", ("tok_clip@224", "tok_clip@448"), "CLIP-B/16 feature-map VQ-VAE",
               "CLIP ViT-B/16 patch features after ln_post @ proj (512-d per 16 px patch)"),
    _tokenizer("DINOv2-B14_8k_224-448", ("tok_dinov2@224",), "DINOv2-B/14 feature-map VQ-VAE",
               "DINOv2-B/14 x_norm_patchtokens (768-d per 14 px patch)"),
    _tokenizer("DINOv2-B14-global_8k_16_224", ("tok_dinov2_global",), "DINOv2-B/14 global embedding, 16 tokens",
               "DINOv2-B/14 x_norm_clstoken (768-d)"),
    _tokenizer("ImageBind-H14_8k_224-448", ("tok_imagebind@224",), "ImageBind-H/14 feature-map VQ-VAE",
               "ImageBind-H/14 vision tokens without the class token (1280-d per 14 px patch)"),
    _tokenizer("ImageBind-H14-global_8k_16_224", ("tok_imagebind_global",), "ImageBind-H/14 global embedding",
               "ImageBind-H/14 class token (1280-d)"),
    _tokenizer("sam-instance_1k_64", ("sam_mask",), "SAM instance masks, 16 tokens per 64x64 mask",
               "a binary instance mask cropped to its box and resized to 64x64, in [0, 1] (decodes to logits)", _MASK),
    _tokenizer("human-poses_1k_8", ("human_poses",), "3D human poses (SMPL body rotations), 8 tokens",
               "207 numbers: 23 body joints x a 3x3 rotation matrix"),
    TEXT_TOKENIZER,
)

_BY_KEY = {key.lower(): p for p in PRETRAINED for key in (p.name, p.repo_id) if p.kind != "text"}
_BY_KEY["text"] = TEXT_TOKENIZER


def list_pretrained(kind: str | None = None) -> list[Pretrained]:
    """Every released artifact (or those of one ``kind``: 'fourm', 'fourm-t2i', 'fourm-sr', 'tokenizer', 'text')."""
    return [p for p in PRETRAINED if kind is None or p.kind == kind]


def find(name: str) -> Pretrained | None:
    """The entry for a short name or Hub id (case-insensitive), or None for anything else."""
    return _BY_KEY.get(str(name).lower())


def suggest(name: str) -> list[str]:
    """Close released names, for 'did you mean' messages."""
    names = [p.name for p in PRETRAINED]
    return difflib.get_close_matches(str(name).split("/")[-1], names, n=3, cutoff=0.6)
