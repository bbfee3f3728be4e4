"""The registry of released artifacts and the Hub file fetching behind it (a real offline cache, no mocks)."""

import pytest

from open4m import list_pretrained, modalities
from open4m.hub import HubFileMissing, HubOptions, hub_file, is_hub_id, locate, url_file
from open4m.pretrained import TEXT_TOKENIZER, find

from hub_cache import add_repo


def test_every_released_artifact_is_listed():
    names = {p.name for p in list_pretrained()}
    for size in ("B", "L", "XL"):
        assert {f"4M-7_{size}_CC12M", f"4M-7_{size}_COYO700M", f"4M-21_{size}", f"4M-7-T2I_{size}_CC12M"} <= names
    assert "4M-7-SR_L_CC12M" in names
    tokenizers = {p.name for p in list_pretrained("tokenizer")}
    assert len(tokenizers) == 12 and "4M_tokenizers_edge_8k_224-512" in tokenizers
    assert find("EPFL-VILAB/4M-21_B") is find("4m-21_b")
    assert find("text") is TEXT_TOKENIZER and find("nothing/like-this") is None


def test_every_official_tokenizer_reference_is_in_the_registry():
    for name in (*modalities.FOURM_21, *modalities.FOURM_7_SR, "sam_mask"):
        ref = modalities.get(name).tokenizer
        if ref is not None:
            assert find(ref) is not None, f"{name} names {ref}, which the registry does not know"
    assert find(modalities.get("tok_canny_edge@224").tokenizer).preprocess["input"] == "image"


def test_hub_files_come_from_the_cache(tmp_path):
    add_repo(tmp_path, "someone/model", {"model.safetensors": b"weights", "sub/extra.json": "{}"})
    opts = HubOptions(cache_dir=tmp_path, local_files_only=True)
    assert hub_file("someone/model", "model.safetensors", opts).read_bytes() == b"weights"
    assert hub_file("someone/model", "sub/extra.json", opts).name == "extra.json"
    assert hub_file("someone/model", "config.json", opts, required=False) is None  # cached repo, file absent
    folder, origin = locate("someone/model", what="model", files=("model.safetensors",), optional=("config.json",),
                            options=opts)
    assert origin.repo_id == "someone/model" and origin.file("sub/extra.json") is not None
    with pytest.raises(HubFileMissing, match="someone/model: weights.bin is not in the local Hugging Face cache.*"
                                             "huggingface-cli download someone/model weights.bin"):
        hub_file("someone/model", "weights.bin", opts)
    with pytest.raises(HubFileMissing, match="other/repo"):
        hub_file("other/repo", "model.safetensors", opts, required=False)  # nothing cached at all: still an error
    # a revision that is not cached: named, and the command fetches that revision (it fetched main, in vain)
    with pytest.raises(HubFileMissing, match="model.safetensors at revision 'v2' is not in the local Hugging Face cache.*"
                                             "huggingface-cli download someone/model model.safetensors --revision v2`"):
        hub_file("someone/model", "model.safetensors", HubOptions(revision="v2", cache_dir=tmp_path, local_files_only=True))


def test_pinned_url_files_offline(tmp_path):
    opts = HubOptions(cache_dir=tmp_path, local_files_only=True)
    with pytest.raises(HubFileMissing, match="curl -L https://raw.githubusercontent.com/apple/ml-4m/"):
        url_file(TEXT_TOKENIZER.url, TEXT_TOKENIZER.filename, TEXT_TOKENIZER.sha256, opts)
    placed = tmp_path / "open4m" / TEXT_TOKENIZER.filename
    placed.parent.mkdir()
    placed.write_text("{}")
    assert url_file(TEXT_TOKENIZER.url, TEXT_TOKENIZER.filename, TEXT_TOKENIZER.sha256, opts) == placed


def test_names_that_are_neither_paths_nor_ids():
    assert is_hub_id("EPFL-VILAB/4M-21_B") and not is_hub_id("model.safetensors") and not is_hub_id("a/b.safetensors")
    with pytest.raises(FileNotFoundError, match="did you mean 4M-21_L"):
        locate("4M-21-L", what="FourM", files=("model.safetensors",))


def test_the_docs_table_lists_every_released_artifact():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "pretrained.md").read_text()
    missing = [p.name for p in list_pretrained() if f"| {p.name} |" not in doc]
    assert not missing, f"docs/pretrained.md lacks {missing}"


def test_info_lists_the_released_models(capsys):
    from open4m.cli import main

    assert main(["info", "--pretrained"]) == 0
    out = capsys.readouterr().out
    assert "EPFL-VILAB/4M-21_XL" in out and "4M_tokenizers_sam-instance_1k_64" in out and "HF_HUB_OFFLINE" in out
