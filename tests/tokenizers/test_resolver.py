"""TokenizerSet: overrides, folders, a model's own manifest and the registry, resolved lazily."""

import pytest
import torch

from open4m.hub import HubOptions, Origin
from open4m.tokenizers import TextTokenizer, VQVAE, VQVAEConfig, load_tokenizer
from open4m.tokenizers.resolver import TokenizerSet, read_manifest, tokenizer_keys, write_manifest

from hub_cache import add_repo


def _depth(codebook=64) -> VQVAE:
    torch.manual_seed(0)
    return VQVAE(VQVAEConfig(image_size=32, n_channels=1, enc_type="vit_t_enc", dec_type="vit_t_dec", patch_size=8,
                             codebook_size=codebook, latent_dim=8)).eval()


def test_keys():
    assert tokenizer_keys("tok_depth@224") == ["tok_depth@224", "tok_depth", "depth"]
    assert tokenizer_keys("det") == ["det", "text", "caption"]
    assert tokenizer_keys("sam_mask")[0] == "sam_mask"


def test_overrides_win_and_none_means_tokens_only():
    tok = _depth()
    toks = TokenizerSet({"depth": tok, "normal": None})
    assert toks.get("tok_depth@224") is tok
    assert toks.get("tok_normal@224", required=False) is None
    with pytest.raises(ValueError, match="no tokenizer for 'tok_normal@224'"):
        toks.get("tok_normal@224")


def test_vocabulary_mismatch_is_refused():
    with pytest.raises(ValueError, match="has 64 tokens but the model's tok_depth@224 vocabulary has 8192"):
        TokenizerSet({"depth": _depth()}, vocab={"tok_depth@224": 8192}).get("tok_depth@224")


def test_a_models_manifest_is_read_and_shared_sources_load_once(tmp_path):
    text = TextTokenizer.train(["a dog on a beach"] * 5, vocab_size=4300)
    table = write_manifest(tmp_path, {"tok_depth@224": _depth(), "caption": text, "det": text,
                                      "tok_rgb@224": "EPFL-VILAB/4M_tokenizers_rgb_16k_224-448"})
    assert table["caption"] == table["det"] == "tokenizers/text.json"
    assert table["tok_rgb@224"] == "EPFL-VILAB/4M_tokenizers_rgb_16k_224-448"
    origin = Origin(tmp_path)
    assert read_manifest(origin) == table
    toks = TokenizerSet(origin=origin)
    assert toks.loaded() == {}  # nothing is loaded before it is asked for
    assert toks.get("caption") is toks.get("det")
    assert torch.equal(toks.get("tok_depth@224").quantize.codebook, _depth().quantize.codebook)
    assert toks.source("tok_rgb@224") == "EPFL-VILAB/4M_tokenizers_rgb_16k_224-448"


def test_manifest_files_are_fetched_from_the_models_hub_repo(tmp_path):
    saved = tmp_path / "saved"
    write_manifest(saved, {"tok_depth@224": _depth()})
    add_repo(tmp_path / "cache", "me/model", {"tokenizers.json": saved / "tokenizers.json",
                                              "tokenizers/tok_depth.safetensors": saved / "tokenizers/tok_depth.safetensors"})
    opts = HubOptions(cache_dir=tmp_path / "cache", local_files_only=True)
    toks = TokenizerSet(origin=Origin(None, "me/model", opts))
    assert isinstance(toks.get("tok_depth@224"), VQVAE)


def test_a_folder_of_tokenizers(tmp_path):
    _depth().save_pretrained(tmp_path / "depth.safetensors")
    TextTokenizer.train(["a red car"] * 5, vocab_size=4300).save_pretrained(tmp_path / "tokenizer.json")
    toks = TokenizerSet(folder=tmp_path, registry=False)
    assert isinstance(toks.get("tok_depth@224"), VQVAE) and isinstance(toks.get("caption"), TextTokenizer)
    assert toks.get("tok_normal@224", required=False) is None
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TokenizerSet(folder=tmp_path / "missing")


