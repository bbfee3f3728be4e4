"""Output paths that exist: every verb that writes refuses to replace what a user has there (a folder
holding their files, a regular file where a folder is meant, a file where one is asked for, a path
below a file, a read-only folder) with exit 2 and the fix (`--overwrite`, another path), before any work.
With `--overwrite` only the files the verb writes are replaced (tests below the battery)."""

import os
import shutil

import pytest

from battery import Case

AREA = "Outputs that exist"
MINE = b"the user's own notes\n"


def _folder(name="mine"):
    """A folder holding one of the user's files."""
    def setup(world, user):
        (user / name).mkdir(parents=True)
        (user / name / "notes.txt").write_bytes(MINE)
    return setup


def _file(name="notes.txt"):
    def setup(world, user):
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_bytes(MINE)
    return setup


def _read_only(name="locked"):
    """A folder the user cannot write to (as root every folder is writable: the case is skipped)."""
    def setup(world, user):
        folder = user / name
        folder.mkdir()
        folder.chmod(0o555)
        if os.access(folder, os.W_OK):
            folder.chmod(0o755)
            pytest.skip("running as root: a read-only folder is still writable")
    return setup


def _data_copy(extra=None):
    """A copy of the small dataset in the user's folder (tokenize writes beside it)."""
    def setup(world, user):
        shutil.copytree(world.data, user / "data")
        if extra is not None:
            extra(user / "data")
    return setup


def _fake_run(world, user):
    """A run folder of an earlier `open4m train` (its recipe and one checkpoint)."""
    step = user / "run" / "checkpoints" / "step-00000002"
    step.mkdir(parents=True)
    (step / "state.json").write_text('{"step": 2}')
    (user / "run" / "config.yaml").write_text("train:\n  steps: 2\n")


def _finetune_setup(world, user):
    from battery import ROOT

    _folder()(world, user)
    shutil.copy(ROOT / "configs" / "finetune" / "world_seg.yaml", user / "seg.yaml")


def _gen(w, out):
    return ["generate", "--model", w.model, "--input", f"rgb={w.photo}", "--target", "depth", "--out", out]


def _tok(out_name):
    return lambda w, u: ["tokenize", "--data", "data", "--modality", "rgb", "--tokenizer",
                         w.model / "tokenizers" / "tok_rgb.safetensors", "--out-name", out_name]


def _save_onto_a_file(world, user):
    """pipeline("rgb->depth", model=MODEL)(PHOTO).save("notes.txt") with notes.txt a file"""
    import open4m

    out = open4m.pipeline("rgb->depth", model=world.model, steps=1)(str(world.photo))
    out.save(user / "notes.txt")


HOLDS = r"already holds files; choose a new or empty folder, or pass --overwrite"
FILE_AS_FOLDER = r"is a file where a folder is expected; choose another"
BELOW_FILE = r"notes\.txt is a file, not a folder; choose an output path in a folder"
EXISTS = r"exists; choose another .* or pass --overwrite to replace it"
READ_ONLY = r"not writable \(permission denied\); choose a folder you can write to"

