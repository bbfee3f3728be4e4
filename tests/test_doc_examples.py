"""Every code block in README.md and docs/*.md runs in a test, as written.

The blocks are found by parsing the markdown; every fence carries a language tag:

- ``python``: every python block of a page runs, in order, in ONE namespace (a page may build on
  its earlier blocks), in a fresh working directory;
- ``bash``: each command (``\\`` continuations joined, split at ``&&`` and ``;``) must be known.
  ``open4m ...`` (also ``python -m open4m[.cli] ...`` and ``torchrun ... -m open4m.cli ...``) is parsed
  by the real command-line parser; the verbs in ``RUN_VERBS`` also run (``open4m.cli.main``, exit code
  0), the others are parse-only for the reason ``PARSE_ONLY_VERBS`` gives. Other programs are
  accepted only as listed in ``external()`` (never run); anything else fails, so a typo cannot hide;
- ``text`` (synopses, output, diagrams), ``yaml`` (must parse; a recipe fragment must also load with
  the config system of the recipe kinds it could belong to) and ``json`` (must parse) are not code.

A page's python blocks and runnable commands share one working directory, in document order (a
command may write what a later python block reads). It holds ``photo.jpg`` and ``photos/`` (a few
JPEGs): the user's files the examples name; ``configs/`` (a copy) and ``src/`` (a link) of the
repository, since the examples run from a checkout. The Hugging Face cache is an offline one this
module builds (``HF_HUB_OFFLINE=1``, ``HF_HOME`` / ``HF_HUB_CACHE``): tiny random-init models and
tokenizers under the released names the docs use (``hub_cache.doc_examples_cache``), so
``open4m.pipeline(..., model="4M-21_B")`` runs exactly as written, in seconds.

A failure names the page, the block's line and its first line; python tracebacks point into the
markdown file itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hub_cache import doc_examples_cache

ROOT = Path(__file__).resolve().parents[1]
PAGES = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
LANGUAGES = ("python", "bash", "text", "yaml", "json")

# `open4m` verbs that run (in seconds: the tiny cached models, the shipped world model, a few small scenes) ...
RUN_VERBS = {"info", "synth", "dataset", "convert", "show", "label", "generate", "index", "retrieve", "demo", "eval"}
# ... and the ones that are only parsed, with the reason. Together they must cover every verb.
PARSE_ONLY_VERBS = {
    "train": "training runs take minutes; tests/train runs the recipes at smoke size",
    "finetune": "training runs take minutes; tests/train runs the fine-tuning recipes at smoke size",
    "train-tokenizer": "training runs take minutes; tests/train runs the tokenizer task at smoke size",
    "tokenize": "needs a dataset of the user's to pre-tokenize; tests/data runs it",
    "serve": "starts a web server that runs until Ctrl-C; tests/serve drives the page (gradio_client, Chromium)",
}
# Pages whose commands are all only parsed here, with the reason: page -> why.
PARSE_ONLY_PAGES = {
    "docs/own-data.md": "the tutorial needs the labelers extra and takes minutes; tests/test_own_data.py runs every "
                        "command of the page, in order, on a few photos",
}
# Commands of a RUN verb that are only parsed, with the reason: (page, the command's start) -> why.
PARSE_ONLY_COMMANDS = {
    ("docs/generation.md", "open4m index --model 4M-21_B --images photos/ --out gallery-ivf.index --approximate"):
        "needs the faiss extra; tests/generation/test_retrieval_faiss.py runs index/retrieve with an approximate index",
    ("docs/generation.md", "open4m retrieve --model 4M-21_B --index gallery-ivf.index"):
        "reads the approximate index the command before it builds (the faiss extra)",
    ("docs/demo.md", "open4m demo --train"): "the whole world recipe from scratch: about 8 hours 30 minutes",
    ("docs/results.md", "open4m demo --train"): "the whole world recipe from scratch: about 8 hours 30 minutes",
    ("docs/demo.md", "open4m demo --model world/model"): "runs the bundle `open4m demo --train --out world` trains",
    ("docs/demo.md", "open4m eval --model world/model"): "runs the bundle `open4m demo --train --out world` trains",
    ("docs/demo.md", "open4m eval --tasks all --limit 64"):
        "every task on 64 rendered scenes (15-30 s); docs/results.md runs `open4m eval` on 8 scenes",
    ("docs/data.md", "open4m label --data photos --modality hed_edge caption_emb"):
        "needs the labelers extra and a caption per photo; tests/cli/commands/test_label.py runs it",
    ("docs/labelers-people-text.md", "open4m label --data photos --modality keypoints person_mask ocr"):
        "needs the labelers extra; tests/data/labelers/test_ocr.py runs it on a photo folder",
    ("docs/demo.md", "open4m dataset motorcycle"):
        "needs scikit-image (the labelers extra); tests/recipes/test_real_eval.py writes the set and scores it",
    ("docs/demo.md", "open4m eval --data motorcycle"):
        "reads the set `open4m dataset motorcycle` writes; tests/recipes/test_real_eval.py runs both",
    ("docs/training.md", "open4m generate --model runs/world_tiny/model.safetensors"):
        "reads the model `open4m train configs/world_tiny.yaml` exports (3.5 minutes of training)",
}


# ------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # 1-based line of the opening fence; the code starts on the next line
    lang: str
    code: str

    @property
    def first_line(self) -> str:
        return next((line.strip() for line in self.code.splitlines() if line.strip()), "")

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line} ({self.lang} block starting {self.first_line!r})"


_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def read_blocks(text: str, page: str) -> list[Block]:
    """The fenced code blocks of a markdown text (CommonMark fences, indented ones in list items too)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match or (match["fence"][0] == "`" and "`" in match["info"]):
            i += 1
            continue
        indent, fence, start = len(match["indent"]), match["fence"], i
        info = match["info"].strip()
        body, i = [], i + 1
        while i < len(lines):
            close = _FENCE.match(lines[i])
            if close and close["fence"][0] == fence[0] and len(close["fence"]) >= len(fence) and not close["info"].strip():
                break
            line = lines[i]
            body.append(line[min(indent, len(line) - len(line.lstrip())):])
            i += 1
        else:
            raise AssertionError(f"{page}:{start + 1}: the code block opened here is never closed")
        blocks.append(Block(page, start + 1, info.split()[0] if info else "", "\n".join(body) + "\n"))
        i += 1
    return blocks


