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