def test_a_corrupt_manifest_is_explained(tmp_path):
    (tmp_path / "tokenizers.json").write_text('{"tokenizers": ["not", "a", "map"]}')
    with pytest.raises(ValueError, match="is not a tokenizer manifest"):
        TokenizerSet(origin=Origin(tmp_path)).get("caption")


def test_released_tokenizers_get_their_input_convention(tmp_path):
    edge = VQVAE(VQVAEConfig(image_size=32, n_channels=1, enc_type="vit_t_enc", dec_type="vit_t_dec", patch_size=8,
                             codebook_size=64, latent_dim=8))
    saved = edge.save_pretrained(tmp_path / "edge")
    add_repo(tmp_path / "cache", "EPFL-VILAB/4M_tokenizers_edge_8k_224-512",
             {"model.safetensors": saved / "model.safetensors"})
    tok = load_tokenizer("4M_tokenizers_edge_8k_224-512", cache_dir=tmp_path / "cache", local_files_only=True)
    assert tok.preprocessor.input == "image" and list(tok.preprocessor.mean) == [0.5]  # not standardised like depth


def test_a_model_folder_without_its_manifest_finds_its_tokenizers_folder(tmp_path):
    # A folder whose tokenizers.json was lost went to the registry, which names none for own modalities.
    write_manifest(tmp_path, {"tok_depth@224": _depth()})
    (tmp_path / "tokenizers.json").unlink()
    toks = TokenizerSet(origin=Origin(tmp_path), registry=False)
    assert torch.equal(toks.get("tok_depth@224").quantize.codebook, _depth().quantize.codebook)
    assert toks.get("tok_normal@224", required=False) is None


def test_a_bare_registry_entry_is_not_read_as_a_path_in_the_working_folder(tmp_path, monkeypatch):
    # A world model's checkpoint records `depth` as its tokenizer: it was loaded from ./depth (a data folder),
    # else answered 'no tokenizer at 'depth'', a file the model never had.
    from open4m import modalities
    from open4m.modalities import Kind, Modality

    modalities.register(Modality("tok_bare@32", Kind.IMAGE_TOKENS, vocab_size=64, image_size=32, patch_size=8,
                                 encoder=True, decoder=True, tokenizer="bare"))
    try:
        (tmp_path / "bare").mkdir()
        (tmp_path / "bare" / "scene.png").write_bytes(b"")
        monkeypatch.chdir(tmp_path)
        with pytest.raises(ValueError, match="registry entry 'bare' is not a released tokenizer.*"
                                             r"tokenizers=\{'tok_bare@32': PATH_OR_ID\}"):
            TokenizerSet(origin=Origin(tmp_path / "model")).get("tok_bare@32", required=False)
    finally:
        modalities.unregister("tok_bare@32")


def test_a_registry_entry_naming_a_relative_tokenizer_file_still_loads(tmp_path, monkeypatch):
    # A user's own registration may name its tokenizer by a path relative to where they work: that is a place to
    # get one (a file, or a folder holding model.safetensors), unlike a bare word beside a data folder.
    from open4m import modalities
    from open4m.modalities import Kind, Modality

    (tmp_path / "toks" / "mine").mkdir(parents=True)
    _depth().save_pretrained(tmp_path / "toks" / "mine" / "depth")  # three parts: no Hub id
    monkeypatch.chdir(tmp_path)
    modalities.register(Modality("tok_rel@224", Kind.IMAGE_TOKENS, vocab_size=_depth().vocab_size, image_size=224,
                                 patch_size=16, encoder=True, decoder=True, tokenizer="toks/mine/depth"))
    try:
        tok = TokenizerSet(origin=Origin(tmp_path / "model")).get("tok_rel@224")
        assert torch.equal(tok.quantize.codebook, _depth().quantize.codebook)
    finally:
        modalities.unregister("tok_rel@224")