def page_blocks(page: str) -> list[Block]:
    return read_blocks((ROOT / page).read_text(), page)


# ------------------------------------------------------------------------------------------
# Shell commands
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    block: Block
    line: int  # line in the page
    argv: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.block.page}:{self.line} (`{shlex.join(self.argv)}`)"


def commands(block: Block) -> list[Command]:
    """The commands of a bash block: continuation lines joined, comments dropped, split at && and ;."""
    out, pending, first = [], "", None
    for offset, line in enumerate(block.code.splitlines(), start=block.line + 1):
        first = offset if first is None else first
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text, start, pending, first = pending + line, first, "", None
        try:
            words = shlex.split(text, comments=True)
        except ValueError as err:
            raise AssertionError(f"{block.page}:{start}: cannot split {text.strip()!r} into words: {err}") from None
        current: list[str] = []
        for word in [*words, "&&"]:
            if word in ("&&", ";"):
                if current:
                    out.append(Command(block, start, tuple(current)))
                current = []
            elif word in ("|", "||", ">", ">>", "<"):
                raise AssertionError(f"{block.page}:{start}: {word!r} in {text.strip()!r}: write one command per line")
            else:
                current.append(word)
    assert not pending, f"{block.where}: the last line ends in a continuation backslash"
    return out


def open4m_args(argv: tuple[str, ...]) -> list[str] | None:
    """The arguments after `open4m` when the command runs the open4m CLI, else None."""
    argv = list(argv)
    while argv and re.match(r"^[A-Z_][A-Z0-9_]*=", argv[0]):  # VAR=value prefixes
        argv = argv[1:]
    if argv[:1] == ["open4m"]:
        return argv[1:]
    if argv[:1] in (["python"], ["python3"]) and argv[1:3] in (["-m", "open4m"], ["-m", "open4m.cli"]):
        return argv[3:]
    if argv[:1] == ["torchrun"] and "-m" in argv:
        at = argv.index("-m")
        if argv[at + 1:at + 2] in (["open4m"], ["open4m.cli"]):
            return argv[at + 2:]
    return None


