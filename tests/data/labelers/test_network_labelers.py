"""Network labeler adapters on tiny random-initialised transformers models (built from configs, no download)."""

import numpy as np
import pytest

from open4m.cli import main
from open4m.data import codecs
from open4m.data.labelers import label_folder
from open4m.data.labelers.network import (FeatureMapLabeler, GlobalEmbeddingLabeler, from_pretrained,
                                          normals_from_depth)
from open4m.data.synthetic import generate_sample, sample_scene

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    vit = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)
    transformers.DPTForDepthEstimation(transformers.DPTConfig(
        **vit, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16, backbone_out_indices=[0, 1, 2, 3])
    ).save_pretrained(root / "depth")
    transformers.SegformerForSemanticSegmentation(transformers.SegformerConfig(
        num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[8, 16], num_attention_heads=[1, 1],
        patch_sizes=[3, 3], strides=[2, 2], mlp_ratios=[2, 2], decoder_hidden_size=16, num_labels=5, image_size=32)
    ).save_pretrained(root / "seg")
    transformers.Dinov2Model(transformers.Dinov2Config(**vit)).save_pretrained(root / "dino")
    (root / "dino" / "preprocessor_config.json").write_text('{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}')
    return root


@pytest.fixture()
def data(tmp_path):
    for i in range(3):
        s = generate_sample(i, 40, labels=False)
        (tmp_path / "rgb").mkdir(exist_ok=True)
        (tmp_path / "rgb" / f"s{i}.png").write_bytes(codecs.encode(s["rgb"], ".png", "rgb"))
    return tmp_path


def test_depth_semseg_and_features_write_the_layout(models, data):
    depth = from_pretrained("depth", models / "depth")
    assert label_folder(data, depth, batch_size=2, progress=False)["labeled"] == 3
    d = codecs.decode((data / "depth" / "s0.npy").read_bytes(), ".npy", "depth")
    assert d.shape == (40, 40) and d.dtype == np.float32 and (d >= 0).all()
    seg = from_pretrained("semseg", models / "seg")
    label_folder(data, seg, progress=False)
    m = codecs.decode((data / "semseg" / "s1.png").read_bytes(), ".png", "semseg")
    assert m.shape == (40, 40) and m.max() < 5
    fm = from_pretrained("feature_map", models / "dino", name="DINOv2-B14")
    assert isinstance(fm, FeatureMapLabeler) and fm.name == "DINOv2-B14"
    assert torch.allclose(fm.mean, torch.full((1, 3, 1, 1), 0.5))  # read from preprocessor_config.json
    label_folder(data, fm, progress=False)
    f = np.load(data / "DINOv2-B14" / "s2.npy")
    assert f.shape == (32, 4, 4) and f.dtype == np.float16
    emb = from_pretrained("embedding", models / "dino", name="DINOv2-B14-global")
    assert isinstance(emb, GlobalEmbeddingLabeler)
    assert emb.batch([{"rgb": np.zeros((40, 40, 3), np.uint8)}])[0].shape == (32,)


def test_batching_matches_single_samples_and_resumes(models, data):
    fm = from_pretrained("feature_map", models / "dino")
    samples = [{"rgb": codecs.decode((data / "rgb" / f"s{i}.png").read_bytes(), ".png", "rgb")} for i in range(3)]
    batched = fm.batch(samples)
    np.testing.assert_allclose(batched[1].astype(np.float32), fm(samples[1]).astype(np.float32), atol=2e-3)
    assert label_folder(data, fm, progress=False)["labeled"] == 3
    (data / "feature_map" / "s1.npy").unlink()
    stats = label_folder(data, fm, progress=False)
    assert stats["labeled"] == 1 and stats["skipped"] == 2


def test_label_cli_runs_network_labelers(models, data, capsys):
    assert main(["label", "--data", str(data), "-m", "normal", "--model", str(models / "depth")]) == 0
    n = codecs.decode((data / "normal" / "s0.png").read_bytes(), ".png", "normal")
    assert n.shape == (40, 40, 3)
    assert main(["label", "--data", str(data), "-m", "depth"]) == 2
    assert "--model" in capsys.readouterr().err


def test_normals_from_depth_recover_the_rendered_normals():
    s = generate_sample(3, 96, labels=False)
    n = normals_from_depth(s["depth"], sample_scene(3).camera.fov_deg)
    inner = np.zeros_like(s["semseg"], bool)
    inner[2:-2, 2:-2] = (s["semseg"][2:-2, 2:-2] == 1) & (s["semseg"][:-4, 2:-2] == 1) & (s["semseg"][4:, 2:-2] == 1)
    cos = (n * s["normal"]).sum(-1)[inner]
    assert inner.sum() > 500 and np.median(cos) > 0.999


def _tiny_captioner(path):
    from tokenizers import Tokenizer, models as tok_models, pre_tokenizers

    words = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "a", "red", "cube", "on", "the", "floor"]
    tok = Tokenizer(tok_models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", bos_token="[BOS]",
                                         eos_token="[EOS]", unk_token="[UNK]").save_pretrained(path)
    enc = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                 image_size=32, patch_size=8)
    dec = transformers.GPT2Config(vocab_size=len(words), n_embd=32, n_layer=1, n_head=2, n_positions=64,
                                  bos_token_id=1, eos_token_id=2, pad_token_id=0)
    cfg = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = 1, 0, 2
    model = transformers.VisionEncoderDecoderModel(config=cfg)
    model.generation_config.suppress_tokens = [0, 1, 3]  # an untrained decoder: make it emit real words
    model.generation_config.min_new_tokens = 3
    model.save_pretrained(path)


def test_caption_adapter_writes_text_and_resumes(tmp_path, data):
    torch.manual_seed(0)
    _tiny_captioner(tmp_path / "cap")
    cap = from_pretrained("caption", tmp_path / "cap")
    assert label_folder(data, cap, batch_size=2, progress=False)["labeled"] == 3
    texts = [codecs.decode((data / "caption" / f"s{i}.txt").read_bytes(), ".txt", "caption") for i in range(3)]
    words = {"a", "red", "cube", "on", "the", "floor"}
    assert all(t and set(t.split()) <= words for t in texts), texts
    assert label_folder(data, cap, progress=False)["skipped"] == 3
