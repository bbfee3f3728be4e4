"""Bad model files and folders given to the verbs and loaders that read a model: its weights
(model.safetensors), its settings (config.json), its tokenizers (tokenizers/tok_*.safetensors,
tokenizers/text.json, the tokenizers.json manifest) and a world model's world.json; and tokenizer
files given on their own (tokenize --tokenizer, generate --tokenizers). Each file missing, empty,
truncated, not the kind of file it should be, or a folder where a file belongs."""

import shutil

import pytest

from battery import Case, user_files

AREA = "Models and checkpoints"
TOKS = "Tokenizer files"
SAFETENSORS_BROKEN = r"is not a readable safetensors file \(.*\); it may be truncated or corrupt — download or save it again"


def _generate(model, *extra):
    return lambda w, u: ["generate", "--model", model(w) if callable(model) else model, "--input", f"rgb={w.photo}",
                         "--target", "depth", "--out", "out", *extra]


def _caption(w, u):
    return ["generate", "--model", "model", "--input", "world_caption=a red cube", "--target", "depth", "--out", "out"]


def _model_copy(change):
    """Setup: a copy of the world model as ./model, with `change(folder, world)` applied."""

    def setup(world, user):
        shutil.copytree(world.model, user / "model")
        change(user / "model", world)

    return setup


def _write(relpath, data):
    def change(folder, world):
        path = folder / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)

    return change


def _truncate(relpath, keep):
    def change(folder, world):
        path = folder / relpath
        path.write_bytes(path.read_bytes()[:keep])

    return change


def _as_folder(relpath):
    """The file replaced by a folder of the same name."""

    def change(folder, world):
        path = folder / relpath
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        path.mkdir()

    return change


def _as_file(relpath):
    """The folder replaced by a file of the same name."""

    def change(folder, world):
        shutil.rmtree(folder / relpath)
        (folder / relpath).write_text("not a folder")

    return change


def _remove(relpath):
    return lambda folder, world: (folder / relpath).unlink()


def _text_as_safetensors(world, user):
    (user / "model").mkdir()
    (user / "model" / "model.safetensors").write_text("not weights")
    (user / "model" / "config.json").write_text((world.model / "config.json").read_text())


