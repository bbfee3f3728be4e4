"""The world recipe (`open4m demo --train`): a world model from scratch, driven by one YAML file.

world (scenes rendered by `open4m.data.synthetic.world.render_world`) -> text tokenizer + one VQ-VAE
per image modality -> pre-tokenized folder -> FourM trained by `open4m.train` with the 4M masking (then
any further `stages`, warm restarts from the previous stage's EMA weights) -> a bundle (:func:`save_bundle`).
The default recipe is `configs/demo/world64.yaml` (the shipped model's).
Everything goes into `out/`; a rerun re-renders the (deterministic) world but reuses finished
tokenizers, the token folder and each stage's newest FourM checkpoint, so an interrupted run continues.

A bundle is an ordinary open4m model folder (`FourM.save_pretrained`: `config.json`,
`model.safetensors` whose metadata describes the world's modalities, pixel normalisation included,
the generated model card `README.md`, `tokenizers.json` + `tokenizers/`) plus `world.json` (the world
spec, recipe, timings, evaluation and notes the card is written from). Weights are stored in float16
to keep the wheel small and loaded back as float32. `open4m.pipeline("rgb->tok_depth@64", model=FOLDER)`
and `open4m generate --model FOLDER` run one with no tokenizer arguments and no world code;
:func:`convert_bundle` rewrites a bundle of the earlier layout (`fourm.safetensors`,
`tok_<modality>.safetensors`, `text_tokenizer.json`) in the standard one.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np
import torch
import yaml

from ..atomic import write_atomic, write_text_atomic
from ..config import from_dict, load, merged, option, section, to_dict
from ..data.codecs import decode, encode
from ..errors import ConfigError, DataError, NotFound
from ..train.checkpointing import run_train_seconds
from ..train.distributed import pick_device
from ..train.schedule import check_schedule
from ..train.tasks.fourm import FourMRecipe

from ..data.synthetic import check_caption_order, world
from ..data.synthetic.world import (IMAGE_MODALITIES, SEQUENCE_MODALITIES, WorldData, WorldSpec,
                                    check_caption_rgb_chain, check_caption_rgb_guidance, check_token_patch_sizes,
                                    encode_images, render_world, sequence_ids, read_world_json, token_patch,
                                    token_samples)

__all__ = ["DEFAULT_RECIPE", "WorldRecipe", "load_recipe", "load_recipe_text", "run_recipe", "stage_folder",
           "train_image_tokenizer",
           "text_vocab", "write_token_folder", "train_fourm", "save_bundle", "record_evaluation", "convert_bundle"]

log = logging.getLogger(__name__)

DEFAULT_RECIPE = Path(__file__).resolve().parents[3] / "configs" / "demo" / "world64.yaml"
# Reconstruction losses of the continuous maps (the trainer's default for feature maps is a cosine loss,
# which is meaningless for 1-channel maps); RGB keeps MSE and class maps cross-entropy.
_TOKENIZER_LOSS = {"depth": "smooth_l1", "normal": "smooth_l1", "canny_edge": "mse"}


@dataclass
class WorldSection:
    image_size: int = option(64, "Scene size in pixels.")
    patch_size: int = option(8, "Pixels per token side (image_size / patch_size tokens per row).")
    rgb_patch_size: int | None = option(None, "Pixels per side of the RGB input's patches (null: patch_size). Finer "
                                        "patches give the encoder more tokens per object, which is what recognition "
                                        "needs; the token grids of the other modalities keep patch_size.")
    token_patch_sizes: dict = option({}, "Pixels per token side of the image modalities whose token grid differs "
                                     "from patch_size's, e.g. {rgb: 4} (a 64 px image in 16x16 tokens). Every image "
                                     "the FourM generates is a grid of its tokenizer's tokens, decoded: a finer RGB "
                                     "grid carries the shapes 8 px tokens lose (benchmarks/rgb_tokenizer_probe.py), "
                                     "at 4x the tokens to generate. The tokenizer trains at that grid and the FourM "
                                     "gets that modality's grid; a FourM started from one on another grid "
                                     "(fourm.model.init_from) keeps its weights and gets the new positions.")
    train_scenes: int = option(3000, "Scenes rendered for training the tokenizers and the FourM.")
    caption_order: str = option("random", "How captions list their objects: random (an order drawn from each scene's "
                                "seed) or left_to_right (by the centre of each object's box in the image). A stage "
                                "may set its own (`caption_order` in its entry); the bundle records the last "
                                "stage's, and the eval, demo and studio render captions that way for it.")

    def __post_init__(self) -> None:
        check_caption_order(self.caption_order)
        for key in ("patch_size", "rgb_patch_size"):
            patch = getattr(self, key)
            if patch is not None and (patch < 1 or self.image_size % patch):
                raise ConfigError(f"world.{key}={patch} does not divide world.image_size={self.image_size}; choose a "
                                  f"patch size whose ratio to the image size is whole (e.g. 4 or 8 for 64 px)")
        self.token_patch_sizes = check_token_patch_sizes(self.token_patch_sizes, self.image_size,
                                                         "world.token_patch_sizes")

    def token_patch(self, base: str) -> int:
        """Pixels per token side of image modality `base`'s token grid."""
        return token_patch(self.token_patch_sizes, self.patch_size, base)


