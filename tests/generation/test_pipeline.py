"""End-to-end pipeline and `open4m generate`, with small random-init models and tokenizers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from open4m import modalities
from open4m.cli import main as cli_main
from open4m.generation.pipeline import Boxes, ColorPalette, Metadata, pipeline
from open4m.modalities import Kind, Modality
from open4m.model import FourM, preset
from open4m.tokenizers import TextTokenizer
from open4m.tokenizers.config import VQVAEConfig
from open4m.tokenizers.vqvae import VQVAE

CORPUS = ["a dog on a beach", "a red car in the street", "two cats on a sofa"] * 5


@pytest.fixture(scope="module")
def text_tokenizer() -> TextTokenizer:
    return TextTokenizer.train(CORPUS, vocab_size=4400)


@pytest.fixture(scope="module")
def setup(text_tokenizer):
    """A model over rgb, tok_depth and a small-vocabulary caption-like modality, plus tokenizers."""
    name = "gen_test_caption"
    modalities.register(Modality(name, Kind.SEQUENCE, vocab_size=text_tokenizer.vocab_size, max_tokens=16,
                                 encoder=True, decoder=True), overwrite=True)
    torch.manual_seed(0)
    mods = ["rgb@224", "tok_depth@224", name]
    model = FourM(preset("tiny-swiglu_nobias", domains_in=mods, domains_out=mods[1:], dim=32, encoder_depth=1,
                         decoder_depth=1, num_heads=2)).eval()
    depth = VQVAE(VQVAEConfig(image_size=224, n_channels=1, enc_type="vit_t_enc", dec_type="vit_t_dec", patch_size=16,
                              codebook_size=8192, latent_dim=8)).eval()
    yield model, {"depth": depth, "text": text_tokenizer}, name
    modalities.unregister(name)


def photo(size=100) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def test_one_line_pipeline_decodes_every_output(setup, tmp_path):
    model, toks, cap = setup
    pipe = pipeline(f"rgb->depth->{cap}", model=model, tokenizers=toks, steps=[2, None], tokens=[None, 8])
    with pytest.warns(UserWarning, match="resized to 224x224"):
        out = pipe(photo(), seed=0)
    assert out.images["tok_depth@224"][0].size == (224, 224)
    assert isinstance(out.texts[cap][0], str)
    written = {p.name for p in out.save(tmp_path)}
    assert {"tok_depth_224_0.png", "grid.png", "texts.json"} <= written
    assert Image.open(tmp_path / "grid.png").size == (2 * 224, 224)  # input + depth
    assert json.loads((tmp_path / "texts.json").read_text())["texts"][cap] == out.texts[cap]
    again = pipe(photo(), seed=0)
    assert torch.equal(again.tokens["tok_depth@224"]["tensor"], out.tokens["tok_depth@224"]["tensor"])


def test_text_and_tokenized_image_conditions(setup):
    model, toks, cap = setup
    pipe = pipeline(f"tok_depth@224->{cap}", model=model, tokenizers=toks, tokens=6, temps=0.0)
    depth = np.random.default_rng(0).random((224, 224)).astype(np.float32)
    out = pipe(depth)
    assert out.tokens["tok_depth@224"]["tensor"].shape == (1, 196)
    assert out.tokens[cap]["tensor"].shape[1] <= 5
    text_pipe = pipeline(f"{cap}->depth", model=model, tokenizers=toks, steps=1, temps=0.0)
    assert text_pipe("a dog on a beach").images["tok_depth@224"][0].size == (224, 224)


def test_a_batch_gives_what_each_sample_gives_alone(setup):
    model, toks, cap = setup
    pipe = pipeline(f"rgb,{cap}->depth", model=model, tokenizers=toks, steps=2, temps=0.0)
    images = [np.asarray(photo(224)), np.asarray(photo(224))[::-1].copy()]
    texts = ["a dog on a beach", "two cats"]
    batch = pipe({"rgb@224": np.stack(images), cap: texts}, seed=0)
    assert batch.arrays["tok_depth@224"].shape[0] == 2 and len(batch.images["tok_depth@224"]) == 2
    assert len(batch.inputs["rgb@224"]) == 2
    for i in range(2):
        alone = pipe({"rgb@224": images[i], cap: texts[i]}, seed=0)
        assert torch.equal(alone.tokens["tok_depth@224"]["tensor"][0], batch.tokens["tok_depth@224"]["tensor"][i])
    tok = toks["depth"]
    decoded = tok.decode(batch.tokens["tok_depth@224"]["tensor"])
    assert torch.equal(batch.decoded["tok_depth@224"], decoded)  # the raw decoder output
    np.testing.assert_array_equal(batch.arrays["tok_depth@224"], tok.to_numpy(decoded))  # its natural form


def test_a_call_takes_the_short_names_its_spec_took(setup):
    """pipeline("rgb->depth") takes {"rgb": photo} (it refused it: "inputs ['rgb'] are not conditions of ('rgb@224',)")."""
    model, toks, cap = setup
    pipe = pipeline(f"rgb,{cap}->depth", model=model, tokenizers=toks, steps=1, temps=0.0)
    image = np.asarray(photo(224))
    short = pipe({"rgb": image, cap: "a dog"}, seed=0)
    full = pipe({"rgb@224": image, cap: "a dog"}, seed=0)
    assert torch.equal(short.tokens["tok_depth@224"]["tensor"], full.tokens["tok_depth@224"]["tensor"])
    with pytest.raises(ValueError, match=r"'rgb' and 'rgb@224' both give the condition rgb@224; give each condition once"):
        pipe({"rgb": image, cap: "a dog"}, **{"rgb@224": image})
    with pytest.raises(ValueError, match=r"inputs \['depth'\] are not conditions"):
        pipe({"rgb": image, cap: "a dog", "depth": image})


def test_a_caption_word_outside_the_vocabulary_is_warned_about(setup, recwarn):
    """A caption word the tokenizer reads as [UNK] is named in a warning (the model conditioned on it without a word)."""
    model, toks, cap = setup
    pipe = pipeline(f"{cap}->depth", model=model, tokenizers=toks, steps=1, temps=0.0)
    pipe("a dog on a beach")
    assert not [w for w in recwarn if "vocabulary" in str(w.message)]
    with pytest.warns(UserWarning, match=rf"{cap}: '日', '本' not in the text tokenizer's vocabulary; the model sees "
                                         r"\[UNK\] in their place"):
        pipe(["a dog 日本", "a cat 日"])


def test_with_spec_shares_the_model_and_tokenizers(setup):
    model, toks, cap = setup
    pipe = pipeline("rgb->depth", model=model, tokenizers=toks, steps=2, temps=0.0)
    other = pipe.with_spec(f"rgb->{cap}", temps=0.0)
    assert other.model is pipe.model and other.tokenizers is pipe.tokenizers and other.sampler is pipe.sampler
    assert other.schedule.targets == (cap,) and pipe.schedule.targets == ("tok_depth@224",)
    assert isinstance(other(photo(224), seed=0).texts[cap][0], str)
    with pytest.raises(ValueError, match="does not know"):
        pipe.with_spec("rgb->normal")


def test_encode_texts_pads_ends_and_cuts(setup, text_tokenizer):
    model, toks, cap = setup
    pipe = pipeline(f"{cap}->depth", model=model, tokenizers=toks)
    ids = pipe.encode_texts(cap, ["a dog on a beach", "a dog"])
    eos, pad = text_tokenizer.eos_id, text_tokenizer.pad_id
    assert ids.shape[0] == 2 and (ids == eos).sum(1).tolist() == [1, 1]
    assert ids[1, -1] == pad and ids[0, -1] == eos
    cut = pipe.encode_texts(cap, ["a dog on a beach"], max_tokens=2)
    assert cut.shape == (1, 3) and cut[0, -1] == eos
    assert torch.equal(pipe.tokenize({cap: ["a dog on a beach", "a dog"]})[0][cap], ids)


def test_structured_builders_write_official_strings():
    assert Boxes([(0.1, 0.2, 0.5, 0.6, "dog")]).to_text() == "v0=100 v1=200 v2=500 v3=599 dog"
    assert ColorPalette([(255, 0, 10)]).to_text() == "v1=1 v0=255 v0=0 v0=10"
    assert Metadata(brightness=255.0, n_humans=2).to_text() == "v1=5 v0=2 v1=10 v0=49"
    with pytest.raises(ValueError, match="unknown fields"):
        Metadata(n_instances=3).to_text()


def test_pipeline_errors(setup):
    model, toks, cap = setup
    small = VQVAE(VQVAEConfig(image_size=224, n_channels=1, enc_type="vit_t_enc", dec_type="vit_t_dec",
                              patch_size=16, codebook_size=64, latent_dim=8))
    with pytest.raises(ValueError, match="has 64 tokens but the model's tok_depth@224 vocabulary has 8192"):
        pipeline("rgb->depth", model=model, tokenizers={"depth": small})
    with pytest.raises(ValueError, match="does not know"):
        pipeline("rgb->normal", model=model)
    pipe = pipeline(f"{cap}->depth", model=model, tokenizers=toks, steps=1)
    with pytest.raises(ValueError, match="is a 'det' condition"):
        pipe(Boxes([(0, 0, 1, 1, "dog")]))
    # Without an override the registry's released depth tokenizer is used; offline and uncached, that is one clear line.
    with pytest.raises(FileNotFoundError, match="4M_tokenizers_depth_8k_224-448: model.safetensors is not in the local"):
        pipeline(f"tok_depth@224->{cap}", model=model,
                 tokenizers={"text": toks["text"]})(np.zeros((224, 224), np.float32))


def test_cli_generate(setup, tmp_path, capsys):
    model, toks, cap = setup
    model.save_file(tmp_path / "model.safetensors")
    tok_dir = tmp_path / "toks"
    toks["depth"].save_pretrained(tok_dir / "tok_depth")
    toks["text"].save_pretrained(tok_dir / "text.json")
    photo(300).save(tmp_path / "photo.png")
    out_dir = tmp_path / "out"
    rc = cli_main(["generate", "--model", str(tmp_path / "model.safetensors"), "--tokenizers", str(tok_dir),
                   "--input", f"rgb={tmp_path / 'photo.png'}", "--target", f"depth,{cap}", "--steps", "2-1",
                   "--tokens", "196-12", "--token-schedules", "linear", "--cfg", "2.0", "--cfg-schedules", "linear",
                   "--cfg-grow-conditioning", "--draft-tokens", "4", "--out", str(out_dir)])
    assert rc == 0
    assert {"grid.png", "tok_depth_224_0.png", "texts.json", "tokens.safetensors"} <= {p.name for p in out_dir.iterdir()}
    printed = capsys.readouterr().out
    assert f"{cap}[0]:" in printed and "tokens [98, 98]" in printed and "cfg 2->1.5 on [rgb@224]" in printed
    assert "cfg 2.0 on [rgb@224, tok_depth@224]" in printed  # the depth joined the caption's guidance
    with pytest.raises(SystemExit) as refused:  # refused while parsing the options
        cli_main(["generate", "--model", str(tmp_path / "model.safetensors"), "--input", f"rgb={tmp_path / 'photo.png'}",
                  "--target", cap, "--draft-tokens", "-1", "--out", str(out_dir)])
    assert refused.value.code == 2 and "argument --draft-tokens: -1 is too small" in capsys.readouterr().err
    rc = cli_main(["generate", "--model", str(tmp_path / "model.safetensors"), "--input", "rgb=nowhere.jpg",
                   "--target", "depth", "--out", str(out_dir), "--overwrite"])
    assert rc == 2 and "no such file" in capsys.readouterr().err
    rc = cli_main(["generate", "--model", str(tmp_path / "model.safetensors"), "--input",
                   f"rgb={tmp_path / 'photo.png'}", "--target", "semseg", "--out", str(out_dir), "--overwrite"])
    assert rc == 2 and "does not know" in capsys.readouterr().err


def test_a_seed_torch_cannot_take_is_refused_before_generating(setup, tmp_path, capsys):
    """seed=2**70 raised torch's 'Overflow when unpacking long long' (seed=1.5: 'manual_seed expected a long')."""
    model, toks, cap = setup
    pipe = pipeline(f"{cap}->depth", model=model, tokenizers=toks, steps=1, temps=0.0)
    for seed, message in [(2**70, "seed=1180591620717411303424 is out of range"), (-2**63 - 1, "out of range"),
                          (1.5, "seed=1.5 is not a whole number"), ("1", "not a whole number")]:
        with pytest.raises(ValueError, match=message):
            pipe("a dog", seed=seed)
        with pytest.raises(ValueError, match=message):
            pipe.estimate("a dog", draws=1, seed=seed)
    edge = pipe("a dog", seed=2**63 - 1).tokens["tok_depth@224"]["tensor"]  # the range's ends still run
    assert edge.shape == (1, 196) and pipe("a dog", seed=-2**63).tokens["tok_depth@224"]["tensor"].shape == (1, 196)
    model.save_file(tmp_path / "model.safetensors")
    toks["text"].save_pretrained(tmp_path / "toks" / "text.json")
    toks["depth"].save_pretrained(tmp_path / "toks" / "tok_depth")
    rc = cli_main(["generate", "--model", str(tmp_path / "model.safetensors"), "--tokenizers", str(tmp_path / "toks"),
                   "--input", f"{cap}=a dog", "--target", "depth", "--steps", "1", "--seed", str(10**23),
                   "--out", str(tmp_path / "out")])
    assert rc == 2 and "is out of range; give a whole number from -2**63" in capsys.readouterr().err


