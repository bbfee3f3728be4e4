import pytest
import yaml

from open4m.train.config import TrainConfig, describe, from_dict, load_config, save_config


def test_defaults_build_and_every_key_is_documented():
    cfg = TrainConfig()
    assert cfg.data.input_tokens == 128 and cfg.optim.blr == 1e-4
    text = describe()
    for line in text.splitlines()[1:]:
        if line.startswith("  "):
            assert "  # " in line and line.split("  # ", 1)[1].strip(), line


@pytest.mark.parametrize("override, hint", [("optim.bl=1", "optim.blr"), ("train.lr=1", "optim.lr"),
                                            ("data.batchsize=2", "data.batch_size")])
def test_unknown_override_names_closest_key(override, hint):
    with pytest.raises(ValueError, match=hint):
        load_config(None, [override])


def test_unknown_yaml_key_names_closest_key(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  warmpu: 3\n")
    with pytest.raises(ValueError, match="optim.warmup"):
        load_config(path)


def test_overrides_parse_yaml_values_and_types(tmp_path):
    cfg = load_config(None, ["optim.blr=3e-4", "data.modalities=[tok_rgb@224, caption]", "train.tokens=1e6",
                             "optim.clip_grad=null"])
    assert cfg.optim.blr == pytest.approx(3e-4)
    assert cfg.data.modalities == ["tok_rgb@224", "caption"]
    assert cfg.train.tokens == 1_000_000 and isinstance(cfg.train.tokens, int)
    assert cfg.optim.clip_grad is None
    with pytest.raises(ValueError, match="data.batch_size"):
        load_config(None, ["data.batch_size=many"])
    with pytest.raises(ValueError, match="section.key=value"):
        load_config(None, ["optim.blr"])
    with pytest.raises(ValueError, match="precision"):
        load_config(None, ["train.precision=fp8"])


def test_yaml_round_trip(tmp_path):
    cfg = load_config(None, ["train.steps=7", "model.freeze=[encoder]"])
    save_config(cfg, tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == cfg
    assert yaml.safe_load((tmp_path / "c.yaml").read_text())["train"]["steps"] == 7


def test_shipped_recipes_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    recipes = [p for p in root.glob("*.yaml")]
    assert recipes, "configs/*.yaml missing"
    from open4m.model import preset
    from open4m.data.batches import build_masker

    for path in recipes:
        cfg = load_config(path)
        assert from_dict(cfg.to_dict()) == cfg
        d = cfg.data
        if d.source == "world":  # the world's modalities come with its tokenizers
            from open4m.sources.world import SHIPPED, bundle_missing, load_tokenizers

            if bundle_missing(SHIPPED):
                continue
            load_tokenizers()
        build_masker(d.mixture, d.modalities, alpha=d.alpha, input_tokens=d.input_tokens,
                     target_tokens=d.target_tokens, input_only=d.input_only, target_only=d.target_only)
        from open4m import modalities

        outputs = [m for m in d.modalities if modalities.get(m).decoder]
        preset(cfg.model.preset, domains_in=d.modalities, domains_out=outputs,
               **cfg.model.arch)


def test_cli_lists_keys_and_reports_bad_keys(capsys):
    from open4m.cli import main

    assert main(["train", "--keys"]) == 0
    assert "optim:" in capsys.readouterr().out
    assert main(["train", "optim.bl=1"]) == 2
    assert "did you mean 'optim.blr'" in capsys.readouterr().err