@dataclass
class TokenizerTraining:
    steps: int = option(600, "Optimizer steps per tokenizer.")
    batch_size: int = option(16, "Scenes per step.")
    lr: float = option(3e-3, "Peak learning rate.")
    warmup: int = option(20, "Warmup steps.")
    ema_decay: float = option(0.98, "EMA of the weights (the EMA is what the bundle ships).")


def _check_names(key: str, value: Mapping[str, Any], names: tuple[str, ...], what: str) -> None:
    """A recipe mapping whose keys must be exactly `names`, each a whole number >= 1: a missing or misspelt key
    is named (with the closest name) rather than failing with a KeyError once the world is rendered."""
    import difflib

    unknown = [k for k in value if k not in names]
    missing = [n for n in names if n not in value]
    if unknown or missing:
        named = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), names, n=1)
            named.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"{key} needs {what} ({', '.join(names)})"
                          + (f"; missing {', '.join(missing)}" if missing else "")
                          + (f"; unknown {', '.join(named)}" if named else ""))
    bad = {k: v for k, v in value.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
    if bad:
        raise ConfigError(f"{key}: {bad} must be whole numbers >= 1")


@dataclass
class WorldTokenizers:
    codebook_size: dict = option({"rgb": 512, "depth": 256, "normal": 256, "semseg": 256, "canny_edge": 256},
                                 "Codebook size per image modality.")
    latent_dim: int = option(16, "Quantizer latent width.")
    arch: dict = option({"dim": 64, "depth": 1, "heads": 2}, "ViT encoder/decoder width, depth and heads.")
    train: TokenizerTraining = section(TokenizerTraining, "How each VQ-VAE trains.")
    per_modality: dict = option({}, "What one modality's tokenizer sets differently from the sections above, e.g. "
                                "{rgb: {arch: {dim: 128, depth: 2, heads: 4}, train: {steps: 3000}}} (keys: arch, "
                                "train, latent_dim). RGB is the one worth more: every image the FourM generates is "
                                "decoded by it, so it caps how legible a generated scene can be "
                                "(benchmarks/rgb_tokenizer_probe.py), while the maps read well from small ones.")

    from_bundle: str | None = option(None, "A world model folder (the shipped one: src/open4m/assets/world64) whose text "
                                     "vocabulary and image tokenizers the run takes instead of training its own, "
                                     "except the modalities per_modality names (those train): a FourM started from "
                                     "that model (fourm.model.init_from) then reads the ids it was trained on, and "
                                     "only the retrained modality's tokens are new to it.", path=True)

    _PER_MODALITY_KEYS: ClassVar[tuple[str, ...]] = ("arch", "train", "latent_dim")

    def __post_init__(self) -> None:
        # checked when the recipe is read, not as a KeyError after the world is rendered
        _check_names("tokenizers.codebook_size", self.codebook_size, IMAGE_MODALITIES, "one size per image modality")
        _check_names("tokenizers.arch", self.arch, ("dim", "depth", "heads"), "the ViT width, depth and heads")
        for base in self.per_modality:
            self.for_modality(base)  # a misspelt modality or key is an error when the recipe is read

    def trains(self, base: str) -> bool:
        """Whether the run trains `base`'s tokenizer (else it takes `from_bundle`'s)."""
        return not self.from_bundle or base in self.per_modality

    def for_modality(self, base: str) -> "WorldTokenizers":
        """The settings `base`'s tokenizer trains with: these, with `per_modality[base]` written over them."""
        changes = self.per_modality.get(base)
        if changes is None:
            return self
        where = f"tokenizers.per_modality.{base}"
        if base not in IMAGE_MODALITIES:
            raise ConfigError(f"{where}: {base!r} is no image modality of the world; choose one of "
                              f"{', '.join(IMAGE_MODALITIES)}")
        if not isinstance(changes, Mapping) or set(changes) - set(self._PER_MODALITY_KEYS):
            raise ConfigError(f"{where} must be a mapping of {', '.join(self._PER_MODALITY_KEYS)} (the tokenizer "
                              f"settings it changes), e.g. {{arch: {{dim: 128}}, train: {{steps: 3000}}}}; got "
                              f"{changes!r}")
        common = {k: v for k, v in to_dict(self).items() if k != "per_modality"}
        try:
            return from_dict(WorldTokenizers, merged(common, changes), command="demo")
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None


@dataclass
class GenerationSection:
    caption_rgb_chain: list = option([], "What caption -> RGB draws first, in order (world keys: det, semseg, depth, "
                                         "normal, canny_edge, color_palette, metadata), each from the caption and "
                                         "those drawn before it; the bundle records it, and the eval and the demo draw "
                                         "a caption's picture that way. Empty: RGB straight from the caption.")
    caption_rgb_guidance: dict = option({}, "Classifier-free guidance weights of the conditions caption -> RGB "
                                            "draws the RGB from (caption and the chain's keys), e.g. {det: 2.0, "
                                            "caption: 0.5}: one pass per condition, a weight above 1 follows it "
                                            "more, below 1 less, unnamed ones 1; the bundle records it like the "
                                            "chain. Empty: no guidance.")

    def __post_init__(self) -> None:
        try:
            check_caption_rgb_guidance(self.caption_rgb_guidance, check_caption_rgb_chain(self.caption_rgb_chain))
        except ConfigError as err:
            raise ConfigError(f"generation.{err}") from None


@dataclass
class TextSection:
    extra_words: int = option(120, "Learned word pieces beyond the 4M fixed ids (values, sentinels, COCO classes).")


@dataclass
class WorldRecipe:
    """`open4m demo --train`: world -> tokenizers -> text vocabulary -> FourM (a full `open4m train` recipe)."""

    command: ClassVar[str] = "demo"

    world: WorldSection = section(WorldSection, "The procedural world.")
    tokenizers: WorldTokenizers = section(WorldTokenizers, "One VQ-VAE per image modality.")
    text: TextSection = section(TextSection, "The WordPiece vocabulary of the sequences.")
    fourm: FourMRecipe = section(FourMRecipe, "The FourM (data.source, modalities and out_dir are filled in).")
    generation: GenerationSection = section(GenerationSection, "How the bundle generates (recorded in its spec).")
    stages: list = option([], "Further FourM stages after `fourm`, each a warm restart from the previous stage's EMA "
                              "weights with a fresh optimizer and LR schedule: a list of `fourm` settings to change, "
                              "e.g. [{optim: {lr: 6.0e-4, warmup: 200}, train: {steps: 12000, seed: 1}}]; `scenes: "
                              "N` in an entry trains that stage on N train scenes instead of world.train_scenes "
                              "(tokenized with the same tokenizers into OUT/tokens-N); `caption_order: ORDER` "
                              "trains it on captions listed in that order instead of world.caption_order "
                              "(OUT/tokens-N-ORDER). Stage n trains in OUT/fourm-n; the bundle is the last stage's.")

    def __post_init__(self) -> None:
        for n in range(1, len(self.stages) + 2):
            # a misspelt key or a warmup longer than its run is an error when the recipe is read, not hours later
            where = "fourm" if n == 1 else f"stages[{n - 2}]"
            stage = self.stage(n)
            if stage.train.tokens is None:  # a run counted in tokens is checked by the engine, which knows a step's
                check_schedule(stage.train.steps, stage.optim.warmup, f"{where}.optim.warmup", "steps")
            self.stage_scenes(n)
            self.stage_caption_order(n)
        for base in IMAGE_MODALITIES:
            t = self.tokenizers.for_modality(base).train
            check_schedule(t.steps, t.warmup, f"tokenizers.train.warmup ({base}'s tokenizer)", "steps")

    def stage_scenes(self, n: int) -> int:
        """How many train scenes stage `n` trains on (`scenes` of its entry, else world.train_scenes)."""
        scenes = self.world.train_scenes if n == 1 else self.stages[n - 2].get("scenes", self.world.train_scenes)
        if isinstance(scenes, bool) or not isinstance(scenes, int) or scenes < 1:
            raise ConfigError(f"stages[{n - 2}].scenes={scenes!r}: give a whole number of train scenes >= 1")
        return scenes

    def stage_caption_order(self, n: int) -> str:
        """How the captions stage `n` trains on list their objects (`caption_order` of its entry, else the world's)."""
        order = self.world.caption_order if n == 1 else self.stages[n - 2].get("caption_order", self.world.caption_order)
        try:
            return check_caption_order(order)
        except ConfigError as err:
            raise ConfigError(f"stages[{n - 2}].caption_order: {err}") from None

    def stage(self, n: int) -> FourMRecipe:
        """The FourM recipe of stage `n` (1: `fourm`; n >= 2: `fourm` with `stages[n - 2]` merged in)."""
        if n == 1:
            return self.fourm
        changes = self.stages[n - 2]
        if not isinstance(changes, Mapping):
            raise ConfigError(f"stages[{n - 2}] must be a mapping of `fourm` settings, e.g. "
                              f"{{train: {{steps: 1000}}}}; got {changes!r}")
        if "init_from" in (changes.get("model") or {}):
            raise ConfigError(f"stages[{n - 2}] sets model.init_from, but a stage starts from the previous stage's "
                              f"weights; remove it (to start the first stage from a checkpoint, set "
                              f"fourm.model.init_from)")
        changes = {k: v for k, v in changes.items() if k not in ("scenes", "caption_order")}
        try:
            return from_dict(FourMRecipe, merged(to_dict(self.fourm), changes), command="demo")
        except ConfigError as err:
            raise ConfigError(f"stages[{n - 2}]: {err}") from None


def load_recipe(path: str | Path | None = None) -> WorldRecipe:
    """Read and check a recipe (default: the shipped model's `configs/demo/world64.yaml`)."""
    if path is None and not DEFAULT_RECIPE.is_file():  # an installed wheel: the shipped bundle keeps its recipe
        from ..sources.world import SHIPPED

        shipped = SHIPPED / "world.json"
        if shipped.is_file():  # the recipe from scratch: a model that went on from another keeps its start's
            meta = json.loads(shipped.read_text())
            return from_dict(WorldRecipe, yaml.safe_load(meta.get("scratch_recipe", meta["recipe"])), command="demo")
    path = Path(path) if path else DEFAULT_RECIPE
    if not path.is_file():
        raise NotFound(f"demo recipe {path} not found; pass --config PATH to a recipe like configs/demo/world64.yaml")
    return load(WorldRecipe, path, command="demo")


# -- stage 2: tokenizers ---------------------------------------------------------------------------
class _Samples(torch.utils.data.Dataset):
    """Model-form samples of one image modality (what the tokenizer trainer batches)."""

    def __init__(self, base: str, arrays: np.ndarray) -> None:
        self.base, self.arrays = base, arrays

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, i: int) -> torch.Tensor:
        return world.to_model_form(self.base, self.arrays[i])


