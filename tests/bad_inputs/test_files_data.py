"""Bad data files: training checkpoints a run resumes from, YAML recipes, shard roots (index.json,
crop settings), crop settings of a token folder, a dataset's labels.json and gallery indexes given to
`open4m retrieve`. Each missing, empty, truncated, of the wrong kind or a folder where a file belongs;
each answered before any work, with the file and what to do about it."""

import json
import shutil

import pytest
import yaml

from battery import Case
from test_files_images import tiny_tokenizer_training

CKPT = "Training checkpoints (resume)"
RECIPES = "Recipes (YAML)"
SHARDS = "Shards and dataset files"
GALLERY = "Gallery indexes"

#: A FourM run small enough to train in about a second: 2 steps, one checkpoint at step 2.
MICRO = {
    "model": {"preset": "tiny-swiglu_nobias", "arch": {"dim": 32, "encoder_depth": 1, "decoder_depth": 1, "num_heads": 2}},
    "data": {"modalities": ["tok_rgb@224", "tok_depth@224", "caption"], "num_samples": 16, "num_val_samples": 4,
             "input_tokens": 16, "target_tokens": 16, "batch_size": 4},
    "optim": {"lr": 3e-3, "warmup": 1},
    "train": {"steps": 2, "out_dir": "run", "threads": 1, "save_every": 2, "eval_every": 0, "eval_batches": 1},
    "log": {"every": 1, "progress": False},
}
STEP = "run/checkpoints/step-00000002"


def _run(world):
    """A finished micro run (its checkpoint at step 2) and its recipe, in the world's folder."""
    from open4m.cli import main

    folder = world.root / "micro"
    folder.mkdir()
    (folder / "recipe.yaml").write_text(yaml.safe_dump(MICRO))
    assert main(["-q", "train", str(folder / "recipe.yaml")]) == 0
    return folder


def _shards(world):
    """The world's dataset (rgb, depth, det) as one shard per modality."""
    from open4m.cli import main

    out = world.root / "shards"
    assert main(["-q", "convert", "--src", str(world.data), "--dst", str(out), "--modalities", "rgb", "depth", "det"]) == 0
    return out


def _tokenizer_run(world):
    """A finished tiny tokenizer run (a checkpoint at each of its 2 steps), trained on the world's photos."""
    from open4m.cli import main

    folder = world.root / "tokenizer_run"
    folder.mkdir()
    args = tiny_tokenizer_training(str(world.data / "rgb"), str(folder / "run"))
    assert main(["-q", *args, "--set", "train.save_every=1"]) == 0
    return folder


BUILT = {"run": _run, "shards": _shards, "tokenizer_run": _tokenizer_run}


def asset(world, name):
    """A valid asset of this module, built once per session (registered with the world on first use)."""
    world.builders.setdefault(name, BUILT[name])
    return world.asset(name)


def _tokenizer_resume(world, user):
    """Setup: a copy of the tokenizer run whose newest checkpoint's weights are 0 bytes."""
    shutil.copytree(asset(world, "tokenizer_run") / "run", user / "run")
    (user / "run" / "checkpoints" / "step-00000002" / "model.safetensors").write_bytes(b"")


def _resume(change):
    """Setup: a copy of the finished run as ./run with `change(checkpoint folder, world)` applied; the case then
    asks for one more step, so training must resume from the checkpoint."""

    def setup(world, user):
        shutil.copytree(asset(world, "run") / "run", user / "run")
        (user / "recipe.yaml").write_text(yaml.safe_dump(MICRO))
        change(user / STEP, world)

    return setup


def _train(w, u):
    return ["train", "recipe.yaml", "train.steps=3"]


def _write(name, data):
    def change(folder, world):
        path = folder / name
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)

    return change


def _cut(name, keep):
    def change(folder, world):
        (folder / name).write_bytes((folder / name).read_bytes()[:keep])

    return change


def _folder_instead(name):
    def change(folder, world):
        (folder / name).unlink()
        (folder / name).mkdir()

    return change


def _remove(name):
    return lambda folder, world: (folder / name).unlink()


def _checkpoints_as_file(folder, world):
    shutil.rmtree(folder.parent)
    folder.parent.write_text("not the checkpoints")


def _other_weights(folder, world):
    shutil.copy(world.model / "model.safetensors", folder / "model.safetensors")


def _recipe(text, name="recipe.yaml"):
    def setup(world, user):
        path = user / name
        if text is None:
            path.mkdir()
        else:
            path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)

    return setup