def _tokenizer_prefix(world, user):
    """A depth tokenizer cut short: its header is there, most of its tensors are not."""
    data = (world.model / "tokenizers" / "tok_depth.safetensors").read_bytes()
    (user / "tok.safetensors").write_bytes(data[: len(data) // 2])


def _tokenize(tokenizer, modality="rgb"):
    return lambda w, u: ["tokenize", "--data", "data", "--modality", modality, "--tokenizer", tokenizer]


def _finetuned_encoder(world, user):
    """Setup: ./encoder, an encoder with a classification head as `open4m finetune` exports one."""
    from open4m.model import FourMEncoder

    FourMEncoder.from_pretrained(world.model, head="classification", num_classes=3).save_pretrained(user / "encoder")


def _with_data(*more):
    """Setup: the world's rgb and det folders as ./data (tokenize writes beside them), then `more` setups."""

    def setup(world, user):
        for m in ("rgb", "det"):
            shutil.copytree(world.data / m, user / "data" / m)
        for extra in more:
            extra(world, user)

    return setup


CASES = [
    # -- the FourM's weights -------------------------------------------------------------------------
    Case("model-missing", AREA, "a --model folder that does not exist",
         r"no FourM at .nowhere.*neither an existing file or folder",
         argv=lambda w, u: ["generate", "--model", "nowhere", "--input", f"rgb={w.photo}", "--target", "depth", "--out", "out"],
         process=True),
    Case("model-is-a-tokenizer", AREA, "a tokenizer file given as --model (generate)",
         r"model/tokenizers/tok_depth\.safetensors is a tokenizer, not a FourM model; load it with "
         r"open4m\.load_tokenizer \(or --tokenizers on the command line\)",
         argv=_generate(lambda w: w.model / "tokenizers" / "tok_depth.safetensors")),
    Case("model-is-a-finetuned-encoder", AREA, "a fine-tuned encoder (what open4m finetune exports) given as --model",
         r"encoder/model\.safetensors is a fine-tuned FourM encoder \(open4m finetune\), not a FourM model: it has no "
         r"decoder to generate with; load it with open4m\.model\.FourMEncoder\.from_pretrained",
         setup=_finetuned_encoder, argv=_generate("encoder")),
    Case("tokenizer-is-a-model", TOKS, "a FourM model folder given as the tokenizer (tokenize --tokenizer MODEL)",
         r"model is a FourM model, not a tokenizer; load it with open4m\.load_model, or give one of its tokenizers",
         argv=lambda w, u: ["tokenize", "--data", w.data, "--modality", "rgb", "--tokenizer", w.model,
                            "--out-name", "tok_test"]),
    Case("model-not-safetensors", AREA, "model.safetensors holding text",
         r"model\.safetensors",
         setup=_text_as_safetensors,
         argv=lambda w, u: ["generate", "--model", "model", "--input", f"rgb={w.photo}", "--target", "depth", "--out", "out"]),
    Case("file-model-empty", AREA, "model.safetensors of 0 bytes",
         r"model/model\.safetensors " + SAFETENSORS_BROKEN,
         setup=_model_copy(_write("model.safetensors", b"")), argv=_generate("model")),
    Case("file-model-truncated", AREA, "model.safetensors cut short (an interrupted download)",
         r"model/model\.safetensors " + SAFETENSORS_BROKEN,
         setup=_model_copy(_truncate("model.safetensors", 100_000)), argv=_generate("model")),
    Case("file-model-weights-folder", AREA, "model.safetensors that is a folder",
         r"model/model\.safetensors is a folder, not a safetensors file; restore the file",
         setup=_model_copy(_as_folder("model.safetensors")), argv=_generate("model")),
    Case("file-model-no-weights", AREA, "a model folder without model.safetensors",
         r"model has no model\.safetensors; point at the \.safetensors file itself",
         setup=_model_copy(_remove("model.safetensors")), argv=_generate("model")),
    Case("file-model-file-empty", AREA, "--model naming an empty .safetensors file (eval)",
         r"m\.safetensors " + SAFETENSORS_BROKEN,
         setup=user_files(**{"m.safetensors": b""}),
         argv=lambda w, u: ["eval", "--model", "m.safetensors", "--data", w.data, "--limit", "1"]),
    Case("file-train-init-from-empty", AREA, "train model.init_from naming an empty .safetensors file",
         r"m\.safetensors " + SAFETENSORS_BROKEN,
         setup=user_files(**{"m.safetensors": b""}),
         argv=lambda w, u: ["train", "model.init_from=m.safetensors", "train.steps=1", "train.out_dir=run"]),
    # -- its settings --------------------------------------------------------------------------------
    Case("file-config-empty", AREA, "config.json of 0 bytes",
         r"model/config\.json is not valid JSON \(.*\); download or save the model again",
         setup=_model_copy(_write("config.json", "")), argv=_generate("model")),
    Case("file-config-not-json", AREA, "config.json that is not JSON",
         r"model/config\.json is not valid JSON \(.*\); download or save the model again",
         setup=_model_copy(_write("config.json", "{dim: 128,")), argv=_generate("model")),
    Case("file-config-list", AREA, "config.json holding a list instead of settings",
         r"model/config\.json must hold a JSON object of settings, got list; download or save the model again",
         setup=_model_copy(_write("config.json", "[128, 2]")), argv=_generate("model")),
    Case("file-config-folder", AREA, "config.json that is a folder",
         r"model/config\.json is a folder, not the model's settings; remove it",
         setup=_model_copy(_as_folder("config.json")), argv=_generate("model")),
    Case("file-config-unknown-key", AREA, "config.json with a misspelt setting (dimm)",
         r"unknown FourM config key\(s\): 'dimm' \(did you mean 'dim'\?\)",
         setup=_model_copy(_write("config.json", '{"dimm": 128}')), argv=_generate("model")),
    Case("file-world-json-broken", AREA, "a world model whose world.json is not JSON (eval)",
         r"model/world\.json is not readable JSON \(.*\); restore it from the model's release, or save the model again",
         setup=_model_copy(_write("world.json", "{spec: ")),
         argv=lambda w, u: ["eval", "--model", "model", "--data", w.data, "--limit", "1", "--tasks", "depth"]),
    Case("file-world-json-no-spec", AREA, "a world model whose world.json holds no spec (eval)",
         r"model/world\.json holds no valid world spec \(KeyError: 'spec'\); restore it",
         setup=_model_copy(_write("world.json", '{"recipe": "x"}')),
         argv=lambda w, u: ["eval", "--model", "model", "--data", w.data, "--limit", "1", "--tasks", "depth"]),
    Case("file-demo-world-json-list", AREA, "a world model whose world.json is cut to '[' (demo)",
         r"model/world\.json is not readable JSON \(.*\); restore it from the model's release, or save the model again",
         setup=_model_copy(_write("world.json", "[")),
         argv=lambda w, u: ["demo", "--model", "model", "--out", "out"]),
    # -- the model's own tokenizers ------------------------------------------------------------------
    Case("file-tokenizer-empty", TOKS, "a model's tok_depth.safetensors of 0 bytes",
         r"model/tokenizers/tok_depth\.safetensors " + SAFETENSORS_BROKEN,
         setup=_model_copy(_write("tokenizers/tok_depth.safetensors", b"")), argv=_generate("model")),
    Case("file-demo-tokenizer-empty", TOKS, "a world model's tok_normal.safetensors of 0 bytes (demo)",
         r"model/tokenizers/tok_normal\.safetensors " + SAFETENSORS_BROKEN,
         setup=_model_copy(_write("tokenizers/tok_normal.safetensors", b"")),
         argv=lambda w, u: ["demo", "--model", "model", "--out", "out"]),
    Case("file-tokenizer-truncated", TOKS, "a model's tok_depth.safetensors cut short",
         r"model/tokenizers/tok_depth\.safetensors " + SAFETENSORS_BROKEN,
         setup=_model_copy(_truncate("tokenizers/tok_depth.safetensors", 5000)), argv=_generate("model")),
    Case("file-tokenizer-folder", TOKS, "a model's tok_depth.safetensors that is a folder",
         r"model/tokenizers/tok_depth\.safetensors is a folder, not a file; restore the file",
         setup=_model_copy(_as_folder("tokenizers/tok_depth.safetensors")), argv=_generate("model")),
    Case("file-tokenizer-missing", TOKS, "a model whose tok_depth.safetensors is gone",
         r"tokenizers/tok_depth\.safetensors is not in model; restore it, or save the model again",
         setup=_model_copy(_remove("tokenizers/tok_depth.safetensors")), argv=_generate("model")),
    Case("file-tokenizers-folder-is-file", TOKS, "a model whose tokenizers/ folder is a file",
         r"tokenizers/tok_depth\.safetensors is not in model; restore it",
         setup=_model_copy(_as_file("tokenizers")), argv=_generate("model")),
    Case("file-manifest-not-json", TOKS, "tokenizers.json that is not JSON",
         r"model/tokenizers\.json is not a tokenizer manifest .*; save the model again",
         setup=_model_copy(_write("tokenizers.json", "{tokenizers: [")), argv=_generate("model")),
    Case("file-manifest-empty", TOKS, "tokenizers.json of 0 bytes",
         r"model/tokenizers\.json is not a tokenizer manifest .*; save the model again",
         setup=_model_copy(_write("tokenizers.json", "")), argv=_generate("model")),
    Case("file-manifest-wrong-shape", TOKS, "tokenizers.json whose entries are not file names",
         r"model/tokenizers\.json is not a tokenizer manifest .*; save the model again",
         setup=_model_copy(_write("tokenizers.json", '{"tokenizers": {"tok_depth@64": 3}}')), argv=_generate("model")),
    Case("file-manifest-folder", TOKS, "tokenizers.json that is a folder",
         r"model/tokenizers\.json is a folder, not a file; restore the file",
         setup=_model_copy(_as_folder("tokenizers.json")), argv=_generate("model")),
    Case("file-text-tokenizer-broken", TOKS, "a model's text.json that is not JSON (a caption condition)",
         r"model/tokenizers/text\.json is not a readable tokenizers JSON file \(.*\); download or save the text "
         r"tokenizer again",
         setup=_model_copy(_write("tokenizers/text.json", "{vocab: ")), argv=_caption),
    Case("file-text-tokenizer-empty", TOKS, "a model's text.json of 0 bytes",
         r"model/tokenizers/text\.json is not a readable tokenizers JSON file \(.*\); download or save",
         setup=_model_copy(_write("tokenizers/text.json", "")), argv=_caption),
    Case("file-text-tokenizer-folder", TOKS, "a model's text.json that is a folder",
         r"model/tokenizers/text\.json is a folder, not a file; restore the file",
         setup=_model_copy(_as_folder("tokenizers/text.json")), argv=_caption),
    # -- tokenizer files given on their own ----------------------------------------------------------
    Case("file-tokenize-tokenizer-empty", TOKS, "tokenize --tokenizer naming an empty file",
         r"tok\.safetensors " + SAFETENSORS_BROKEN,
         setup=_with_data(user_files(**{"tok.safetensors": b""})), argv=_tokenize("tok.safetensors")),
    Case("file-tokenize-tokenizer-text", TOKS, "tokenize --tokenizer naming a text file called .safetensors",
         r"tok\.safetensors " + SAFETENSORS_BROKEN,
         setup=_with_data(user_files(**{"tok.safetensors": "a tokenizer, honest"})), argv=_tokenize("tok.safetensors")),
    Case("file-tokenize-tokenizer-truncated", TOKS, "tokenize --tokenizer naming a tokenizer cut short",
         r"tok\.safetensors " + SAFETENSORS_BROKEN,
         setup=_with_data(_tokenizer_prefix), argv=_tokenize("tok.safetensors", modality="depth")),
    Case("file-tokenize-tokenizer-empty-folder", TOKS, "tokenize --tokenizer naming an empty folder",
         r"tok has no model\.safetensors; point at the \.safetensors file itself",
         setup=_with_data(user_files(tok=None)), argv=_tokenize("tok")),
    Case("file-tokenize-text-tokenizer-broken", TOKS, "tokenize --tokenizer naming a text.json that is not JSON",
         r"text\.json is not a readable tokenizers JSON file \(.*\); download or save the text tokenizer again",
         setup=_with_data(user_files(**{"text.json": '{"model": '})), argv=_tokenize("text.json", modality="det")),
    Case("file-tokenize-text-tokenizer-list", TOKS, "tokenize --tokenizer naming a text.json holding a list",
         r"text\.json is not a readable tokenizers JSON file \(.*\); download or save the text tokenizer again",
         setup=_with_data(user_files(**{"text.json": "[1, 2]"})), argv=_tokenize("text.json", modality="det")),
    Case("file-generate-tokenizer-override-empty", TOKS, "generate --tokenizers depth=FILE naming an empty file",
         r"tok\.safetensors " + SAFETENSORS_BROKEN,
         setup=user_files(**{"tok.safetensors": b""}),
         argv=_generate(lambda w: w.model, "--tokenizers", "depth=tok.safetensors")),
    Case("file-generate-tokenizer-folder-empty", TOKS, "generate --tokenizers naming an empty folder",
         r"--tokenizers toks: the folder holds no tokenizers .*; point at the folder that does",
         setup=user_files(toks=None), argv=_generate(lambda w: w.model, "--tokenizers", "toks")),
    Case("file-generate-tokenizer-folder-broken", TOKS, "generate --tokenizers folder holding a broken tok_depth",
         r"toks/tok_depth\.safetensors " + SAFETENSORS_BROKEN,
         setup=user_files(**{"toks/tok_depth.safetensors": "not a tokenizer"}),
         argv=_generate(lambda w: w.model, "--tokenizers", "toks")),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, check):
    check(case)