def tokenizer_config(base: str, size: int, patch: int, section: WorldTokenizers) -> dict[str, Any]:
    """VQ-VAE config fields of one image modality's tokenizer."""
    from ..data.synthetic import SEMSEG_CLASSES

    section = section.for_modality(base)
    arch = dict(section.arch)
    cfg = dict(image_size=size, patch_size=patch, codebook_size=int(section.codebook_size[base]),
               latent_dim=int(section.latent_dim), enc_type="vit", dec_type="vit", modality=base,
               enc_dim=arch["dim"], enc_depth=arch["depth"], enc_heads=arch["heads"],
               dec_dim=arch["dim"], dec_depth=arch["depth"], dec_heads=arch["heads"])
    if base == "semseg":
        cfg.update(n_channels=16, n_labels=len(SEMSEG_CLASSES), preprocess={"input": "class_map", "interpolation": "nearest"})
    elif base == "rgb":
        cfg.update(n_channels=3, preprocess={"input": "image", "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bilinear"})
    elif base == "canny_edge":  # 0/255 maps to [-1, 1] (world.to_model_form): any edge map a user has, HED's too
        cfg.update(n_channels=1, preprocess={"input": "image", "mean": [0.5], "std": [0.5], "interpolation": "bilinear"})
    else:
        cfg.update(n_channels=3 if base == "normal" else 1, preprocess={"input": "features", "interpolation": "bilinear"})
    return cfg


