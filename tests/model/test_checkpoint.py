import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from open4m.model import CheckpointError, FourM, FourMConfig, load_config
from open4m.model import checkpoint

from fourm_batches import random_batch

MODS = ["rgb@224", "tok_depth@224", "caption"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return FourM(FourMConfig(domains_in=MODS, domains_out=MODS[1:], dim=32, encoder_depth=1, decoder_depth=1,
                             num_heads=2)).eval()


def _loss(m):
    with torch.no_grad():
        return m(random_batch(MODS), 48, 32)[0].item()


def test_release_file_metadata_is_python_literals(model, tmp_path):
    path = model.save_file(tmp_path / "m.safetensors")
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta["domains_in"] == "['rgb@224', 'tok_depth@224', 'caption']" and meta["gated_mlp"] == "False"
    assert load_config(path) == model.config


def test_never_overwrites_without_asking(model, tmp_path):
    path = model.save_file(tmp_path / "m.safetensors")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save_file(path)
    assert path.read_bytes() == before
    model.save_file(path, overwrite=True)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write leaves no temp files


def test_hub_layout_and_nested_config(model, tmp_path):
    d = model.save_pretrained(tmp_path / "hub")
    assert (d / "config.json").is_file() and (d / "model.safetensors").is_file()
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({"config": cfg}))  # older hub mixin layout
    assert _loss(FourM.from_pretrained(d)) == pytest.approx(_loss(model), abs=1e-6)


def test_a_weights_file_named_in_upper_case_loads(model, tmp_path):
    """Tools on case-insensitive file systems write `Model.SAFETENSORS`; a folder holding one, or the file, loads."""
    import open4m

    folder = tmp_path / "upper"
    folder.mkdir()
    model.save_file(tmp_path / "m.safetensors").rename(folder / "Model.SAFETENSORS")
    assert _loss(open4m.load_model(str(folder))) == pytest.approx(_loss(model), abs=1e-6)
    assert _loss(open4m.load_model(str(folder / "Model.SAFETENSORS"))) == pytest.approx(_loss(model), abs=1e-6)


def test_save_pretrained_refuses_before_writing_anything(model, tmp_path):
    # A user's README.md was replaced by the generated card, a tokenizers.json deleted, and a folder with a
    # config.json refused only after model.safetensors was written into it.
    for name, text in (("README.md", "my notes\n"), ("tokenizers.json", '{"tokenizers": {}}'), ("config.json", "{}")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / name).write_text(text)
        with pytest.raises(FileExistsError, match=f"already holds {name}.*overwrite=True"):
            model.save_pretrained(folder)
        assert [p.name for p in folder.iterdir()] == [name] and (folder / name).read_text() == text
    saved = model.save_pretrained(tmp_path / "README.md", overwrite=True)  # asked: replaced
    assert (saved / "model.safetensors").is_file() and "my notes" not in (saved / "README.md").read_text()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_saves_load_back(model, tmp_path, dtype):
    # The sincos tables, rounded to 16 bits on saving, were refused as 'differs from the sincos table'.
    import copy

    saved = copy.deepcopy(model).to(dtype).save_pretrained(tmp_path / "half")
    loaded = FourM.from_pretrained(saved)
    assert next(loaded.parameters()).dtype == torch.float32
    assert _loss(loaded) == pytest.approx(_loss(model), abs=0.05)


def test_hub_ids_and_released_names_load_from_an_offline_cache(model, tmp_path):
    from hub_cache import add_repo

    saved = model.save_pretrained(tmp_path / "saved")
    add_repo(tmp_path / "cache", "EPFL-VILAB/4M-7_B_CC12M",
             {"model.safetensors": saved / "model.safetensors", "config.json": saved / "config.json"})
    for name in ("EPFL-VILAB/4M-7_B_CC12M", "4M-7_B_CC12M"):  # Hub id, or the released short name
        loaded = FourM.from_pretrained(name, cache_dir=tmp_path / "cache", local_files_only=True)
        assert _loss(loaded) == pytest.approx(_loss(model), abs=1e-6)
        assert loaded.origin.repo_id == "EPFL-VILAB/4M-7_B_CC12M"


