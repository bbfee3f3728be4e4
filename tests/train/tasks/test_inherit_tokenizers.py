"""A run that starts from (or trains on) a world bundle exports its tokenizers beside model.safetensors."""

import json

from open4m.sources.world import SHIPPED
from open4m.tokenizers.resolver import TokenizerSet
from open4m.hub import Origin
from open4m.train.tasks.fourm import inherit_tokenizers


def test_the_run_folder_lists_and_holds_the_bundle_tokenizers(tmp_path):
    names = ["rgb@64", "tok_rgb@64", "tok_canny_edge@64", "world_caption", "world_det", "caption_emb"]
    table = inherit_tokenizers(tmp_path, names, [SHIPPED])
    assert table == {"tok_canny_edge@64": "tokenizers/tok_canny_edge.safetensors",
                     "tok_rgb@64": "tokenizers/tok_rgb.safetensors",
                     "world_caption": "tokenizers/text.json", "world_det": "tokenizers/text.json"}
    assert json.loads((tmp_path / "tokenizers.json").read_text())["tokenizers"] == table
    assert sorted(p.name for p in (tmp_path / "tokenizers").iterdir()) == [
        "text.json", "tok_canny_edge.safetensors", "tok_rgb.safetensors"]  # only what the model uses, once each
    found = TokenizerSet(origin=Origin(tmp_path), registry=False)
    assert found.get("tok_canny_edge@64").config.codebook_size > 0


def test_no_bundle_no_manifest(tmp_path):
    assert inherit_tokenizers(tmp_path, ["tok_rgb@224"], []) == {}
    assert not (tmp_path / "tokenizers.json").exists()


def test_a_run_on_world_modalities_carries_the_world_spec(tmp_path):
    from open4m.train.tasks.fourm import inherit_world_spec

    assert inherit_world_spec(tmp_path, ["tok_rgb@224"], [SHIPPED]) is None  # not the world's modalities
    out = inherit_world_spec(tmp_path, ["rgb@64", "tok_depth@64"], [SHIPPED])
    meta = json.loads(out.read_text())
    assert meta["spec"] == json.loads((SHIPPED / "world.json").read_text())["spec"]
    assert "metrics" not in meta and meta["derived_from"] == str(SHIPPED.resolve())  # the bundle's card is not ours


def test_own_tokens_of_the_bundles_modalities_train_without_the_world_source(tmp_path, monkeypatch):
    """`init_from` a world bundle on a token folder of its modalities, with no world source beside it: the checkpoint's
    modalities are registered before the folders are matched to names (was 'unknown modality tok_rgb@64', with the
    advice to call open4m.modalities.register, in a fresh process)."""
    import numpy as np

    from open4m import modalities
    from open4m.config import from_dict
    from open4m.train.tasks.fourm import FourMRecipe, train

    fresh = {k: v for k, v in modalities._REGISTRY.items() if not k.endswith("@64")}  # as in a new process
    monkeypatch.setattr(modalities, "_REGISTRY", fresh)
    from open4m.data.synthetic.world import read_world_json

    _, spec = read_world_json(SHIPPED)  # the spec alone (nothing registered): each grid's token count
    data = tmp_path / "photos"
    for folder in ("tok_rgb", "tok_canny_edge"):
        (data / folder).mkdir(parents=True)
        tokens = (64 // spec.token_patch(folder[len("tok_"):])) ** 2
        for i in range(4):
            np.save(data / folder / f"p{i}.npy", np.random.default_rng(i).integers(0, 16, (2, tokens)).astype(np.int16))
    recipe = from_dict(FourMRecipe, {
        "model": {"preset": None, "init_from": str(SHIPPED)},
        "data": {"source": str(data), "modalities": ["tok_rgb@64", "tok_canny_edge@64"], "image_size": 64,
                 "input_tokens": 16, "target_tokens": 16, "batch_size": 2},
        "optim": {"lr": 1e-4, "warmup": 0},
        "train": {"steps": 2, "out_dir": str(tmp_path / "run"), "threads": 1, "save_every": 2, "eval_every": 0},
        "log": {"progress": False}}, command="train")
    result = train(recipe)
    assert result.steps == 2 and (tmp_path / "run" / "tokenizers" / "tok_rgb.safetensors").is_file()