def train_image_tokenizer(base: str, data: WorldData, section: WorldTokenizers, size: int, patch: int,
                          out: Path, progress: bool = True) -> Path:
    """Train (or reuse) the VQ-VAE of one image modality with the training engine; returns its `.safetensors` file."""
    from ..train.tasks import tokenizer as task

    final = out / f"tok_{base}.safetensors"
    if final.exists():
        return final
    t = section.for_modality(base).train
    recipe = task.TokenizerRecipe(
        kind="vqvae", model=tokenizer_config(base, size, patch, section),
        data=task.DataSection(batch_size=t.batch_size),
        objective=task.ObjectiveSection(loss=_TOKENIZER_LOSS.get(base), sample_every=t.steps),
        optim=task.TokenizerOptim(lr=t.lr, warmup=t.warmup),
        train=task.TokenizerRun(steps=t.steps, out_dir=str(out / "runs" / base), ema_decay=t.ema_decay,
                                save_every=t.steps, seed=0),
        log=task.TokenizerLog(every=50, progress=progress))
    result = task.train_tokenizer(recipe, dataset=_Samples(base, data.images[base]))
    from ..tokenizers import VQVAE

    VQVAE.from_pretrained(result.model_path).save_pretrained(final)
    return final


def take_bundle_tokenizers(bundle: Path, tok_dir: Path, section: WorldTokenizers, world_section: WorldSection) -> None:
    """Write `bundle`'s text vocabulary and the image tokenizers `section` does not retrain into `tok_dir`, where
    the recipe reuses what it finds (a resumed run keeps what it took the first time)."""
    from ..sources.world import load_tokenizers

    spec, image_toks, text_tok, _ = load_tokenizers(bundle)
    size = world_section.image_size
    taken = [b for b in image_toks if not section.trains(b)]
    other = [b for b in taken if (spec.image_size, spec.token_patch(b)) != (size, world_section.token_patch(b))]
    if other:
        b = other[0]
        raise ConfigError(f"tokenizers.from_bundle: {bundle} tokenizes {b} at {spec.image_size} px in "
                          f"{spec.token_patch(b)} px patches, this recipe's world at {size} px in "
                          f"{world_section.token_patch(b)} px patches; set world.image_size, world.patch_size and "
                          f"world.token_patch_sizes to the bundle's, or retrain {b} (tokenizers.per_modality.{b})")
    tok_dir.mkdir(parents=True, exist_ok=True)
    if not (tok_dir / "text.json").is_file():
        text_tok.save_pretrained(tok_dir / "text.json")
    for base, tok in image_toks.items():
        final = tok_dir / f"tok_{base}.safetensors"
        if not section.trains(base) and not final.exists():
            tok.save_pretrained(final)
            log.info("world recipe: %s tokenizer taken from %s", base, bundle)