def external(command: Command) -> str:
    """Why a non-open4m command is accepted (it never runs here); fails for any command not listed."""
    argv = list(command.argv)
    prog, rest = argv[0], argv[1:]
    if prog == "pip" and rest[:1] == ["install"]:
        return "installs packages"
    if prog in ("python", "python3") and rest[:2] == ["-m", "pytest"]:
        return "the test suite itself"
    if prog in ("python", "python3") and rest[:1] and re.match(r"^benchmarks/\w+\.py$", rest[0]):
        assert (ROOT / rest[0]).is_file(), f"{command.where}: there is no {rest[0]}"
        return "a benchmark (minutes)"
    if prog == "mkdocs" or (prog in ("python", "python3") and rest[:2] == ["-m", "mkdocs"]):
        return "builds the documentation site (tests/test_docs.py builds it)"
    if prog == "huggingface-cli" and rest[:1] == ["download"]:
        from open4m.pretrained import find

        assert rest[1:] and find(rest[1]) is not None, f"{command.where}: {rest[1:2]} is not a released name"
        return "downloads from the Hub"
    if prog == "git":
        return "version control"
    raise AssertionError(f"{command.where}: unknown command {prog!r}; run open4m, or add it to external() "
                         "in tests/test_doc_examples.py with the reason it is not run")


def _repo_paths(args: list[str]) -> list[str]:
    """Arguments (or key=value values) naming files of the repository: configs/..., src/open4m/..."""
    values = [a.split("=", 1)[-1] for a in args]
    return [v for v in values if v.startswith(("configs/", "src/open4m/"))]


def parse_open4m(command: Command, args: list[str]):
    """The namespace the real `open4m` parser makes of ``args``; fails with argparse's message."""
    from open4m.cli import build_parser

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parsed = build_parser().parse_args(args)
    except SystemExit:
        reason = err.getvalue().strip().splitlines()[-1:] or ["(no message)"]
        raise AssertionError(f"{command.where}: the open4m parser rejects it: {reason[0]}") from None
    assert getattr(parsed, "handler", None), f"{command.where}: no open4m verb given"
    missing = [p for p in _repo_paths(args) if not (ROOT / p).exists()]
    assert not missing, f"{command.where}: names {missing}, which the repository does not have"
    return parsed


def runs(command: Command, parsed) -> bool:
    """Whether a parsed open4m command also runs (see RUN_VERBS and PARSE_ONLY_COMMANDS)."""
    text = shlex.join(command.argv)
    return parsed.command in RUN_VERBS and command.block.page not in PARSE_ONLY_PAGES and not any(
        page == command.block.page and text.startswith(start) for page, start in PARSE_ONLY_COMMANDS)


def check_commands(page: str) -> None:
    """Every command of the page's bash blocks is known, and every open4m command parses."""
    for block in page_blocks(page):
        if block.lang != "bash":
            continue
        for command in commands(block):
            args = open4m_args(command.argv)
            if args is None:
                external(command)
            else:
                parse_open4m(command, args)