def _shard_copy(change):
    def setup(world, user):
        shutil.copytree(asset(world, "shards"), user / "shards")
        change(user / "shards")

    return setup


def _index(text):
    return lambda root: (root / "index.json").write_text(text)


def _crop_tar(root):
    (root / "crop_settings").mkdir()
    (root / "crop_settings" / "shard-00000.tar").write_text("not a tar " * 80)


def _data_with(change):
    """Setup: the world's rgb folder as ./data, then `change(data folder)`."""

    def setup(world, user):
        shutil.copytree(world.data / "rgb", user / "data" / "rgb")
        change(user / "data")

    return setup


def _crop_npy(data):
    def change(root):
        (root / "crop_settings").mkdir()
        (root / "crop_settings" / "scene_00000000.npy").write_bytes(data)

    return change


def _gallery(data=None, vectors=None, keys=None):
    """Setup: ./gallery.index holding `data` (bytes, text or None: a folder), or a safetensors file with
    `vectors` and the metadata `keys` (a string, written as is)."""

    def setup(world, user):
        path = user / "gallery.index"
        if vectors is not None:
            from safetensors.torch import save_file

            save_file({"vectors": vectors()}, str(path), metadata=None if keys is None else {"keys": keys})
        elif data is None:
            path.mkdir()
        else:
            path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)

    return setup


def _gallery_truncated(world, user):
    import torch
    from safetensors.torch import save_file

    path = user / "gallery.index"
    save_file({"vectors": torch.ones(20, 64)}, str(path), metadata={"keys": json.dumps([f"{i}.png" for i in range(20)])})
    path.write_bytes(path.read_bytes()[:-100])


def _retrieve(w, u):
    return ["retrieve", "--model", w.model, "--index", "gallery.index", "--input", f"rgb={w.photo}"]


def _ones(n, d=8):
    import torch

    return lambda: torch.ones(n, d)


def _nan_vectors():
    import torch

    return torch.full((2, 8), float("nan"))


def _int_vectors():
    import torch

    return torch.ones(2, 8, dtype=torch.int64)


FIX = r"delete \S*run/checkpoints/step-00000002 to resume from the checkpoint before it, or set train\.resume=false"
YAML_BAD = r"recipe\.yaml is not valid YAML at line \d+, column \d+: "

def _plain_photos(world, user):
    """Two photos lying directly in photos/ (one with an upper-case suffix), no modality folders."""
    (user / "photos").mkdir()
    shutil.copy(world.photo, user / "photos" / "a.png")
    shutil.copy(world.photo, user / "photos" / "B.PNG")