def text_vocab(texts: Mapping[str, list[str]], extra_words: int) -> Any:
    from ..tokenizers import TextTokenizer
    from ..tokenizers.text import special_token_layout

    corpus = [t for k in SEQUENCE_MODALITIES for t in texts[k]]
    return TextTokenizer.train(corpus, vocab_size=len(special_token_layout()) + extra_words)


def run_text_vocab(data: WorldData, extra_words: int, tok_dir: Path, token_root: Path) -> Any:
    """The run's text vocabulary, trained once and kept as `tok_dir/text.json`.

    A resumed run must write its bundle with the vocabulary its token folder and FourM were made with, and
    training it again is not guaranteed to give the same ids (the WordPiece trainer breaks ties by hash-map
    order, huggingface/tokenizers#1794). A run made before the file was kept gets a fresh vocabulary only
    if it encodes the token folder's texts to the same ids; otherwise it is refused, never silently mixed.
    """
    from ..tokenizers import TextTokenizer

    kept = tok_dir / "text.json"
    if kept.is_file():
        return TextTokenizer.from_pretrained(kept)
    text_tok = text_vocab(data.texts, extra_words)
    if (token_root / "done").is_file():
        _check_text_ids(text_tok, data, token_root, kept)
    text_tok.save_pretrained(kept)
    return text_tok


def _check_text_ids(text_tok: Any, data: WorldData, token_root: Path, kept: Path, scenes: int = 64) -> None:
    """Refuse a vocabulary that encodes the token folder's texts (its first `scenes` scenes) to other ids."""
    for i, name in enumerate(data.names[:scenes]):
        for mod, ids in sequence_ids(data, i, text_tok).items():
            path = token_root / mod / f"{name}.npy"
            try:
                stored = decode(path.read_bytes(), ".npy", mod)  # the reader of what write_token_folder encoded
            except (OSError, DataError) as err:
                raise DataError(f"{path} is missing or damaged ({err}); delete {token_root} to write the token "
                                f"folder again") from None
            if not np.array_equal(stored, ids):
                raise ConfigError(f"{token_root} was written with a text vocabulary this run did not keep ({kept} is "
                                  f"missing), and a new one encodes {mod} of {name} to other ids; delete {token_root} "
                                  f"and {token_root.parent / 'fourm'} and run the recipe again (the image tokenizers "
                                  f"are reused)")


