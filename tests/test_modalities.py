import json
import pytest

from open4m import modalities
from open4m.modalities import FOURM_7, FOURM_21, Kind, Modality


# (name, kind, vocab, tokens, id) straight from the official registry (shared/spec/modalities.md).
OFFICIAL = [
    ("rgb@224", Kind.PIXELS, None, 196, 20716),
    ("caption", Kind.SEQUENCE, 30000, 256, 32652),
    ("det", Kind.SEQUENCE, 30000, 256, 30982),
    ("tok_rgb@224", Kind.IMAGE_TOKENS, 16384, 196, 11606),
    ("tok_depth@224", Kind.IMAGE_TOKENS, 8192, 196, 20063),
    ("tok_normal@224", Kind.IMAGE_TOKENS, 8192, 196, 16656),
    ("tok_semseg@224", Kind.IMAGE_TOKENS, 4096, 196, 12515),
    ("tok_clip@224", Kind.IMAGE_TOKENS, 8192, 196, 11422),
    ("t5_caption", Kind.SEQUENCE_EMBEDDING, None, 77, 28551),
    ("metadata", Kind.SEQUENCE, 30000, 40, 1951),
    ("human_poses", Kind.SEQUENCE, 30000, 275, 30584),
    ("color_palette", Kind.SEQUENCE, 30000, 23, 12967),
    ("sam_instance", Kind.SEQUENCE, 30000, 290, 1938),
    ("tok_canny_edge@224", Kind.IMAGE_TOKENS, 8192, 196, 12520),
    ("tok_sam_edge@224", Kind.IMAGE_TOKENS, 8192, 196, 7842),
    ("tok_dinov2@224", Kind.IMAGE_TOKENS, 8192, 256, 26275),
    ("tok_imagebind@224", Kind.IMAGE_TOKENS, 8192, 256, 6200),
    ("tok_dinov2_global", Kind.IMAGE_TOKENS, 8192, 16, 29172),
    ("tok_imagebind_global", Kind.IMAGE_TOKENS, 8192, 16, 12099),
    ("rgb@448", Kind.PIXELS, None, 784, 27924),
    ("tok_rgb@448", Kind.IMAGE_TOKENS, 16384, 784, 1057),
    ("tok_depth@448", Kind.IMAGE_TOKENS, 8192, 784, 11499),
    ("tok_normal@448", Kind.IMAGE_TOKENS, 8192, 784, 32321),
    ("tok_semseg@448", Kind.IMAGE_TOKENS, 4096, 784, 10291),
    ("tok_clip@448", Kind.IMAGE_TOKENS, 8192, 784, 3585),
]
RAW_IDS = {"rgb": 13010, "depth": 17286, "normal": 25850, "semseg_coco": 4154, "CLIP-B16": 10663,
           "sam_mask": 10735, "canny_edge": 10506, "DINOv2-B14": 4874, "ImageBind-H14": 2897,
           "DINOv2-B14-global": 2998, "ImageBind-H14-global": 5462}


@pytest.mark.parametrize("name,kind,vocab,tokens,mid", OFFICIAL)
def test_official_entries(name, kind, vocab, tokens, mid):
    m = modalities.get(name)
    assert m.kind is kind and m.vocab_size == vocab and m.id == mid
    assert m.num_tokens() == tokens


def test_raw_ids_and_presets():
    for name, mid in RAW_IDS.items():
        assert modalities.get(name).id == mid
    assert len(modalities.all_modalities()) >= 36
    assert len(FOURM_7) == 8 and len(FOURM_21) == 19
    assert set(FOURM_7) <= set(FOURM_21)


def test_official_details():
    assert modalities.get("human_poses").positions == 263  # embedding table shorter than max_tokens
    assert not modalities.get("tok_dinov2_global").sincos_pos_emb
    assert modalities.get("metadata").shares_vocab_with == ("caption",)
    assert modalities.get("rgb@224").path == "rgb" and not modalities.get("rgb@224").decoder
    assert modalities.get("tok_dinov2@224").grid_size() == (16, 16)
    assert modalities.get("tok_imagebind_global").grid_size() == (4, 4)


def test_unknown_modality_suggests():
    with pytest.raises(KeyError, match="tok_depth@224"):
        modalities.get("tok_dept@224")


def test_user_registration():
    m = modalities.register(Modality("tok_thermal@224", Kind.IMAGE_TOKENS, vocab_size=1024, image_size=224,
                                     patch_size=16, encoder=True, decoder=True))
    try:
        assert modalities.get("tok_thermal@224") is m and m.num_tokens() == 196
        modalities.register(m)  # identical re-registration is fine
        with pytest.raises(ValueError, match="overwrite=True"):
            modalities.register(Modality("tok_thermal@224", Kind.IMAGE_TOKENS, vocab_size=2048, patch_size=16,
                                         encoder=True))
    finally:
        modalities.unregister("tok_thermal@224")


def test_invalid_modalities():
    with pytest.raises(ValueError, match="vocab_size"):
        Modality("bad", Kind.IMAGE_TOKENS, patch_size=16, encoder=True)
    with pytest.raises(ValueError, match="input only"):
        Modality("bad2", Kind.PIXELS, patch_size=16, decoder=True)


def test_spec_round_trip_for_every_registered_modality():
    for mod in modalities.all_modalities().values():
        spec = modalities.to_spec(mod)
        assert json.loads(json.dumps(spec)) == spec
        assert modalities.from_spec(spec) == mod
    assert all(modalities.is_builtin(n) for n in (*FOURM_21, *modalities.FOURM_7_SR))
    assert not modalities.is_builtin("tok_thermal@224")
    with pytest.raises(ValueError, match="unknown fields \\['colour'\\]"):
        modalities.from_spec({**modalities.to_spec(modalities.get("caption")), "colour": 1})


def test_the_wordpiece_layout_is_defined_once_here():
    layout = [token for token, _ in modalities.special_token_layout()]
    special = modalities.SpecialTokens()
    assert layout[:4] == ["[PAD]", "[UNK]", "[SOS]", "[EOS]"] and (special.pad, special.eos) == (0, 3)
    assert layout[special.sentinel(0)] == "[S_0]" and layout[special.sentinel(199)] == "[S_199]"
    assert not special.is_sentinel(modalities.VALUE_BASE) and special.is_sentinel(modalities.VALUE_BASE - 1)
    assert layout[modalities.VALUE_BASE + 2 * modalities.NUM_BINS + 5] == "v2=5"
    assert layout[modalities.CLASS_BASE:] == list(modalities.COCO_CLASSES) and len(modalities.COCO_CLASSES) == 80
    assert (modalities.VALUE_BASE, modalities.CLASS_BASE, len(layout)) == (204, 4204, 4284)  # the released ids
    with pytest.raises(ValueError, match="does not exist"):
        special.sentinel(200)
    # the other modules re-export these objects; they never define their own
    from open4m.data import masking
    from open4m.tokenizers import text

    assert masking.SpecialTokens is modalities.SpecialTokens
    assert text.COCO_CLASSES is modalities.COCO_CLASSES and text.special_token_layout is modalities.special_token_layout
