"""Build a real Hugging Face cache on disk (the layout ``huggingface_hub`` reads), for offline Hub tests.

``add_repo(cache, "owner/name", {"model.safetensors": path_or_bytes})`` writes
``models--owner--name/{refs/main, snapshots/<commit>/...}``, so ``hf_hub_download`` with
``cache_dir=cache`` (or ``HF_HUB_CACHE=cache``) and ``HF_HUB_OFFLINE=1`` finds the files through its
normal code path.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Mapping


def add_repo(cache: Path, repo_id: str, files: Mapping[str, Path | bytes | str], revision: str = "main") -> Path:
    """Put ``files`` (relative name -> source file, bytes or text) into the cache as one snapshot; returns it."""
    commit = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()
    repo = Path(cache) / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    for name, src in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, Path):
            shutil.copyfile(src, target)
        elif isinstance(src, bytes):
            target.write_bytes(src)
        else:
            target.write_text(src)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snapshot


def text_tokenizer_30k():
    """A WordPiece tokenizer with exactly the official 30k vocabulary size (made-up word pieces)."""
    from open4m.tokenizers import TextTokenizer

    words = [f"w{i:05d}x" for i in range(40000)]
    return TextTokenizer.train([" ".join(words[i:i + 50]) for i in range(0, 40000, 50)], vocab_size=30000)


def tiny_official_tokenizers() -> dict[str, object]:
    """Random-init tokenizers with the released tokenizers' vocabularies, channels and decoder families.

    Keyed by the released tokenizer names of :mod:`open4m.pretrained`; tiny networks (a few MB in all).
    """
    import torch

    from open4m.tokenizers import DiVAE, DiVAEConfig, VQVAE, VQVAEConfig

    torch.manual_seed(0)
    vit = dict(enc_type="vit_t_enc", dec_type="vit_t_dec", image_size=224, patch_size=16, latent_dim=8, post_mlp=True)
    divae = dict(enc_type="vit_t_enc", dec_type="unet_patched_t", image_size=224, patch_size=16, latent_dim=8,
                 scheduler="ddim", beta_schedule="linear", prediction_type="sample", thresholding=True)
    return {
        "4M_tokenizers_rgb_16k_224-448": DiVAE(DiVAEConfig(n_channels=3, codebook_size=16384, **divae)),
        "4M_tokenizers_depth_8k_224-448": DiVAE(DiVAEConfig(n_channels=1, codebook_size=8192, **divae)),
        "4M_tokenizers_normal_8k_224-448": DiVAE(DiVAEConfig(n_channels=3, codebook_size=8192, **divae)),
        "4M_tokenizers_semseg_4k_224-448": VQVAE(VQVAEConfig(n_channels=64, n_labels=134, codebook_size=4096, **vit)),
        "4M_tokenizers_CLIP-B16_8k_224-448": VQVAE(VQVAEConfig(n_channels=512, patch_proj=False, codebook_size=8192,
                                                               **vit)),
    }


def official_4m7_cache(cache: Path, fixtures: Path) -> Path:
    """A Hugging Face cache holding ``EPFL-VILAB/4M-7_B_CC12M`` (the random-init fm7_tiny fixture in the
    official layout), the 4M-7 tokenizers under their released ids, and the text tokenizer where the
    registry caches it. Returns ``cache``."""
    from open4m.model import load_config

    config = load_config(fixtures / "fm7_tiny.safetensors").to_json()
    add_repo(cache, "EPFL-VILAB/4M-7_B_CC12M", {"model.safetensors": fixtures / "fm7_tiny.safetensors",
                                               "config.json": config})
    staging = Path(cache).parent / "staging"
    for name, tok in tiny_official_tokenizers().items():
        saved = tok.save_pretrained(staging / name)
        add_repo(cache, f"EPFL-VILAB/{name}", {"model.safetensors": saved / "model.safetensors",
                                                "config.json": saved / "config.json"})
    text = text_tokenizer_30k()
    text.save_pretrained(Path(cache) / "open4m" / "text_tokenizer_4m_wordpiece_30k.json")
    return Path(cache)


# The released tokenizer names a 4M-21 / 4M-7-SR model's modalities point to (every one but human poses,
# which no modality names), keyed by the modality whose official architecture each has.
_RELEASED_BY_MODALITY = {
    "rgb": "4M_tokenizers_rgb_16k_224-448",
    "depth": "4M_tokenizers_depth_8k_224-448",
    "normal": "4M_tokenizers_normal_8k_224-448",
    "canny_edge": "4M_tokenizers_edge_8k_224-512",
    "semseg_coco": "4M_tokenizers_semseg_4k_224-448",
    "CLIP-B16": "4M_tokenizers_CLIP-B16_8k_224-448",
    "DINOv2-B14": "4M_tokenizers_DINOv2-B14_8k_224-448",
    "DINOv2-B14-global": "4M_tokenizers_DINOv2-B14-global_8k_16_224",
    "ImageBind-H14": "4M_tokenizers_ImageBind-H14_8k_224-448",
    "ImageBind-H14-global": "4M_tokenizers_ImageBind-H14-global_8k_16_224",
    "sam_mask": "4M_tokenizers_sam-instance_1k_64",
}

# The official patched-UNet decoder family at its smallest: one level, one res block, no attention, the
# noisy image patchified 16x16 (a 14x14 grid at 224 px), so a 25-step decode takes milliseconds.
_FAST_UNET = dict(dec_channels=32, dec_num_res_blocks=1, dec_channel_mult=(1,), dec_attention_resolutions=(),
                  dec_patch_size=16)


def fast_official_tokenizers() -> dict[str, object]:
    """Random-init tokenizers under every released tokenizer name a 4M-21 or 4M-7-SR model uses.

    Each has its release's class, vocabulary, channels, token layout and decoder family
    (:func:`open4m.tokenizers.presets.official_config` at the tiny size), with networks shrunk further
    so that decoding is cheap: for tests that decode many outputs (the documentation's examples).
    Keyed by released name.
    """
    import torch

    from open4m.tokenizers import DiVAE, DiVAEConfig, VQVAE, VQVAEConfig
    from open4m.tokenizers.presets import official_config

    torch.manual_seed(0)
    out = {}
    for modality, name in _RELEASED_BY_MODALITY.items():
        kind, cfg = official_config(modality, "tiny")
        if kind == "divae":
            out[name] = DiVAE(DiVAEConfig(**cfg, **_FAST_UNET))
        else:
            out[name] = VQVAE(VQVAEConfig(**cfg))
    return out


def tiny_release(modality_names, *, seed: int = 0):
    """A random-init stand-in for a released FourM: its architecture family (SwiGLU, no biases) and its
    B encoder depth (12 blocks, so block indices written for the real model are valid), at width 32 with
    a 2-block decoder; every modality of ``modality_names`` in, every one with tokens out."""
    import torch

    from open4m.modalities import Kind, get
    from open4m.model import FourM, preset

    torch.manual_seed(seed)
    outputs = [m for m in modality_names if get(m).kind not in (Kind.PIXELS, Kind.SEQUENCE_EMBEDDING)]
    return FourM(preset("base-swiglu_nobias", domains_in=list(modality_names), domains_out=outputs, dim=32,
                        num_heads=2, decoder_depth=2))


def doc_examples_cache(cache: Path) -> Path:
    """A Hugging Face cache holding, under their released ids, tiny random-init stand-ins for what the
    documentation's examples load: ``EPFL-VILAB/4M-7_B_CC12M``, ``EPFL-VILAB/4M-21_B`` and
    ``EPFL-VILAB/4M-7-SR_L_CC12M`` (:func:`tiny_release`), every released tokenizer those models name
    (:func:`fast_official_tokenizers`) and the 30k text tokenizer where the registry caches it.
    About 250 MB; a few seconds to build. Returns ``cache``."""
    from open4m.modalities import FOURM_7, FOURM_7_SR, FOURM_21

    cache = Path(cache)
    staging = cache.parent / "staging"
    for seed, (name, mods) in enumerate((("4M-7_B_CC12M", FOURM_7), ("4M-21_B", FOURM_21),
                                         ("4M-7-SR_L_CC12M", FOURM_7_SR))):
        saved = tiny_release(mods, seed=seed).save_pretrained(staging / name)
        add_repo(cache, f"EPFL-VILAB/{name}", {"model.safetensors": saved / "model.safetensors",
                                              "config.json": saved / "config.json"})
    for name, tok in fast_official_tokenizers().items():
        saved = tok.save_pretrained(staging / name)
        add_repo(cache, f"EPFL-VILAB/{name}", {"model.safetensors": saved / "model.safetensors",
                                                "config.json": saved / "config.json"})
    text_tokenizer_30k().save_pretrained(cache / "open4m" / "text_tokenizer_4m_wordpiece_30k.json")
    shutil.rmtree(staging)
    return cache