# -- stage 3: pre-tokenized folder and FourM --------------------------------------------------------------
def write_token_folder(root: Path, spec: WorldSpec, data: WorldData, tokens: Mapping[str, np.ndarray],
                       text_tok: Any, progress: bool = True) -> None:
    """`root/<modality>/<name>.npy` for every model modality: the layout `open4m train` reads."""
    from tqdm import tqdm

    for m in spec.all_modalities:
        (root / m).mkdir(parents=True, exist_ok=True)
    for name, sample in tqdm(token_samples(spec, data, tokens, text_tok), total=len(data.names),
                             desc="write tokens", unit="scene", disable=not progress):
        for m, value in sample.items():
            write_atomic(root / m / f"{name}.npy", encode(value, ".npy", m))


def train_fourm(recipe: FourMRecipe, spec: WorldSpec, token_root: Path, run_dir: Path,
                modality_names: list[str] | None = None, progress: bool = True) -> Path:
    """Train the FourM with the training engine on the pre-tokenized folder; returns the exported weights.

    `modality_names` (default: all of the world's) restricts the model, e.g. to a single-task specialist.
    """
    from ..train.tasks.fourm import train

    names = list(modality_names or spec.all_modalities)
    data = replace(recipe.data, source=str(token_root), modalities=names, image_size=spec.image_size,
                   input_only=[spec.rgb_pixels],  # a specialist keeps the target alphas of its own modalities
                   target_alphas={m: a for m, a in recipe.data.target_alphas.items() if m in names})
    model = replace(recipe.model, arch={**recipe.model.arch, "patch_size": spec.patch_size})
    log = recipe.log if progress else replace(recipe.log, progress=False)
    result = train(replace(recipe, data=data, model=model, train=replace(recipe.train, out_dir=str(run_dir)), log=log))
    ema = run_dir / "model_ema.safetensors"
    return ema if ema.exists() else Path(result.model_path)


#: What `run_recipe` writes in its folder (plus `fourm-<n>` for the stages after the first, and `tokens-<scenes>` or
#: `tokens-<scenes>-<caption order>` for stages on other scenes or captions): a folder holding only these is a run of
#: the recipe, which resumes.
RECIPE_ENTRIES = ("tokenizers", "tokens", "fourm", "model")


def stage_folder(n: int) -> str:
    """The run folder of FourM stage `n` inside the recipe's output (`fourm`, then `fourm-2`, `fourm-3`, ...)."""
    return "fourm" if n == 1 else f"fourm-{n}"


def is_recipe_folder(path: str | Path) -> bool:
    """Whether `path` holds only what `run_recipe` writes (running the recipe there again resumes it)."""
    entries = {p.name for p in Path(path).iterdir()} if Path(path).is_dir() else set()
    numbered = {e for e in entries if e.partition("-")[0] in ("fourm", "tokens")
                and e.partition("-")[2].partition("-")[0].isdigit()}
    return bool(entries) and entries - numbered <= set(RECIPE_ENTRIES)


