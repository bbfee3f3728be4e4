"""Released models by name: a real offline Hugging Face cache the test builds (tiny random weights under
the official ids), resolved through huggingface_hub's own code path, with no --tokenizers anywhere."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from open4m import pipeline
from open4m.model import FourM

from hub_cache import official_4m7_cache

TARGETS = ["tok_depth@224", "tok_normal@224", "tok_semseg@224", "tok_clip@224"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory, reference_dir):
    return official_4m7_cache(tmp_path_factory.mktemp("hf") / "cache", reference_dir)


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(path)
    return path


def _cli(cache, *args, cwd):
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "open4m.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_generate_from_a_hub_id_writes_every_target(cache, photo, tmp_path):
    run = _cli(cache, "generate", "--model", "EPFL-VILAB/4M-7_B_CC12M", "--input", f"rgb={photo}",
               "--target", "depth,normal,semseg,clip,caption,det", "--tokens", "196-196-196-196-24-24",
               "--decode-steps", "2", "--out", "out", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {f"{t.replace('@', '_')}_0.png" for t in TARGETS} <= written
    texts = json.loads((tmp_path / "out" / "texts.json").read_text())["texts"]
    assert set(texts) == {"caption", "det"}
    assert "roar, 1 step(s)" in run.stdout and "top_p 0.8" in run.stdout  # the official demo's settings


def test_super_resolution_model_by_name(cache, photo, tmp_path):
    from hub_cache import add_repo
    from open4m.model import preset

    torch.manual_seed(0)
    mods = ["rgb@224", "tok_depth@224", "tok_depth@448"]
    sr = FourM(preset("tiny-swiglu_nobias", domains_in=mods, domains_out=mods[1:], dim=32, encoder_depth=1,
                      decoder_depth=1, num_heads=2))
    saved = sr.save_pretrained(tmp_path / "sr")
    add_repo(cache, "EPFL-VILAB/4M-7-SR_L_CC12M", {"model.safetensors": saved / "model.safetensors",
                                                  "config.json": saved / "config.json"})
    run = _cli(cache, "generate", "--model", "4M-7_B_CC12M", "--sr", "4M-7-SR_L_CC12M", "--input", f"rgb={photo}",
               "--target", "depth", "--steps", "1", "--decode-steps", "1", "--decode-scheduler", "ddim", "--out", "out",
               cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert Image.open(tmp_path / "out" / "tok_depth_448_0.png").size == (448, 448)


def test_a_missing_file_offline_is_one_clear_line(cache, photo, tmp_path):
    run = _cli(cache, "generate", "--model", "4M-21_B", "--input", f"rgb={photo}", "--target", "depth",
               "--out", "out", cwd=tmp_path)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    line = run.stderr.strip()
    assert "\n" not in line and "EPFL-VILAB/4M-21_B: model.safetensors" in line and "huggingface-cli download" in line


def test_pipeline_by_name_resolves_each_tokenizer_on_first_use(cache, photo):
    model = FourM.from_pretrained("4M-7_B_CC12M", cache_dir=cache, local_files_only=True)
    pipe = pipeline("rgb->depth", model=model, decode_steps=2)
    assert pipe.tokenizers.loaded() == {}  # nothing loaded at construction
    out = pipe(str(photo), seed=0)
    assert out.images["tok_depth@224"][0].size == (224, 224)
    assert set(pipe.tokenizers.loaded()) == {"tok_depth@224"}  # only what this spec needs


def test_bf16_and_per_condition_guidance(cache, photo):
    model = FourM.from_pretrained("4M-7_B_CC12M", cache_dir=cache, local_files_only=True)
    pipe = pipeline("rgb,caption->tok_depth@224->tok_normal@224", model=model, dtype="bf16", cfg="caption=3,rgb=1",
                    decode_steps=1)
    assert model.mask_token.dtype == torch.bfloat16
    assert pipe.schedule.steps_for("tok_depth@224")[0].cfg_scale == (1.0, 3.0)
    out = pipe({"rgb@224": str(photo), "caption": "a dog on a beach"}, seed=0)
    assert {"tok_depth@224", "tok_normal@224"} <= set(out.images)


def test_our_models_are_used_like_official_ones(cache, tmp_path, photo):
    from open4m.generation.pipeline import Pipeline

    model = FourM.from_pretrained("4M-7_B_CC12M", cache_dir=cache, local_files_only=True)
    official = Pipeline("rgb->depth->caption", model, decode_steps=1, tokens=[None, 8])
    tokenizers = {name: official.tokenizer(name) for name in ("tok_depth@224", "caption")}
    folder = model.save_pretrained(tmp_path / "mine", tokenizers={**tokenizers, "det": tokenizers["caption"]},
                                   card={"data": "random weights", "metrics": {"depth": {"abs_rel": 0.5}}})
    assert {"config.json", "model.safetensors", "tokenizers.json", "README.md"} <= {p.name for p in folder.iterdir()}
    card = (folder / "README.md").read_text()
    assert "library_name: open4m" in card and "| tok_depth@224 |" in card and "abs_rel" in card
    again = pipeline("rgb->depth->caption", model=str(folder), decode_steps=1, tokens=[None, 8])
    a = again(str(photo), seed=0)
    b = official(str(photo), seed=0)
    assert torch.equal(a.tokens["tok_depth@224"]["tensor"], b.tokens["tok_depth@224"]["tensor"])
    assert isinstance(a.texts["caption"][0], str)


def test_push_to_hub_uploads_the_saved_folder(tmp_path, monkeypatch):
    import huggingface_hub

    from open4m.model import preset

    uploaded = {}

    def create_repo(self, repo_id, private=None, exist_ok=False):
        uploaded["repo"] = (repo_id, private, exist_ok)

    def upload_folder(self, repo_id, folder_path, commit_message, revision=None, create_pr=False):
        uploaded["files"] = sorted(str(p.relative_to(folder_path)) for p in __import__("pathlib").Path(folder_path).rglob("*")
                                   if p.is_file())
        uploaded["card"] = (__import__("pathlib").Path(folder_path) / "README.md").read_text()
        return "https://huggingface.co/me/tiny/commit/abc"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    model = FourM(preset("tiny-swiglu_nobias", domains_in=["rgb@224", "tok_depth@224"], domains_out=["tok_depth@224"],
                         dim=32, encoder_depth=1, decoder_depth=1, num_heads=2))
    url = model.push_to_hub("me/tiny", tokenizers={"tok_depth@224": "4M_tokenizers_depth_8k_224-448"}, private=True)
    assert url.endswith("/commit/abc") and uploaded["repo"] == ("me/tiny", True, True)
    assert uploaded["files"] == ["README.md", "config.json", "model.safetensors", "tokenizers.json"]
    assert 'model="me/tiny"' in uploaded["card"]
