"""Make the UViT DiVAE golden files by running the official implementation (apple/ml-4m).

No UViT decoder was ever released, so open4m's parity evidence is this: a tiny official DiVAE with a
UViT decoder, built from the published UViT tokenizer config's settings (``concat`` conditioning,
``v_prediction``, ``shifted_cosine:0.5``), every parameter perturbed with N(0, 0.1) noise so that
zero-initialised tensors (adaLN gates, ResNet ``conv2``, the mask token) are checked too.

Run it with the reference checkout that ``/work/shared/reference/setup.sh`` makes::

    cd /work/ml4m-ref && PYTHONPATH=stubs:. venv/bin/python \
        /work/main/tests/tokenizers/golden/make_uvit_golden.py /work/main/tests/tokenizers/golden

It writes

* ``divae_uvit_tiny.safetensors``: the checkpoint in the official release layout (a flat state
  dict, the constructor arguments as Python-literal strings in the metadata);
* ``divae_uvit_tiny_golden.safetensors``: ``input``, ``tokens``, ``quant``; ``denoiser.noised`` and
  the decoder's output on it at t = 0, 500, 999 (``denoiser.t{t}``), also with ``cond_mask``
  (``denoiser.masked.t{t}``); ``decode.ddim10`` / ``decode.ddpm10``: ``decode_tokens(tokens,
  timesteps=10, ...)`` with the official DDIM / DDPM scheduler built from the config and
  ``torch.Generator().manual_seed(0)``. The same (DDIM only) under ``xattn.*`` for a second decoder with
  cross-attention conditioning and long skips, whose weights are stored as ``xattn.decoder.*``
  (it shares the checkpoint's encoder and quantizer).

The tiny sizes exist only here: ``vit_t_enc`` (ViT width 64, depth 2, 2 heads, as in the other
fixtures) and ``uvit_t_p2_f8`` / ``uvit_t_p2_f8_longskip`` (patch 2, UNet widths (8, 16) with
GroupNorm of 4 groups, a downsampling before a 2-head transformer of width 16 on a 4x4 grid, an
8x8 positional-embedding table interpolated to it).
"""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import torch
from safetensors.torch import save_file

import fourm.vq.models.uvit as uvit
import fourm.vq.models.vit_models as vit_models
from fourm.vq.scheduling import DDIMScheduler, DDPMScheduler
from fourm.vq.vqvae import DiVAE

TINY_UVIT = dict(patch_size=2, block_out_channels=(8, 16), layers_per_block=2, downsample_before_mid=True,
                 mid_num_heads=2, mid_dim=16, mid_mlp_ratio=4, mid_qkv_bias=True, mid_hw_posemb=8, norm_num_groups=4)

CONFIG = dict(
    image_size=32, n_channels=3, enc_type="vit_t_enc", patch_size=8, post_mlp=True, quant_type="lucid",
    codebook_size=256, latent_dim=32, norm_codes=True,
    dec_type="uvit_t_p2_f8", conditioning="concat", dec_transformer_dropout=0.2,
    num_train_timesteps=1000, scheduler="ddpm", beta_schedule="shifted_cosine:0.5", prediction_type="v_prediction",
    clip_sample=True, thresholding=True, zero_terminal_snr=True,
)
XATTN = dict(dec_type="uvit_t_p2_f8_longskip", conditioning="xattn")
TIMESTEPS = (0, 500, 999)


def register_tiny_presets() -> None:
    """The tiny encoder and decoders, added to the reference's preset modules under their names."""
    def vit_t_enc(in_channels, patch_size, resolution, patch_proj=True, post_mlp=False):
        return vit_models.ViTEncoder(in_channels=in_channels, patch_size=patch_size, resolution=resolution,
                                     dim_tokens=64, depth=2, num_heads=2, mlp_ratio=4, qkv_bias=True,
                                     norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), sincos_pos_emb=True,
                                     patch_proj=patch_proj, post_mlp=post_mlp)

    vit_models.vit_t_enc = vit_t_enc
    uvit.uvit_t_p2_f8 = partial(uvit.UViT, mid_layers=2, **TINY_UVIT)
    uvit.uvit_t_p2_f8_longskip = partial(uvit.UViT, mid_layers=3, mid_use_long_skip=True, **TINY_UVIT)


@torch.no_grad()
def perturb(module: torch.nn.Module, generator: torch.Generator) -> None:
    for p in module.parameters():
        p.add_(0.1 * torch.randn(p.shape, generator=generator))


def scheduler(kind: str, config: dict):
    cls = DDIMScheduler if kind == "ddim" else DDPMScheduler
    return cls(num_train_timesteps=config["num_train_timesteps"], thresholding=config["thresholding"],
               clip_sample=config["clip_sample"], beta_schedule=config["beta_schedule"],
               prediction_type=config["prediction_type"], zero_terminal_snr=config["zero_terminal_snr"])


@torch.no_grad()
def decoder_outputs(model: DiVAE, config: dict, tokens: torch.Tensor, quant: torch.Tensor, noised: torch.Tensor,
                    cond_mask: torch.Tensor, prefix: str = "", samplers: tuple[str, ...] = ("ddim", "ddpm"),
                    ) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for t in TIMESTEPS:
        out[f"{prefix}denoiser.t{t}"] = model.decoder(noised, torch.tensor(t), quant)
        out[f"{prefix}denoiser.masked.t{t}"] = model.decoder(noised, torch.tensor(t), quant, cond_mask=cond_mask)
    for kind in samplers:
        out[f"{prefix}decode.{kind}10"] = model.decode_tokens(
            tokens, timesteps=10, scheduler=scheduler(kind, config), generator=torch.Generator().manual_seed(0),
            verbose=False)
    return out


def flat_state(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state dict as safetensors stores it: every name its own contiguous tensor (shared ones repeated)."""
    return {prefix + k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def main(out_dir: Path) -> None:
    register_tiny_presets()
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = DiVAE(sync_codebook=False, **CONFIG).eval()
    perturb(model, g)
    xattn_config = {**CONFIG, **XATTN}
    xattn = DiVAE(sync_codebook=False, **xattn_config).eval()
    xattn.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("decoder.")}, strict=False)
    perturb(xattn.decoder, g)

    image = torch.rand((2, 3, 32, 32), generator=g) * 2 - 1
    noised = torch.randn((2, 3, 32, 32), generator=g)
    # True = masked out: half of the first sample's 4x4 latent, all of the second's.
    cond_mask = torch.stack([torch.randperm(16, generator=g).reshape(4, 4) < 8, torch.ones(4, 4, dtype=torch.bool)])
    with torch.no_grad():
        quant, _, tokens = model.encode(image)
    golden = {"input": image, "tokens": tokens, "quant": quant, "denoiser.noised": noised, "cond_mask": cond_mask}
    golden.update(decoder_outputs(model, CONFIG, tokens, quant, noised, cond_mask))
    golden.update(decoder_outputs(xattn, xattn_config, tokens, quant, noised, cond_mask, prefix="xattn.",
                                  samplers=("ddim",)))
    golden.update(flat_state(xattn.decoder, prefix="xattn.decoder."))

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(flat_state(model), str(out_dir / "divae_uvit_tiny.safetensors"),
              metadata={k: str(v) for k, v in CONFIG.items()})
    save_file({k: v.contiguous() for k, v in golden.items()}, str(out_dir / "divae_uvit_tiny_golden.safetensors"),
              metadata={"xattn": str(XATTN), "timesteps": str(TIMESTEPS)})
    for name in ("divae_uvit_tiny.safetensors", "divae_uvit_tiny_golden.safetensors"):
        print(name, (out_dir / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