def run_recipe(recipe_path: str | Path | None, out: str | Path, *, workers: int = 2, progress: bool = True) -> Path:
    """The whole recipe; returns the bundle directory `out/model` (what `open4m demo --model` loads)."""
    from ..model import FourM
    from ..tokenizers import VQVAE

    recipe = load_recipe(recipe_path)
    out = Path(out)
    made_from = _stages_fingerprint(recipe)
    for done in sorted(out.glob("tokens*/done")):  # every token folder, the later stages' too, before anything changes
        _check_reused(done, made_from, out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(recipe.fourm.train.threads or torch.get_num_threads()))
    w = recipe.world
    size, patch = w.image_size, w.patch_size
    tok_dir, token_root = out / "tokenizers", out / "tokens"
    if recipe.tokenizers.from_bundle:  # before the world renders: a bundle that does not fit is refused at once
        take_bundle_tokenizers(Path(recipe.tokenizers.from_bundle), tok_dir, recipe.tokenizers, w)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    log.info("world recipe: rendering %d train scenes at %d px", w.train_scenes, size)
    data = render_world("train", w.train_scenes, size, workers=workers, progress=progress,
                        caption_order=w.caption_order)
    timings["render_s"] = time.perf_counter() - t0

    log.info("world recipe: text vocabulary and one VQ-VAE per image modality (%s)", ", ".join(IMAGE_MODALITIES))
    text_tok = run_text_vocab(data, recipe.text.extra_words, tok_dir, token_root)
    tokenizers = {b: VQVAE.from_pretrained(train_image_tokenizer(b, data, recipe.tokenizers, size, w.token_patch(b),
                                                                 tok_dir, progress))
                  for b in IMAGE_MODALITIES}

    spec = WorldSpec(size, patch, {b: t.config.codebook_size for b, t in tokenizers.items()}, text_tok.vocab_size,
                     w.rgb_patch_size, w.caption_order, token_patch_sizes=w.token_patch_sizes)
    world.register_modalities(spec)

    def token_folder(scenes: int, order: str) -> Path:
        """The token folder of `scenes` train scenes with captions in `order` (written once, with the run's
        tokenizers and vocabulary)."""
        own = order == w.caption_order
        root = token_root if scenes == w.train_scenes and own else out / (
            f"tokens-{scenes}" if own else f"tokens-{scenes}-{order}")
        if (root / "done").is_file():  # its settings were checked against the recipe's on entry
            return root
        some = data if scenes == len(data.names) and own else render_world(
            "train", scenes, size, workers=workers, progress=progress, caption_order=order)
        tokens = {b: encode_images(tokenizers[b], b, some.images[b]) for b in IMAGE_MODALITIES}
        write_token_folder(root, spec, some, tokens, text_tok, progress)
        write_text_atomic(root / "done", json.dumps(made_from, sort_keys=True))
        return root

    token_folder(w.train_scenes, w.caption_order)
    weights = None
    for n in range(1, len(recipe.stages) + 2):
        stage = recipe.stage(n)
        if weights is not None:  # a warm restart: the previous stage's EMA weights, a fresh optimizer and schedule
            stage = replace(stage, model=replace(stage.model, init_from=str(weights)))
        root = token_folder(recipe.stage_scenes(n), recipe.stage_caption_order(n))
        log.info("world recipe: training the FourM on %s (stage %d of %d)", root, n, len(recipe.stages) + 1)
        weights = train_fourm(stage, spec, root, out / stage_folder(n), progress=progress)
    trained = [b for b in IMAGE_MODALITIES if recipe.tokenizers.trains(b)]
    timings.update(_training_times({"tokenizers_s": [tok_dir / "runs" / b for b in trained],
                                    "fourm_s": [out / stage_folder(n) for n in range(1, len(recipe.stages) + 2)]}))
    model = FourM.from_pretrained(weights)
    info = {"recipe": load_recipe_text(recipe_path), "train_scenes": len(data.names), "timings": timings,
            "device": pick_device(recipe.fourm.train.device).type}  # the device the card names for the training
    start = recipe.fourm.model.init_from
    if start and (Path(start) / "world.json").is_file():  # went on from a world model: keep how that one began
        before, _ = read_world_json(start)
        info["scratch_recipe"] = before.get("scratch_recipe", before["recipe"])
    spec = replace(spec, caption_order=recipe.stage_caption_order(len(recipe.stages) + 1),  # what it last read
                   caption_rgb_chain=tuple(recipe.generation.caption_rgb_chain),
                   caption_rgb_guidance=dict(recipe.generation.caption_rgb_guidance))
    bundle = save_bundle(out / "model", spec, model, tokenizers, text_tok, info)
    log.info("world recipe: bundle written to %s", bundle)
    return bundle


def _training_times(runs: Mapping[str, list[Path]]) -> dict[str, float]:
    """Each group's training seconds, summed over its engine runs and their resumes: a run resumed over several
    sessions states its whole time, not the last session's. A group with a run that predates the engine's count
    is left out (its time is unknown), and the log says so."""
    times = {}
    for key, folders in runs.items():
        seconds = [run_train_seconds(f) for f in folders]
        if any(s is None for s in seconds):
            log.warning("world recipe: %s has no training time (trained before open4m kept the count); the card "
                        "states none", ", ".join(str(f) for f, s in zip(folders, seconds) if s is None))
        else:
            times[key] = sum(seconds)
    return times


def _stages_fingerprint(recipe: WorldRecipe) -> dict[str, Any]:
    """What the token folder is made from: the world, tokenizer and text sections of the recipe."""
    d = to_dict(recipe)
    if d["world"].get("rgb_patch_size") is None:  # unset: the fingerprint of folders made before the option existed
        d["world"].pop("rgb_patch_size", None)
    if d["world"].get("caption_order") == "random":  # likewise
        d["world"].pop("caption_order", None)
    if not d["world"].get("token_patch_sizes"):  # likewise
        d["world"].pop("token_patch_sizes", None)
    for key in ("per_modality", "from_bundle"):  # likewise
        if not d["tokenizers"].get(key):
            d["tokenizers"].pop(key, None)
    return {k: d[k] for k in ("world", "tokenizers", "text")}