def test_super_resolution_chains_224_outputs_to_448(setup):
    model, toks, cap = setup
    torch.manual_seed(1)
    mods = ["rgb@224", "tok_depth@224", "tok_depth@448"]
    sr = FourM(preset("tiny-swiglu_nobias", domains_in=mods, domains_out=mods[1:], dim=32, encoder_depth=1,
                      decoder_depth=1, num_heads=2)).eval()
    # depth=None: tokens only (no tokenizer is looked up for depth, here or in the registry)
    pipe = pipeline("rgb->depth", model=model, tokenizers={"text": toks["text"], "depth": None}, steps=1, sr_model=sr,
                    sr_options=dict(steps=2))
    assert pipe.sr_schedule.conditions == ("rgb@224", "tok_depth@224")
    assert pipe.sr_schedule.targets == ("tok_depth@448",) and len(pipe.sr_schedule) == 2
    out = pipe(torch.randn(1, 3, 224, 224), seed=0)
    assert out.tokens["tok_depth@448"]["tensor"].shape == (1, 784)
    with pytest.raises(ValueError, match="not refined by super-resolution"):
        pipe.estimate(torch.randn(1, 3, 224, 224))
    assert not out.tokens["tok_depth@448"]["input_mask"].any()
    with pytest.raises(ValueError, match="predicts none of the @448 versions"):
        pipeline(f"rgb->{cap}", model=model, sr_model=sr)