CASES = [
    # synth
    Case("out-synth-user-folder", AREA, "synth --out: a folder holding the user's files", HOLDS,
         setup=_folder(), argv=lambda w, u: ["synth", "--out", "mine", "--n", "1", "--size", "16"], process=True),
    Case("out-synth-file", AREA, "synth --out: a regular file", FILE_AS_FOLDER,
         setup=_file(), argv=lambda w, u: ["synth", "--out", "notes.txt", "--n", "1", "--size", "16"]),
    Case("out-synth-below-file", AREA, "synth --out: a path below a regular file", BELOW_FILE,
         setup=_file(), argv=lambda w, u: ["synth", "--out", "notes.txt/scenes", "--n", "1", "--size", "16"]),
    Case("out-synth-read-only", AREA, "synth --out: inside a read-only folder", READ_ONLY,
         setup=_read_only(), argv=lambda w, u: ["synth", "--out", "locked/scenes", "--n", "1", "--size", "16"]),
    # convert
    Case("out-convert-user-folder", AREA, "convert --dst: a folder holding the user's files",
         HOLDS.replace("--overwrite", "--overwrite to write into it"),
         setup=_folder(), argv=lambda w, u: ["convert", "--src", w.data, "--dst", "mine"]),
    Case("out-convert-file", AREA, "convert --dst: a regular file", r"--dst notes\.txt " + FILE_AS_FOLDER + " --dst",
         setup=_file(), argv=lambda w, u: ["convert", "--src", w.data, "--dst", "notes.txt"]),
    Case("out-convert-into-src", AREA, "convert --dst: a folder inside --src (the dataset itself would hold the copy)",
         r"--dst data/shards is inside --src data: the converted copy would become part of the dataset it converts; "
         r"choose a --dst outside --src",
         setup=_data_copy(), argv=lambda w, u: ["convert", "--src", "data", "--dst", "data/shards"]),
    Case("out-convert-src-itself", AREA, "convert --dst: --src itself, with --overwrite",
         r"--dst data is --src itself: the converted copy would become part of the dataset",
         setup=_data_copy(), argv=lambda w, u: ["convert", "--src", "data", "--dst", "data", "--overwrite"]),
    # generate
    Case("out-generate-user-folder", AREA, "generate --out: a folder holding the user's files", HOLDS,
         setup=_folder(), argv=lambda w, u: _gen(w, "mine")),
    Case("out-generate-file", AREA, "generate --out: a regular file", FILE_AS_FOLDER,
         setup=_file(), argv=lambda w, u: _gen(w, "notes.txt")),
    Case("out-generate-below-file", AREA, "generate --out: a path below a regular file", BELOW_FILE,
         setup=_file(), argv=lambda w, u: _gen(w, "notes.txt/pred")),
    Case("out-generate-read-only", AREA, "generate --out: a read-only folder", READ_ONLY,
         setup=_read_only(), argv=lambda w, u: _gen(w, "locked")),
    # demo
    Case("out-demo-user-folder", AREA, "demo --out: a folder holding the user's files", HOLDS,
         setup=_folder(), argv=lambda w, u: ["demo", "--out", "mine", "--scenes", "1"]),
    Case("out-demo-default-taken", AREA, "demo without --out: open4m-demo/ holds the user's files", HOLDS,
         setup=_folder("open4m-demo"), argv=lambda w, u: ["demo", "--scenes", "1"]),
    Case("out-demo-train-user-folder", AREA, "demo --train --out: a folder holding the user's files (not a run "
         "of the recipe)", HOLDS, setup=_folder(), argv=lambda w, u: ["demo", "--train", "--out", "mine"]),
    Case("out-demo-file", AREA, "demo --out: a regular file", FILE_AS_FOLDER,
         setup=_file(), argv=lambda w, u: ["demo", "--out", "notes.txt", "--scenes", "1"]),
    # show
    Case("out-show-exists", AREA, "show --out: a file that exists", r"--out sheet\.png " + EXISTS,
         setup=_file("sheet.png"), argv=lambda w, u: ["show", "--data", w.data, "--out", "sheet.png"]),
    Case("out-show-folder", AREA, "show --out: a folder", r"is a folder where a file is expected; name a file inside",
         setup=_folder(), argv=lambda w, u: ["show", "--data", w.data, "--out", "mine"]),
    Case("out-show-missing", AREA, "show without --out (it never writes into the current folder by surprise)",
         r"required: --out", argv=lambda w, u: ["show", "--data", w.data]),
    Case("out-show-below-file", AREA, "show --out: a path below a regular file", BELOW_FILE,
         setup=_file(), argv=lambda w, u: ["show", "--data", w.data, "--out", "notes.txt/sheet.png"]),
    # eval --json, index --out
    Case("out-eval-json-exists", AREA, "eval --json: a file that exists", r"--json metrics\.json " + EXISTS,
         setup=_file("metrics.json"), argv=lambda w, u: ["eval", "--json", "metrics.json", "--limit", "1"]),
    Case("out-eval-json-folder", AREA, "eval --json: a folder", r"is a folder where a file is expected",
         setup=_folder(), argv=lambda w, u: ["eval", "--json", "mine", "--limit", "1"]),
    Case("out-index-exists", AREA, "index --out: a file that exists", r"--out gallery\.index " + EXISTS,
         setup=_file("gallery.index"),
         argv=lambda w, u: ["index", "--model", w.model, "--images", w.data / "rgb", "--out", "gallery.index"]),
    # dataset
    Case("out-dataset-photos-user-folder", AREA, "dataset photos --out: a folder holding the user's files", HOLDS,
         setup=_folder(), argv=lambda w, u: ["dataset", "photos", "--out", "mine"]),
    Case("out-dataset-motorcycle-user-folder", AREA, "dataset motorcycle --out: a folder holding the user's files",
         HOLDS, setup=_folder(), argv=lambda w, u: ["dataset", "motorcycle", "--out", "mine"]),
    # training verbs
    Case("out-train-user-folder", AREA, "train: train.out_dir holding the user's files (not a run folder)",
         r"train\.out_dir mine " + HOLDS,
         setup=_folder(), argv=lambda w, u: ["train", "train.out_dir=mine", "train.steps=1"]),
    Case("out-train-file", AREA, "train: train.out_dir a regular file", r"train\.out_dir notes\.txt " + FILE_AS_FOLDER,
         setup=_file(), argv=lambda w, u: ["train", "train.out_dir=notes.txt", "train.steps=1"]),
    Case("out-train-no-resume", AREA, "train with train.resume=false into a run folder holding checkpoints",
         r"holds the checkpoints of an earlier run and train\.resume=false; pass --overwrite to start over",
         setup=_fake_run, argv=lambda w, u: ["train", "train.out_dir=run", "train.resume=false", "train.steps=1"]),
    Case("out-finetune-user-folder", AREA, "finetune: train.out_dir holding the user's files", HOLDS,
         setup=_finetune_setup, argv=lambda w, u: ["finetune", "seg.yaml", f"model.init_from={w.model}",
                                                   "train.out_dir=mine"]),
    Case("out-train-tokenizer-user-folder", AREA, "train-tokenizer --out: a folder holding the user's files", HOLDS,
         setup=_folder(), argv=lambda w, u: ["train-tokenizer", "--kind", "vqvae", "--data", w.data / "rgb",
                                             "--out", "mine", "--steps", "1"]),
    Case("out-train-tokenizer-no-resume", AREA, "train-tokenizer --no-resume into a run folder holding checkpoints",
         r"train\.resume=false; pass --overwrite to start over there",
         setup=_fake_run, argv=lambda w, u: ["train-tokenizer", "--kind", "vqvae", "--data", w.data / "rgb",
                                             "--out", "run", "--steps", "1", "--no-resume"]),
    Case("out-train-tokenizer-text-user-folder", AREA, "train-tokenizer --kind text --out: a folder holding the "
         "user's files", HOLDS,
         setup=_folder(), argv=lambda w, u: ["train-tokenizer", "--kind", "text", "--data", w.data / "caption",
                                             "--out", "mine"]),
    # tokenize (writes beside the data)
    Case("out-tokenize-file", AREA, "tokenize --out-name: a regular file in the dataset", FILE_AS_FOLDER,
         setup=_data_copy(lambda d: (d / "tok_rgb").write_bytes(MINE)), argv=_tok("tok_rgb")),
    Case("out-tokenize-user-folder", AREA, "tokenize --out-name: a folder of the user's files (not token files)",
         HOLDS, setup=_data_copy(lambda d: (_folder("tok_rgb")(None, d))), argv=_tok("tok_rgb")),
    Case("out-tokenize-into-source", AREA, "tokenize --out-name: the modality's own folder",
         r"--out-name 'rgb': name a new folder under --data .*not the modality's own folder",
         setup=_data_copy(), argv=_tok("rgb")),
    # label writes into --data
    Case("out-library-save-file", AREA, "GenerationOutput.save: a regular file where the folder should be",
         r"notes\.txt is a file where the output folder should be; save to another folder \(the file is left as it is\)",
         setup=_file(), call=_save_onto_a_file),
    Case("out-label-read-only", AREA, "label --data: a read-only dataset folder", READ_ONLY,
         setup=_read_only(), argv=lambda w, u: ["label", "--data", "locked", "-m", "canny_edge"]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, check):
    check(case)


# -- what --overwrite does: the verb's own files are written, nothing else of the user's is touched ----------
def test_overwrite_writes_into_a_folder_and_keeps_the_users_other_files(tmp_path):
    from open4m.cli import main

    _folder()(None, tmp_path)
    mine = tmp_path / "mine"
    assert main(["-q", "synth", "--out", str(mine), "--n", "1", "--size", "16"]) == 2
    assert main(["-q", "synth", "--out", str(mine), "--n", "1", "--size", "16", "--overwrite"]) == 0
    assert (mine / "notes.txt").read_bytes() == MINE
    assert sorted(p.name for p in (mine / "rgb").iterdir()) and not list(mine.rglob("*.tmp"))


def test_overwrite_replaces_a_file_of_the_verb(tmp_path, world):
    from PIL import Image

    from open4m.cli import main

    sheet = tmp_path / "sheet.png"
    sheet.write_bytes(MINE)
    assert main(["-q", "show", "--data", str(world.data), "--out", str(sheet), "--overwrite"]) == 0
    assert Image.open(sheet).format == "PNG"


def test_overwrite_never_turns_a_file_into_a_folder(tmp_path):
    from open4m.cli import main

    (tmp_path / "notes.txt").write_bytes(MINE)
    assert main(["-q", "synth", "--out", str(tmp_path / "notes.txt"), "--n", "1", "--size", "16", "--overwrite"]) == 2
    assert (tmp_path / "notes.txt").read_bytes() == MINE


def test_a_run_folder_resumes_and_overwrite_discards_only_its_checkpoints(tmp_path):
    """Resuming is not overwriting: a run folder passes the check; with train.resume=false and --overwrite the
    earlier run's checkpoints go, and nothing else in the folder."""
    import argparse

    from open4m.cli.commands import check_run_folder
    from open4m.train.engine import RunSection

    _fake_run(None, tmp_path)
    run = tmp_path / "run"
    (run / "notes.txt").write_bytes(MINE)
    check_run_folder(RunSection(out_dir=str(run), resume=True), argparse.Namespace(overwrite=False))
    assert (run / "checkpoints" / "step-00000002").is_dir()
    check_run_folder(RunSection(out_dir=str(run), resume=False), argparse.Namespace(overwrite=True))
    assert not list((run / "checkpoints").iterdir())
    assert (run / "notes.txt").read_bytes() == MINE and (run / "config.yaml").is_file()


def test_demo_train_resumes_its_own_folder():
    from open4m.recipes.world import is_recipe_folder

    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        assert not is_recipe_folder(folder)  # empty: nothing to resume (and nothing to refuse)
        (folder / "tokenizers").mkdir()
        (folder / "tokens").mkdir()
        assert is_recipe_folder(folder)
        (folder / "notes.txt").write_bytes(MINE)
        assert not is_recipe_folder(folder)


def test_tokenize_reruns_into_its_own_token_folder(tmp_path, world):
    """A token folder an earlier run wrote resumes (finished files are skipped), without --overwrite."""
    from open4m.cli import main

    shutil.copytree(world.data, tmp_path / "data")
    argv = ["-q", "tokenize", "--data", str(tmp_path / "data"), "--modality", "rgb", "--tokenizer",
            str(world.model / "tokenizers" / "tok_rgb.safetensors"), "--device", "cpu"]
    assert main(argv) == 0
    first = {p.name: p.read_bytes() for p in (tmp_path / "data" / "tok_rgb").iterdir()}
    assert main(argv) == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "data" / "tok_rgb").iterdir()} == first