def _check_reused(done: Path, made_from: Mapping[str, Any], out: Path) -> None:
    """Refuse to resume on a token folder made by other world/tokenizer/text settings: the FourM would train on
    tokens the recipe no longer describes (a changed vocabulary shifts every text id), silently."""
    text = done.read_text().strip()
    if not text:  # written before the fingerprint was recorded: nothing to compare
        return
    try:
        before = json.loads(text)
    except json.JSONDecodeError:
        raise DataError(f"{done} is damaged (not JSON); delete {done.parent} to rebuild the token folder") from None
    changed = sorted(k for k in set(before) | set(made_from) if before.get(k) != made_from.get(k))
    if changed:
        raise ConfigError(f"{out} was made with other {', '.join(changed)} settings than this recipe; its tokenizers, "
                          f"tokens and FourM belong to those. Run the recipe into a new --out folder (nothing in "
                          f"{out} is changed)")


def load_recipe_text(path: str | Path | None) -> str:
    """The recipe as YAML text (recorded in the bundle's world.json; `load_recipe` reads it back in a wheel)."""
    return yaml.safe_dump(to_dict(load_recipe(path)), sort_keys=False)


# -- the bundle ---------------------------------------------------------------------------------------
def save_bundle(out: str | Path, spec: WorldSpec, model: Any, tokenizers: Mapping[str, Any], text_tok: Any,
                info: Mapping[str, Any]) -> Path:
    """Write a bundle in the standard model layout (weights as float16); returns its folder.

    ``tokenizers`` maps image modalities (``depth``) to their VQ-VAEs; ``info`` is what `world.json`
    records besides the spec (recipe, timings, eval, notes), from which the model card is written.
    """
    from .world_card import card_info

    out = Path(out)
    named: dict[str, Any] = {spec.tok(b): copy.deepcopy(tok).half() for b, tok in tokenizers.items()}
    named.update({name: text_tok for name in spec.sequence_modalities})  # one object: saved once
    card = card_info(spec, model, tokenizers, text_tok, info)
    _half_except_pos_emb(copy.deepcopy(model)).save_pretrained(out, tokenizers=named, card=card, overwrite=True)
    write_text_atomic(out / "world.json", json.dumps({"spec": spec.to_dict(), **info}, indent=2) + "\n",
                      overwrite=True)
    return out


def record_evaluation(bundle: str | Path, *, evaluation: Mapping[str, Any] | None = None,
                      comparison: list[Mapping[str, Any]] | None = None, notes: str | None = None) -> Path:
    """Record measurements in a bundle's `world.json` and rewrite its model card from them.

    `evaluation` is an `open4m eval` metrics.json (plus `scenes`, `split`, `command`), `comparison` the rows
    `benchmarks/multitask_vs_specialist.py --record` writes (model, task, metric, value, baseline, train_s,
    steps), `notes` what a person read off the runs. Weights and tokenizers are saved again unchanged (float16
    weights round-trip exactly).
    """
    from ..model import FourM
    from ..sources.world import load_tokenizers

    bundle = Path(bundle)
    spec, tokenizers, text_tok, meta = load_tokenizers(bundle)
    info = {k: v for k, v in meta.items() if k != "spec"}
    for key, value in (("eval", evaluation), ("comparison", comparison), ("notes", notes)):
        if value is not None:
            info[key] = value
    model = FourM.from_pretrained(bundle).float().eval()
    return save_bundle(bundle, spec, model, tokenizers, text_tok, info)


def _half_except_pos_emb(model: torch.nn.Module) -> torch.nn.Module:
    """float16 weights, but float32 sincos tables: loading checks those against freshly built ones."""
    tables = {n: b.clone() for n, b in model.named_buffers() if n.endswith("pos_emb")}
    model.half()
    for name, table in tables.items():
        owner, _, attr = name.rpartition(".")
        setattr(model.get_submodule(owner), attr, table)
    return model


def convert_bundle(src: str | Path, out: str | Path) -> Path:
    """Rewrite a world model folder (a bundle of the earlier layout, or any bundle) in the standard layout."""
    from ..model import FourM
    from ..sources.world import is_legacy, load_tokenizers

    src = Path(src)
    spec, tokenizers, text_tok, meta = load_tokenizers(src)  # a folder that is no bundle: MissingModelError
    model = FourM.from_pretrained(src / "fourm.safetensors" if is_legacy(src) else src).float().eval()
    return save_bundle(out, spec, model, tokenizers, text_tok, {k: v for k, v in meta.items() if k != "spec"})