CASES = [
    # -- resuming from a damaged checkpoint -----------------------------------------------------------
    Case("ckpt-model-empty", CKPT, "resume: the checkpoint's model.safetensors is 0 bytes",
         STEP + r"/model\.safetensors is damaged \(.*header too small\); " + FIX,
         setup=_resume(_write("model.safetensors", b"")), argv=_train),
    Case("ckpt-model-truncated", CKPT, "resume: the checkpoint's model.safetensors is cut short",
         STEP + r"/model\.safetensors is damaged \(.*\); " + FIX,
         setup=_resume(_cut("model.safetensors", 500)), argv=_train),
    Case("ckpt-model-missing", CKPT, "resume: the checkpoint lacks model.safetensors",
         STEP + r"/model\.safetensors is missing \(no such file\): the checkpoint is incomplete; " + FIX,
         setup=_resume(_remove("model.safetensors")), argv=_train),
    Case("ckpt-model-other", CKPT, "resume: the checkpoint holds another model's weights",
         STEP + r" holds the weights of another model than this recipe builds \(shape or value mismatches: .*\): "
         r"the run folder was made with another recipe \(its config\.yaml\); resume with that recipe, or choose "
         r"another train\.out_dir \(or set train\.resume=false\) to start a new run",
         setup=_resume(_other_weights), argv=_train),
    Case("ckpt-optimizer-empty", CKPT, "resume: the checkpoint's optimizer.safetensors is 0 bytes",
         STEP + r"/optimizer\.safetensors is damaged \(.*\); " + FIX,
         setup=_resume(_write("optimizer.safetensors", b"")), argv=_train),
    Case("ckpt-optimizer-text", CKPT, "resume: the checkpoint's optimizer.safetensors holds text",
         STEP + r"/optimizer\.safetensors is damaged \(.*\); " + FIX,
         setup=_resume(_write("optimizer.safetensors", "moments, honest")), argv=_train),
    Case("ckpt-optimizer-missing", CKPT, "resume: the checkpoint lacks optimizer.safetensors",
         STEP + r"/optimizer\.safetensors is missing \(no such file\): the checkpoint is incomplete; " + FIX,
         setup=_resume(_remove("optimizer.safetensors")), argv=_train),
    Case("ckpt-optimizer-folder", CKPT, "resume: the checkpoint's optimizer.safetensors is a folder",
         STEP + r"/optimizer\.safetensors is missing \(a folder\): the checkpoint is incomplete; " + FIX,
         setup=_resume(_folder_instead("optimizer.safetensors")), argv=_train),
    Case("ckpt-rng-truncated", CKPT, "resume: the checkpoint's rng-rank0.safetensors is cut short",
         STEP + r"/rng-rank0\.safetensors is damaged \(.*\); " + FIX,
         setup=_resume(_cut("rng-rank0.safetensors", 40)), argv=_train),
    Case("ckpt-state-empty", CKPT, "resume: the checkpoint's state.json is 0 bytes",
         STEP + r"/state\.json is corrupt \(.*\); " + FIX,
         setup=_resume(_write("state.json", "")), argv=_train),
    Case("ckpt-state-list", CKPT, "resume: the checkpoint's state.json holds a list",
         STEP + r"/state\.json holds no step number .*; " + FIX,
         setup=_resume(_write("state.json", "[2]")), argv=_train),
    Case("ckpt-state-no-step", CKPT, "resume: the checkpoint's state.json has no step",
         STEP + r"/state\.json holds no step number .*; " + FIX,
         setup=_resume(_write("state.json", '{"tokens": 256}')), argv=_train),
    Case("ckpt-state-missing", CKPT, "resume: the newest checkpoint lacks state.json",
         STEP + r" has no state\.json: the checkpoint is damaged; " + FIX,
         setup=_resume(_remove("state.json")), argv=_train),
    Case("ckpt-tokenizer-model-empty", CKPT, "resume a tokenizer run whose checkpoint weights are 0 bytes",
         STEP + r"/model\.safetensors is damaged \(.*\); " + FIX,
         setup=_tokenizer_resume,
         argv=lambda w, u: [*tiny_tokenizer_training(w.data / "rgb", "run"), "--steps", "3"]),  # the last --steps wins
    Case("ckpt-checkpoints-file", CKPT, "resume: the run's checkpoints/ is a file",
         r"run/checkpoints is a file, not the run's checkpoint folder; move it away or choose another train\.out_dir",
         setup=_resume(_checkpoints_as_file), argv=_train),
    # -- recipes ----------------------------------------------------------------------------------------
    Case("yaml-syntax", RECIPES, "a recipe with a YAML syntax error (train)",
         YAML_BAD + r"expected the node content",
         setup=_recipe("model: {preset: [\n"), argv=lambda w, u: ["train", "recipe.yaml"]),
    Case("yaml-tab-indent", RECIPES, "a recipe indented with a tab (finetune)",
         YAML_BAD + r"found character '\\t' that cannot start any token",
         setup=_recipe("train:\n\tsteps: 3\n"), argv=lambda w, u: ["finetune", "recipe.yaml"]),
    Case("yaml-list", RECIPES, "a recipe that is a list, not a mapping (train)",
         r"recipe\.yaml: a recipe is a mapping of sections, got list",
         setup=_recipe("- model\n- data\n"), argv=lambda w, u: ["train", "recipe.yaml"]),
    Case("yaml-scalar", RECIPES, "a recipe that is one word (finetune)",
         r"recipe\.yaml: a recipe is a mapping of sections, got str",
         setup=_recipe("world_seg\n"), argv=lambda w, u: ["finetune", "recipe.yaml"]),
    Case("yaml-section-scalar", RECIPES, "a recipe section that is a number (optim: 3)",
         r"config section optim must be a mapping, got 3",
         setup=_recipe("optim: 3\n"), argv=lambda w, u: ["train", "recipe.yaml"]),
    Case("yaml-misspelt-key-in-file", RECIPES, "a misspelt key inside a recipe file (optim: {lrr: 1})",
         r"unknown config key 'optim\.lrr'; did you mean 'optim\.lr'\?",
         setup=_recipe("optim: {lrr: 0.001}\n"), argv=lambda w, u: ["train", "recipe.yaml"]),
    Case("yaml-duplicate-section", RECIPES, "a recipe giving one section twice",
         YAML_BAD + r"the key 'optim' is given twice in one mapping; keep one",
         setup=_recipe("optim: {lr: 0.001}\ntrain: {steps: 3}\noptim: {lr: 0.002}\n"),
         argv=lambda w, u: ["train", "recipe.yaml"]),
    Case("yaml-duplicate-key", RECIPES, "a recipe giving one key twice (train-tokenizer --config)",
         YAML_BAD + r"the key 'lr' is given twice in one mapping; keep one",
         setup=_recipe("kind: vqvae\noptim:\n  lr: 0.001\n  lr: 0.002\n"),
         argv=lambda w, u: ["train-tokenizer", "--config", "recipe.yaml"]),
    Case("yaml-binary", RECIPES, "a recipe that is not text (binary bytes)",
         r"recipe\.yaml is not a text file \(.*\); a recipe is YAML text, saved as UTF-8",
         setup=_recipe(b"\xff\xfe\x00\x01\x89PNG"), argv=lambda w, u: ["train", "recipe.yaml"]),
    Case("yaml-folder", RECIPES, "a recipe path that is a folder",
         r"recipe recipe\.yaml is a folder; give a YAML file",
         setup=_recipe(None), argv=lambda w, u: ["train", "recipe.yaml"]),
    Case("yaml-missing-finetune", RECIPES, "a recipe file that does not exist (finetune)",
         r"recipe recipe\.yaml does not exist \(see configs/ for examples\)",
         argv=lambda w, u: ["finetune", "recipe.yaml"]),
    # -- shard roots and dataset files -------------------------------------------------------------------
    Case("shards-index-broken", SHARDS, "a shard root whose index.json is not JSON (convert)",
         r"shards/index\.json is not a readable shard index \(.*\); rewrite it by converting the folder dataset again",
         setup=_shard_copy(_index('{"modalities": [')), argv=lambda w, u: ["convert", "--src", "shards", "--dst", "out"]),
    Case("shards-index-empty", SHARDS, "a shard root whose index.json is 0 bytes (tokenize)",
         r"shards/index\.json is not a readable shard index \(.*\); rewrite it",
         setup=_shard_copy(_index("")),
         argv=lambda w, u: ["tokenize", "--data", "shards", "--modality", "rgb", "--tokenizer",
                            w.model / "tokenizers" / "tok_rgb.safetensors"]),
    Case("shards-index-list", SHARDS, "a shard root whose index.json holds a list (eval)",
         r"shards/index\.json must hold a JSON object, got list; rewrite it",
         setup=_shard_copy(_index("[]")), argv=lambda w, u: ["eval", "--data", "shards", "--limit", "1"]),
    Case("shards-index-keys", SHARDS, "a shard root whose index.json lacks its counts (train)",
         r"shards/index\.json lacks valid modalities, num_shards, num_samples; rewrite it",
         setup=_shard_copy(_index('{"shards": 1}')),
         argv=lambda w, u: ["train", "data.source=shards", "train.steps=1", "train.out_dir=run"]),
    Case("shards-crop-settings-broken", SHARDS, "a shard root whose crop_settings shard is not a tar",
         r"shards/crop_settings/shard-00000\.tar is not a readable tar shard \(.*\); delete it to have it written again",
         setup=_shard_copy(_crop_tar),
         argv=lambda w, u: ["tokenize", "--data", "shards", "--modality", "rgb", "--tokenizer",
                            w.model / "tokenizers" / "tok_rgb.safetensors"]),
    Case("folder-crop-settings-broken", SHARDS, "a token folder's crop settings file that is not .npy",
         r"data/crop_settings/scene_00000000\.npy is not a readable crop settings file \(.*\); delete it to redo",
         setup=_data_with(_crop_npy(b"not numpy")),
         argv=lambda w, u: ["tokenize", "--data", "data", "--modality", "rgb", "--tokenizer",
                            w.model / "tokenizers" / "tok_rgb.safetensors"]),
    Case("folder-crop-settings-empty", SHARDS, "a token folder's crop settings file of 0 bytes",
         r"data/crop_settings/scene_00000000\.npy is not a readable crop settings file \(.*\); delete it to redo",
         setup=_data_with(_crop_npy(b"")),
         argv=lambda w, u: ["tokenize", "--data", "data", "--modality", "rgb", "--tokenizer",
                            w.model / "tokenizers" / "tok_rgb.safetensors"]),
    Case("labels-json-broken", SHARDS, "a dataset whose labels.json is not JSON (label)",
         r"data/labels\.json is not readable JSON \(.*\); repair or delete it \(it only records provenance\)",
         setup=_data_with(lambda root: (root / "labels.json").write_text('{"canny_edge": {')),
         argv=lambda w, u: ["label", "--data", "data", "-m", "color_palette"]),
    Case("labels-json-list", SHARDS, "a dataset whose labels.json holds a list (label)",
         r"data/labels\.json must hold a JSON object \(modality -> record\); repair or delete it",
         setup=_data_with(lambda root: (root / "labels.json").write_text("[]")),
         argv=lambda w, u: ["label", "--data", "data", "-m", "canny_edge"]),
    Case("dataset-root-is-file", SHARDS, "a --data path that is a file, not a dataset folder (show)",
         r"dataset root data is a file; give the folder holding <modality>/<sample>\.<ext>",
         setup=_recipe("rgb,depth", name="data"), argv=lambda w, u: ["show", "--data", "data", "--out", "sheet.png"]),
    Case("dataset-plain-photos-show", SHARDS, "a plain folder of photos given as a dataset (show)",
         r"photos holds no modality folders \(expected root/<modality>/<sample>\.<ext>\); its 2 image\(s\) lie "
         r"directly in it: move them into photos/rgb/ to make it a dataset of one modality",
         setup=lambda w, u: _plain_photos(w, u), argv=lambda w, u: ["show", "--data", "photos", "--out", "sheet.png"]),
    Case("dataset-plain-photos-tokenize", SHARDS, "a plain folder of photos given as a dataset (tokenize)",
         r"photos: no folder for modalities \['rgb'\]; found \[\] .*; its 2 image\(s\) lie directly in it: move "
         r"them into photos/rgb/",
         setup=lambda w, u: _plain_photos(w, u),
         argv=lambda w, u: ["tokenize", "--data", "photos", "--modality", "rgb", "--tokenizer",
                            w.model / "tokenizers" / "tok_rgb.safetensors"]),
    # -- gallery indexes ---------------------------------------------------------------------------------
    Case("gallery-empty-file", GALLERY, "a gallery index of 0 bytes",
         r"gallery\.index is not a readable gallery index \(damaged, truncated or another kind of file\); rebuild it "
         r"with `open4m index",
         setup=_gallery(b""), argv=_retrieve),
    Case("gallery-text", GALLERY, "a gallery index that is a text file",
         r"gallery\.index is not a readable gallery index .*; rebuild it",
         setup=_gallery("cat.png 0.1 0.2\n"), argv=_retrieve),
    Case("gallery-truncated", GALLERY, "a gallery index cut short",
         r"gallery\.index is not a readable gallery index .*; rebuild it",
         setup=_gallery_truncated, argv=_retrieve),
    Case("gallery-folder", GALLERY, "a gallery index path that is a folder",
         r"gallery\.index is a folder, not a gallery index file; rebuild it",
         setup=_gallery(None), argv=_retrieve),
    Case("gallery-other-safetensors", GALLERY, "a tokenizer file given as the gallery index",
         r"gallery\.index is not a gallery index \(it holds \[.*\]\); rebuild it",
         setup=lambda w, u: shutil.copy(w.model / "tokenizers" / "tok_depth.safetensors", u / "gallery.index"),
         argv=_retrieve),
    Case("gallery-keys-broken", GALLERY, "a gallery index whose file names are not JSON",
         r"gallery\.index: the index's file names are damaged \(not a JSON list of names\); rebuild it",
         setup=_gallery(vectors=_ones(2), keys='["a.png", '), argv=_retrieve),
    Case("gallery-count-mismatch", GALLERY, "a gallery index with 2 vectors for 1 file name",
         r"gallery\.index holds \(2, 8\) float32 vectors for 1 images; the index is damaged, rebuild it",
         setup=_gallery(vectors=_ones(2), keys=json.dumps(["a.png"])), argv=_retrieve),
    Case("gallery-not-finite", GALLERY, "a gallery index whose vectors are NaN",
         r"gallery\.index holds vectors that are not finite numbers; the index is damaged, rebuild it",
         setup=_gallery(vectors=_nan_vectors, keys=json.dumps(["a.png", "b.png"])), argv=_retrieve),
    Case("gallery-integer-vectors", GALLERY, "a gallery index holding integer vectors",
         r"gallery\.index holds \(2, 8\) int64 vectors for 2 images; the index is damaged, rebuild it",
         setup=_gallery(vectors=_int_vectors, keys=json.dumps(["a.png", "b.png"])), argv=_retrieve),
    Case("gallery-no-keys", GALLERY, "a safetensors file of vectors without file names",
         r"gallery\.index is not a gallery index \(it holds \['vectors'\]\); rebuild it",
         setup=_gallery(vectors=_ones(2)), argv=_retrieve),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, check):
    check(case)
