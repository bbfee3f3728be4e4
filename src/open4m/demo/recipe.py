"""`open4m demo --train`: the whole world-model recipe from scratch, driven by one YAML file.

world (scenes rendered by `open4m.data.synthetic.world.render_world`) -> text tokenizer + one VQ-VAE
per image modality -> pre-tokenized folder -> FourM trained by `open4m.train` with the 4M masking ->
a bundle (`open4m.demo.bundle`).
Everything goes into `out/`; a rerun re-renders the (deterministic) world but reuses finished
tokenizers, the token folder and the newest FourM checkpoint, so an interrupted run continues.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import yaml

from ..data.synthetic import world
from ..data.synthetic.world import (IMAGE_MODALITIES, SEQUENCE_MODALITIES, WorldData, WorldSpec, encode_images,
                                    render_world, token_samples)

DEFAULT_RECIPE = Path(__file__).resolve().parents[3] / "configs" / "demo" / "world64.yaml"
_SECTIONS = ("world", "tokenizers", "text", "fourm")
# Reconstruction losses of the continuous maps (the trainer's default for feature maps is a cosine loss,
# which is meaningless for 1-channel maps); RGB keeps MSE and class maps cross-entropy.
_TOKENIZER_LOSS = {"depth": "smooth_l1", "normal": "smooth_l1", "canny_edge": "mse"}


def load_recipe(path: str | Path | None = None) -> dict[str, Any]:
    """Read and check a recipe (default: the shipped model's `configs/demo/world64.yaml`)."""
    if path is None and not DEFAULT_RECIPE.is_file():  # an installed wheel: the shipped bundle keeps its recipe
        from ..sources.world import SHIPPED

        shipped = SHIPPED / "world.json"
        if shipped.is_file():
            return _checked(yaml.safe_load(json.loads(shipped.read_text())["recipe"]), shipped)
    path = Path(path) if path else DEFAULT_RECIPE
    if not path.is_file():
        raise FileNotFoundError(f"demo recipe {path} not found; pass --config PATH to a recipe like configs/demo/world64.yaml")
    with open(path) as f:
        return _checked(yaml.safe_load(f), path)


def _checked(recipe: Any, path: Path) -> dict[str, Any]:
    if not isinstance(recipe, dict):
        raise ValueError(f"{path}: a recipe is a mapping with sections {_SECTIONS}")
    unknown = sorted(set(recipe) - set(_SECTIONS))
    missing = sorted(set(_SECTIONS) - set(recipe))
    if unknown or missing:
        raise ValueError(f"{path}: unknown sections {unknown}, missing sections {missing}; expected {_SECTIONS}")
    return recipe


# -- stage 2: tokenizers ---------------------------------------------------------------------------
class _Samples(torch.utils.data.Dataset):
    """Model-form samples of one image modality (what the tokenizer trainer batches)."""

    def __init__(self, base: str, arrays: np.ndarray) -> None:
        self.base, self.arrays = base, arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> torch.Tensor:
        return world.to_model_form(self.base, self.arrays[i])


def tokenizer_config(base: str, size: int, patch: int, section: Mapping[str, Any]) -> dict[str, Any]:
    """VQ-VAE config fields of one image modality's tokenizer."""
    from ..data.synthetic import SEMSEG_CLASSES

    arch = dict(section["arch"])
    cfg = dict(image_size=size, patch_size=patch, codebook_size=int(section["codebook_size"][base]),
               latent_dim=int(section["latent_dim"]), enc_type="vit", dec_type="vit", modality=base,
               enc_dim=arch["dim"], enc_depth=arch["depth"], enc_heads=arch["heads"],
               dec_dim=arch["dim"], dec_depth=arch["depth"], dec_heads=arch["heads"])
    if base == "semseg":
        cfg.update(n_channels=16, n_labels=len(SEMSEG_CLASSES), preprocess={"input": "class_map", "interpolation": "nearest"})
    elif base == "rgb":
        cfg.update(n_channels=3, preprocess={"input": "image", "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear"})
    else:
        cfg.update(n_channels=3 if base == "normal" else 1, preprocess={"input": "features", "interpolation": "bilinear"})
    return cfg


def train_image_tokenizer(base: str, data: WorldData, section: Mapping[str, Any], size: int, patch: int,
                          out: Path, progress: bool = True) -> Path:
    """Train (or reuse) the VQ-VAE of one image modality; returns its `.safetensors` file."""
    from ..tokenizers.training import TrainConfig, build_tokenizer, train_tokenizer

    final = out / f"tok_{base}.safetensors"
    if final.exists():
        return final
    model = build_tokenizer("vqvae", tokenizer_config(base, size, patch, section))
    t = section["train"]
    cfg = TrainConfig(steps=int(t["steps"]), batch_size=int(t["batch_size"]), lr=float(t["lr"]),
                      warmup_steps=int(t["warmup"]), ema_decay=float(t["ema_decay"]), log_every=50,
                      sample_every=int(t["steps"]), save_every=int(t["steps"]), seed=0,
                      loss=_TOKENIZER_LOSS.get(base))
    train_tokenizer(model, _Samples(base, data.images[base]), cfg, out / "runs" / base, progress=progress)
    trained = type(model).from_pretrained(out / "runs" / base / "tokenizer")
    trained.save_pretrained(final)
    return final


def text_vocab(texts: Mapping[str, list[str]], extra_words: int) -> Any:
    from ..tokenizers import TextTokenizer
    from ..tokenizers.text import special_token_layout

    corpus = [t for k in SEQUENCE_MODALITIES for t in texts[k]]
    return TextTokenizer.train(corpus, vocab_size=len(special_token_layout()) + extra_words)


# -- stage 3: pre-tokenized folder and FourM --------------------------------------------------------------
def write_token_folder(root: Path, spec: WorldSpec, data: WorldData, tokens: Mapping[str, np.ndarray],
                       text_tok: Any) -> None:
    """`root/<modality>/<name>.npy` for every model modality: the layout `open4m train` reads."""
    from tqdm import tqdm

    for m in spec.all_modalities:
        (root / m).mkdir(parents=True, exist_ok=True)
    for name, sample in tqdm(token_samples(spec, data, tokens, text_tok), total=len(data.names),
                             desc="write tokens", unit="scene"):
        for m, value in sample.items():
            np.save(root / m / f"{name}.npy", value)


def train_fourm(section: Mapping[str, Any], spec: WorldSpec, token_root: Path, run_dir: Path,
                modality_names: list[str] | None = None, progress: bool = True) -> Path:
    """Train the FourM with `open4m.train` on the pre-tokenized folder; returns the exported weights.

    `modality_names` (default: all of the world's) restricts the model, e.g. to a single-task specialist.
    """
    from ..train.config import from_dict
    from ..train.fourm import train

    recipe = json.loads(json.dumps(dict(section)))  # a deep copy we can fill in
    data = recipe.setdefault("data", {})
    data.update(source=str(token_root), modalities=modality_names or spec.all_modalities, image_size=spec.image_size,
                input_only=[spec.rgb_pixels])
    recipe.setdefault("model", {}).setdefault("arch", {})["patch_size"] = spec.patch_size
    recipe.setdefault("train", {})["out_dir"] = str(run_dir)
    if not progress:
        recipe.setdefault("log", {})["progress"] = False
    result = train(from_dict(recipe))
    ema = run_dir / "model_ema.safetensors"
    return ema if ema.exists() else Path(result.model_path)


def run_recipe(recipe_path: str | Path | None, out: str | Path, *, workers: int = 2, progress: bool = True) -> Path:
    """The whole recipe; returns the bundle directory `out/model` (what `open4m demo --model` loads)."""
    from ..model import FourM
    from ..tokenizers import VQVAE
    from .bundle import save_bundle

    recipe = load_recipe(recipe_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(recipe["fourm"].get("train", {}).get("threads") or torch.get_num_threads()))
    w = recipe["world"]
    size, patch = int(w["image_size"]), int(w["patch_size"])
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    data = render_world("train", int(w["train_scenes"]), size, workers=workers, progress=progress)
    timings["render_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    text_tok = text_vocab(data.texts, int(recipe["text"]["extra_words"]))
    tok_dir = out / "tokenizers"
    tokenizers = {b: VQVAE.from_pretrained(train_image_tokenizer(b, data, recipe["tokenizers"], size, patch, tok_dir,
                                                                 progress))
                  for b in IMAGE_MODALITIES}
    timings["tokenizers_s"] = time.perf_counter() - t0

    spec = WorldSpec(size, patch, {b: t.config.codebook_size for b, t in tokenizers.items()}, text_tok.vocab_size)
    world.register_modalities(spec)
    token_root = out / "tokens"
    if not (token_root / "done").exists():
        tokens = {b: encode_images(tokenizers[b], b, data.images[b]) for b in IMAGE_MODALITIES}
        write_token_folder(token_root, spec, data, tokens, text_tok)
        (token_root / "done").touch()

    t0 = time.perf_counter()
    weights = train_fourm(recipe["fourm"], spec, token_root, out / "fourm", progress=progress)
    timings["fourm_s"] = time.perf_counter() - t0
    model = FourM.from_pretrained(weights)
    info = {"recipe": load_recipe_text(recipe_path), "train_scenes": len(data.names), "timings": timings}
    return save_bundle(out / "model", spec, model, tokenizers, text_tok, info)


def load_recipe_text(path: str | Path | None) -> str:
    return yaml.safe_dump(load_recipe(path), sort_keys=False)