def test_dense_sam_instances_run_every_pass_and_paint_a_map(monkeypatch):
    """`dense=3`: the schedule's pass plus two more per image, merged; a mask tokenizer paints the map."""
    from open4m.generation import pipeline as pipeline_module

    words = [f"w{i:05d}x" for i in range(40000)]
    text = TextTokenizer.train([" ".join(words[i:i + 50]) for i in range(0, 40000, 50)], vocab_size=30000)
    torch.manual_seed(0)
    model = FourM(preset("tiny-swiglu_nobias", domains_in=["rgb@224", "sam_instance"],
                         domains_out=["sam_instance", "tok_depth@224"], dim=32, encoder_depth=1, decoder_depth=1,
                         num_heads=2)).eval()
    masks = VQVAE(VQVAEConfig(image_size=64, n_channels=1, enc_type="vit_t_enc", dec_type="vit_t_dec", patch_size=16,
                              codebook_size=1024, latent_dim=8)).eval()
    calls = []
    original = pipeline_module.generate_dense

    def counting(sampler, conditions, step, *, repeats, generator=None):
        calls.append((sorted(conditions), repeats))
        return original(sampler, conditions, step, repeats=repeats, generator=generator)

    monkeypatch.setattr(pipeline_module, "generate_dense", counting)
    pipe = pipeline("rgb->sam_instance", model=model, tokenizers={"text": text, "sam_mask": masks}, tokens=12,
                    temps=0.7, dense=3)
    out = pipe(torch.randn(2, 3, 224, 224), seed=0)
    assert calls == [(["rgb@224"], 2), (["rgb@224"], 2)]  # per image: two passes beyond the schedule's
    assert len(out.parsed["sam_instance"]) == 2 and all(isinstance(p, list) for p in out.parsed["sam_instance"])
    assert [img.size for img in out.images["sam_instance"]] == [(224, 224)] * 2
    without_masks = pipeline("rgb->sam_instance", model=model, tokenizers={"text": text, "sam_mask": None}, tokens=12,
                             temps=0.7)
    assert "sam_instance" not in without_masks(torch.randn(1, 3, 224, 224), seed=0).images
    with pytest.raises(ValueError, match="dense=0"):
        pipeline("rgb->sam_instance", model=model, tokenizers={"text": text}, dense=0)
    with pytest.raises(FileNotFoundError, match="text_tokenizer_4m_wordpiece_30k.json is not in the local cache"):
        pipeline("rgb->sam_instance", model=model, dense=4)  # the registry's text tokenizer, not downloadable here
    with pytest.raises(ValueError, match="repeats the prompted passes"):
        pipeline("rgb->depth", model=model, dense=4)