def test_offline_hub_id_is_explained(tmp_path):
    from open4m import load_tokenizer

    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache.*huggingface-cli download"):
        FourM.from_pretrained("EPFL-VILAB/not-cached", cache_dir=tmp_path, local_files_only=True)
    with pytest.raises(FileNotFoundError, match="4M-21_B"):  # a typo of a released name: did you mean
        FourM.from_pretrained("4M-21-B")
    with pytest.raises(FileNotFoundError, match="EPFL-VILAB/not-cached-tokenizer: model.safetensors"):
        load_tokenizer("EPFL-VILAB/not-cached-tokenizer", cache_dir=tmp_path, local_files_only=True)


def test_missing_path_is_explained():
    with pytest.raises(FileNotFoundError, match="neither an existing file"):
        FourM.from_pretrained("no/such/file.safetensors")


def test_corrupt_file(model, tmp_path):
    path = model.save_file(tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        FourM.from_pretrained(path)


def test_missing_unexpected_and_mismatched_keys(model, tmp_path):
    path = model.save_file(tmp_path / "m.safetensors")
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    state = load_file(str(path))

    missing = {k: v for k, v in state.items() if k != "encoder.0.attn.qkv.weight"}
    save_file(missing, str(tmp_path / "missing.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="encoder.0.attn.qkv.weight"):
        FourM.from_pretrained(tmp_path / "missing.safetensors")
    partial = FourM.from_pretrained(tmp_path / "missing.safetensors", strict=False)
    assert partial.encoder[0].attn.qkv.weight.shape == (96, 32)

    extra = dict(state, **{"encoder.9.attn.qkv.weight": torch.zeros(1)})
    save_file(extra, str(tmp_path / "extra.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="unexpected weights.*encoder.9"):
        FourM.from_pretrained(tmp_path / "extra.safetensors")

    wrong = dict(state, **{"mask_token": torch.zeros(1, 1, 16)})
    save_file(wrong, str(tmp_path / "wrong.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match=r"mask_token: checkpoint \(1, 1, 16\) vs model \(1, 1, 32\)"):
        FourM.from_pretrained(tmp_path / "wrong.safetensors")


def test_unknown_modality_in_config(model, tmp_path):
    path = model.save_file(tmp_path / "m.safetensors")
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = dict(f.metadata())
    meta["domains_out"] = "['tok_depht@224']"
    save_file(load_file(str(path)), str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(KeyError, match="unknown modality 'tok_depht@224'.*tok_depth@224"):
        FourM.from_pretrained(tmp_path / "bad.safetensors")


def test_deduplicated_shared_tensors_load(model, tmp_path):
    """Writers that keep one name per shared tensor (safetensors.save_model) still load."""
    state = checkpoint.official_state_dict(model)
    del state["encoder_embeddings.caption.mod_emb"]  # keep only the decoder's name of the shared tensor
    save_file(state, str(tmp_path / "dedup.safetensors"), metadata=model.config.to_metadata())
    assert _loss(FourM.from_pretrained(tmp_path / "dedup.safetensors")) == pytest.approx(_loss(model), abs=1e-6)


def test_untied_decoder_tables_stay_untied(model, tmp_path):
    state = checkpoint.official_state_dict(model)
    state["decoder_embeddings.caption.token_emb.weight"] = state["decoder_embeddings.caption.token_emb.weight"] + 1
    save_file(state, str(tmp_path / "untied.safetensors"), metadata=model.config.to_metadata())
    loaded = FourM.from_pretrained(tmp_path / "untied.safetensors")
    dec = loaded.decoder_embeddings["caption"]
    assert dec.token_emb.weight is not dec.to_logits.weight
    torch.testing.assert_close(dec.token_emb.weight, state["decoder_embeddings.caption.token_emb.weight"])


def test_checkpoint_describes_its_own_modalities(tmp_path):
    from open4m import modalities
    from open4m.modalities import Kind, Modality

    thermal = Modality("tok_thermal@32", Kind.IMAGE_TOKENS, vocab_size=64, image_size=32, patch_size=8,
                       encoder=True, decoder=True, description="a user modality")
    modalities.register(thermal)
    try:
        m = FourM(FourMConfig(domains_in=["tok_thermal@32", "caption"], domains_out=["tok_thermal@32"], image_size=32,
                              patch_size=8, dim=32, encoder_depth=1, decoder_depth=1, num_heads=2))
        path = m.save_file(tmp_path / "m.safetensors")
        from safetensors import safe_open
        with safe_open(str(path), "pt") as f:
            described = [s["name"] for s in json.loads(f.metadata()[checkpoint.MODALITIES_KEY])]
        assert described == ["tok_thermal@32"]  # official modalities are never described
        modalities.unregister("tok_thermal@32")
        loaded = FourM.from_pretrained(path)  # a process that never registered it
        assert modalities.get("tok_thermal@32") == thermal
        assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), m.state_dict().values()))

        modalities.register(Modality("tok_thermal@32", Kind.IMAGE_TOKENS, vocab_size=128, image_size=32,
                                     patch_size=8, encoder=True, decoder=True), overwrite=True)
        with pytest.raises(ValueError, match="defines modality 'tok_thermal@32' differently.*vocab_size: registered "
                                             "128, .* 64"):
            FourM.from_pretrained(path)
    finally:
        modalities.unregister("tok_thermal@32")


def test_official_checkpoints_carry_no_modality_descriptions(model, tmp_path):
    from safetensors import safe_open
    with safe_open(str(model.save_file(tmp_path / "m.safetensors")), "pt") as f:
        assert checkpoint.MODALITIES_KEY not in f.metadata()


def test_blocks_the_checkpoint_lacks_start_as_identity(model, tmp_path):
    """A deeper model started from a shallower checkpoint computes what the checkpoint did, and its new blocks learn."""
    from open4m.train.tasks.fourm import build_model, load_recipe

    state = load_file(str(model.save_file(tmp_path / "m.safetensors")))
    deeper = FourM(FourMConfig.from_dict({**model.config.to_dict(), "encoder_depth": 2, "decoder_depth": 3}))
    checkpoint.load_state_dict_into(deeper, state, strict=False)
    assert abs(_loss(deeper.eval()) - _loss(model)) > 1e-4  # random new blocks change what the model computes
    assert checkpoint.start_grown_blocks_as_identity(deeper, state) == {"encoder": 1, "decoder": 2}
    assert _loss(deeper) == pytest.approx(_loss(model), abs=1e-6)
    assert torch.equal(deeper.decoder[0].mlp.fc2.weight, model.decoder[0].mlp.fc2.weight)  # loaded blocks untouched
    deeper.train()(random_batch(MODS), 48, 32)[0].backward()
    assert deeper.decoder[2].mlp.fc2.weight.grad.abs().sum() > 0  # the zeroed layers get gradients: the block grows
    assert checkpoint.start_grown_blocks_as_identity(model, state) == {}  # nothing new, nothing zeroed
    encoder_only = {k: v for k, v in state.items() if not k.startswith("decoder.")}
    fresh = FourM(FourMConfig.from_dict({**model.config.to_dict(), "decoder_depth": 2}))
    assert checkpoint.start_grown_blocks_as_identity(fresh, encoder_only) == {}  # a new decoder keeps its random start
    assert fresh.decoder[1].mlp.fc2.weight.abs().sum() > 0

    recipe = load_recipe(None, ["model.preset=null", f"model.init_from={tmp_path / 'm.safetensors'}",
                                "model.arch={decoder_depth: 2}", f"data.modalities=[{','.join(MODS)}]"])
    built, report = build_model(recipe.model, recipe.data.modalities, 224)
    assert "1 new decoder block starting as identity" in report and len(built.decoder) == 2
    assert _loss(built.eval()) == pytest.approx(_loss(model), abs=1e-6)