# ------------------------------------------------------------------------------------------
# Data blocks
# ------------------------------------------------------------------------------------------
def check_yaml(block: Block, tmp: Path) -> None:
    """A yaml block parses; when its sections belong to recipe kinds, it loads as one of them."""
    from open4m.recipes.world import WorldRecipe, load_recipe as world
    from open4m.train.tasks.finetune.recipe import FinetuneRecipe, load_recipe as finetune
    from open4m.train.tasks.fourm import FourMRecipe, load_recipe as train
    from open4m.train.tasks.tokenizer import TokenizerRecipe, load_recipe as train_tokenizer

    try:
        data = yaml.safe_load(block.code)
    except yaml.YAMLError as err:
        raise AssertionError(f"{block.where}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        return
    kinds = {"open4m train": (FourMRecipe, train), "open4m finetune": (FinetuneRecipe, finetune),
             "open4m train-tokenizer": (TokenizerRecipe, train_tokenizer), "open4m demo --train": (WorldRecipe, world)}
    candidates = {name: load for name, (cls, load) in kinds.items()
                  if set(data) <= set(getattr(cls, "__dataclass_fields__", {}))}
    if not candidates:
        return
    path = tmp / "recipe.yaml"
    path.write_text(block.code)
    errors = {}
    for name, load in candidates.items():
        try:
            load(path)
            return
        except Exception as err:  # noqa: BLE001 - each kind's reason is reported below
            errors[name] = f"{type(err).__name__}: {err}"
    raise AssertionError(f"{block.where}: a recipe fragment that loads as no recipe kind: {errors}")


def check_data_blocks(page: str, tmp_path: Path) -> None:
    """yaml blocks parse (and load, when they are recipe fragments); json blocks parse."""
    for block in page_blocks(page):
        if block.lang == "yaml":
            check_yaml(block, tmp_path)
        elif block.lang == "json":
            try:
                json.loads(block.code)
            except ValueError as err:
                raise AssertionError(f"{block.where}: not valid JSON: {err}") from None


# ------------------------------------------------------------------------------------------
# Running a page
# ------------------------------------------------------------------------------------------
def sandbox(path: Path, photo_source: Path) -> Path:
    """A working directory as a user has it: photo.jpg, photos/, and the repository's configs/ and src/."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(photo_source / "photo.jpg", path / "photo.jpg")
    shutil.copytree(photo_source / "photos", path / "photos")
    shutil.copytree(ROOT / "configs", path / "configs")
    (path / "src").symlink_to(ROOT / "src", target_is_directory=True)
    return path


def run_python(block: Block, namespace: dict) -> None:
    # Blank lines in front keep the markdown's line numbers: tracebacks point into the page itself.
    code = compile("\n" * block.line + block.code, str(ROOT / block.page), "exec")
    try:
        exec(code, namespace)  # noqa: S102 - the documentation's own examples
    except Exception:  # noqa: BLE001 - reported with the page, the line and the traceback
        trace = "".join(traceback.format_exc().splitlines(keepends=True)[-40:])
        raise AssertionError(f"{block.where} failed:\n{trace}") from None


def run_open4m(command: Command, args: list[str]) -> None:
    from open4m.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    assert code == 0, (f"{command.where} exited with {code}:\n{err.getvalue()[-3000:]}\n"
                       f"stdout:\n{out.getvalue()[-2000:]}")


@contextlib.contextmanager
def reported():
    """A failing example as its message alone (page, line, first line and the example's own traceback)."""
    try:
        yield
    except AssertionError as err:
        pytest.fail(str(err), pytrace=False)


def run_page(blocks: list[Block], workdir: Path) -> dict:
    """Run a page's python blocks and runnable commands in order in ``workdir``; returns the namespace."""
    namespace: dict = {"__name__": "__doc_example__"}
    for block in blocks:
        if block.lang == "python":
            run_python(block, namespace)
        elif block.lang == "bash":
            for command in commands(block):
                args = open4m_args(command.argv)
                if args is None:
                    external(command)
                    continue
                if runs(command, parse_open4m(command, args)):
                    run_open4m(command, args)
    return namespace


# ------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def doc_hf_home(tmp_path_factory) -> Path:
    """HF_HOME of the offline cache the examples load their released names from (built once)."""
    home = tmp_path_factory.mktemp("doc_hf_home")
    doc_examples_cache(home / "hub")
    return home


@pytest.fixture(scope="session")
def user_photos(tmp_path_factory) -> Path:
    """photo.jpg and photos/ (three JPEGs): a real photo where an installed package ships one, else
    procedural scenes rendered at photo-like sizes."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    images = _shipped_photos()
    if len(images) < 3:
        from open4m.data.synthetic import generate_sample

        images += [Image.fromarray(generate_sample(seed, 256)["rgb"]) for seed in range(3 - len(images))]
    sizes = [(320, 240), (240, 320), (256, 256)]
    (root / "photos").mkdir()
    for i, (img, size) in enumerate(zip(images, sizes)):
        img = img.convert("RGB").resize(size, Image.BICUBIC)
        img.save(root / "photos" / f"photo_{i}.jpg", quality=90)
        if i == 0:
            img.save(root / "photo.jpg", quality=90)
    assert np.asarray(Image.open(root / "photo.jpg")).shape == (240, 320, 3)
    return root


def _shipped_photos() -> list:
    """Real photographs shipped inside optional packages (scikit-image, scikit-learn), when installed."""
    from PIL import Image

    found = []
    with contextlib.suppress(Exception):
        from skimage import data

        found += [Image.fromarray(data.astronaut()), Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())]
    with contextlib.suppress(Exception):
        from sklearn.datasets import load_sample_images

        found += [Image.fromarray(img) for img in load_sample_images().images]
    return found[:3]


@pytest.fixture
def offline_hub(doc_hf_home, monkeypatch):
    """HF_HOME / HF_HUB_CACHE at the examples' cache, downloads off (env and huggingface_hub's constants,
    which it reads when imported)."""
    from huggingface_hub import constants

    hub = doc_hf_home / "hub"
    for name, value in (("HF_HOME", doc_hf_home), ("HF_HUB_CACHE", hub), ("HF_HUB_OFFLINE", "1")):
        monkeypatch.setenv(name, str(value))
    monkeypatch.setattr(constants, "HF_HOME", str(doc_hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return hub


# ------------------------------------------------------------------------------------------
# The tests
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_every_fence_names_an_allowed_language(page):
    bad = [f"{b.page}:{b.line}: ```{b.lang} (block starting {b.first_line!r})" for b in page_blocks(page)
           if b.lang not in LANGUAGES]
    assert not bad, f"code blocks need one of the tags {LANGUAGES} (`text` for synopses, output and diagrams):\n" \
                    + "\n".join(bad)


@pytest.mark.parametrize("page", PAGES)
def test_commands_are_known_and_parse(page):
    with reported():
        check_commands(page)


@pytest.mark.parametrize("page", PAGES)
def test_data_blocks_parse(page, tmp_path):
    with reported():
        check_data_blocks(page, tmp_path)


def _runnable(page: str) -> bool:
    """Whether a page has python blocks or commands that run (a page that cannot be read counts: it fails)."""
    try:
        return any(b.lang == "python" or (b.lang == "bash" and any(
            (a := open4m_args(c.argv)) is not None and runs(c, parse_open4m(c, a)) for c in commands(b)))
            for b in page_blocks(page))
    except AssertionError:
        return True


RUNNABLE = [p for p in PAGES if _runnable(p)]


@pytest.mark.parametrize("page", RUNNABLE)
def test_examples_run(page, tmp_path, offline_hub, user_photos, monkeypatch):
    workdir = sandbox(tmp_path / "work", user_photos)
    monkeypatch.chdir(workdir)
    with reported():
        run_page(page_blocks(page), workdir)


# ------------------------------------------------------------------------------------------
# The harness itself
# ------------------------------------------------------------------------------------------
def test_every_verb_either_runs_or_says_why_not():
    from open4m.cli import build_parser

    verbs = set(next(a for a in build_parser()._actions if a.dest == "command").choices)
    assert RUN_VERBS | set(PARSE_ONLY_VERBS) == verbs and not RUN_VERBS & set(PARSE_ONLY_VERBS)


def test_every_parse_only_command_is_still_in_its_page():
    for page, start in PARSE_ONLY_COMMANDS:
        found = [c for b in page_blocks(page) if b.lang == "bash" for c in commands(b)
                 if shlex.join(c.argv).startswith(start)]
        assert found, f"PARSE_ONLY_COMMANDS lists {start!r}, which {page} no longer has"


def test_the_harness_reads_fences_and_commands():
    text = ("intro\n\n```python\nx = 1\n```\n\n1. item\n\n   ```bash\n   open4m synth --out w \\\n"
            "       --n 2  # two scenes\n   open4m convert --src w --dst s && pip install x\n   ```\n\n```\nbare\n```\n")
    blocks = read_blocks(text, "page.md")
    assert [(b.lang, b.line) for b in blocks] == [("python", 3), ("bash", 9), ("", 15)]
    cmds = commands(blocks[1])
    assert [(c.line, c.argv) for c in cmds] == [
        (10, ("open4m", "synth", "--out", "w", "--n", "2")),
        (12, ("open4m", "convert", "--src", "w", "--dst", "s")), (12, ("pip", "install", "x"))]
    assert open4m_args(("torchrun", "--nproc_per_node", "2", "-m", "open4m.cli", "train", "a.yaml")) == ["train", "a.yaml"]
    with pytest.raises(AssertionError, match=r"page.md:12 .*unknown command 'curl'"):
        external(Command(blocks[1], 12, ("curl", "-L", "x")))
    with pytest.raises(AssertionError, match=r"page.md:10 .*the open4m parser rejects it: .*--nn"):
        parse_open4m(Command(blocks[1], 10, ("open4m", "synth", "--out", "w", "--nn", "2")),
                     ["synth", "--out", "w", "--nn", "2"])


def test_a_broken_block_fails_naming_its_page_and_line(tmp_path, monkeypatch):
    """A renamed function in an example fails the page, with the file, the line and the first line."""
    text = "# Page\n\n```python\nimport open4m\n\nopen4m.pipeline_renamed('rgb->depth', model='x')\n```\n"
    (tmp_path / "page.md").write_text(text)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    with pytest.raises(AssertionError) as info:
        run_page(read_blocks(text, "page.md"), tmp_path)
    message = str(info.value)
    assert "page.md:3 (python block starting 'import open4m') failed" in message
    assert "page.md\", line 6" in message and "pipeline_renamed" in message