def test_a_generated_box_with_swapped_corners_is_drawn_not_refused():
    from open4m.generation.pipeline import draw_boxes
    from open4m.tokenizers.sequences import Box

    canvas = Image.new("RGB", (40, 40), "white")
    drawn = draw_boxes(canvas, [Box(0.8, 0.7, 0.2, 0.1, "cube"), Box(0.1, 0.1, 0.1, 0.1, "cone")])
    pixels = np.asarray(drawn)
    assert (pixels[4:28, 8] == (255, 0, 0)).all()  # the left edge of the swapped box, at x = 0.2 * 40


def test_estimate_is_the_mean_of_grids_drawn_from_the_per_token_distributions(setup):
    from open4m.generation.sampling import draw_tokens

    model, toks, cap = setup
    pipe = pipeline(f"rgb,{cap}->depth", model=model, tokenizers=toks, steps=1, temps=0.0)
    inputs = {"rgb@224": np.asarray(photo(224)), cap: "a dog on a beach"}
    greedy = pipe.estimate(inputs, draws=1, temperature=0.0)  # one-hot distributions: the one-step greedy sample
    torch.testing.assert_close(greedy.decoded["tok_depth@224"], pipe(inputs, seed=0).decoded["tok_depth@224"])
    est = pipe.estimate(inputs, draws=3, seed=5)
    conditions, _ = pipe.tokenize(inputs)
    probs = pipe.sampler.marginals(conditions, pipe.schedule)["tok_depth@224"]
    generator = torch.Generator().manual_seed(5)
    grids = [draw_tokens(probs, generator)[0] for _ in range(3)]
    expected = torch.stack([toks["depth"].decode(g) for g in grids]).mean(0)
    torch.testing.assert_close(est.decoded["tok_depth@224"], expected)
    assert est.arrays["tok_depth@224"].shape[0] == 1 and est.images["tok_depth@224"][0].size == (224, 224)
    assert set(est.tokens) == {"rgb@224", cap} and len(est.inputs["rgb@224"]) == 1
    torch.testing.assert_close(pipe.estimate(inputs, draws=3, seed=5).decoded["tok_depth@224"], expected)
    assert not torch.equal(pipe.estimate(inputs, draws=3, seed=6).decoded["tok_depth@224"], expected)
    with pytest.raises(ValueError, match="draws=0"):
        pipe.estimate(inputs, draws=0)
    with pytest.raises(ValueError, match="not an image target"):
        pipe.with_spec(f"rgb->{cap}").estimate(photo(224))


def test_cli_generate_estimate(setup, tmp_path, capsys):
    model, toks, cap = setup
    model.save_file(tmp_path / "model.safetensors")
    toks["depth"].save_pretrained(tmp_path / "toks" / "tok_depth")
    toks["text"].save_pretrained(tmp_path / "toks" / "text.json")
    photo(224).save(tmp_path / "photo.png")
    base = ["generate", "--model", str(tmp_path / "model.safetensors"), "--tokenizers", str(tmp_path / "toks"),
            "--input", f"rgb={tmp_path / 'photo.png'}", "--estimate", "4"]
    assert cli_main([*base, "--target", "depth", "--out", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out  # what it does, not a MaskGIT schedule it does not follow
    assert "tok_depth@224: least-squares estimate, the mean of 4 token grids" in said and "maskgit" not in said
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"grid.png", "tok_depth_224_0.png"} <= written and "tokens.safetensors" not in written  # no tokens of its own
    capsys.readouterr()
    assert cli_main([*base, "--target", cap, "--out", str(tmp_path / "text")]) == 2
    assert "not an image target" in capsys.readouterr().err
    assert cli_main([*base, "--target", "depth", "--sr", "x", "--out", str(tmp_path / "sr")]) == 2
    assert "--estimate with --sr" in capsys.readouterr().err
    # --temps was ignored (always temperature 1) and step options passed in silence under a schedule it did not follow
    assert cli_main([*base, "--target", "depth", "--temps", "0", "--out", str(tmp_path / "greedy")]) == 0
    greedy = np.asarray(Image.open(tmp_path / "greedy" / "tok_depth_224_0.png"))
    argmax = pipeline("rgb->depth", model=model, tokenizers=toks).estimate(photo(224), draws=1, temperature=0.0)
    np.testing.assert_array_equal(greedy, np.asarray(argmax.images["tok_depth@224"][0]))
    for extra, message in [(["--steps", "2"], "so --steps would change nothing"),
                           (["--schemes", "roar", "--temp-schedules", "linear"], "--schemes, --temp-schedules would"),
                           (["--temps", "3.0-0.5"], "--temps 3.0-0.5 with --estimate: give one temperature >= 0")]:
        assert cli_main([*base, "--target", "depth", *extra, "--out", str(tmp_path / "refused")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
