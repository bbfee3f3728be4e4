"""Wrong types and ranges: counts and sizes that are zero or negative, numbers that are not numbers,
sampling options out of their range, malformed NAME=VALUE pairs, boxes outside the image, ports.

Counts and sizes are refused while the options are parsed (`open4m.cli.commands.at_least`), before a
model loads or a folder is made; decoding options when the schedule is built.
"""

import pytest

from battery import Case

AREA = "Values: types and ranges"


def _generate(w, *extra):
    return ["generate", "--model", w.model, "--input", f"rgb={w.photo}", "--target", "depth", "--out", "out", *extra]


def box_outside_the_image(world, user):
    """open4m.serve.session.parse_boxes([[0.5, 0.2, 1.4, 0.6, "car"]])"""
    from open4m.serve.session import parse_boxes

    parse_boxes([[0.5, 0.2, 1.4, 0.6, "car"]])


def seed_not_whole(world, user):
    """build_request(model, {"rgb": PHOTO}, ["depth"], seed=1.5)"""
    from open4m.generation.request import build_request
    from open4m.model import FourM

    build_request(FourM.from_pretrained(world.model), {"rgb": world.photo}, ["depth"], seed=1.5)


def steps_not_a_number(world, user):
    """build_schedule("rgb@224->tok_depth@224", steps="eight")"""
    from open4m.generation.schedules import build_schedule

    build_schedule("rgb@224->tok_depth@224", steps="eight")


CASES = [
    # -- counts and sizes, refused while parsing -------------------------------------------------------------
    Case("value-synth-size", AREA, "an image size of 0 (synth --size 0)",
         r"argument --size: 0 is too small; give a whole number >= 8",
         argv=lambda w, u: ["synth", "--out", "out", "--size", "0"], process=True),
    Case("value-synth-n", AREA, "a negative scene count (synth --n -1)",
         r"argument --n: -1 is too small; give a whole number >= 1",
         argv=lambda w, u: ["synth", "--out", "out", "--n", "-1"]),
    Case("value-synth-n-text", AREA, "a scene count that is not a number (synth --n many)",
         r"argument --n: 'many' is not a whole number; give one >= 1",
         argv=lambda w, u: ["synth", "--out", "out", "--n", "many"]),
    Case("value-show-tile", AREA, "a tile of 0 pixels (show --tile 0)",
         r"argument --tile: 0 is too small; give a whole number >= 16",
         argv=lambda w, u: ["show", "--data", w.data, "--out", "sheet.png", "--tile", "0"]),
    Case("value-convert-shard-size", AREA, "a shard size of 0 (convert --shard-size 0)",
         r"argument --shard-size: 0 is too small; give a whole number >= 1",
         argv=lambda w, u: ["convert", "--src", w.data, "--dst", "out", "--shard-size", "0"]),
    Case("value-tokenize-image-size", AREA, "an image size of 0 (tokenize --image-size 0)",
         r"argument --image-size: 0 is too small; give a whole number >= 1",
         argv=lambda w, u: ["tokenize", "--data", w.data, "--modality", "rgb", "--tokenizer",
                            w.model / "tokenizers" / "tok_rgb.safetensors", "--image-size", "0"]),
    Case("value-tokenize-batch-size", AREA, "a batch size of 0 (tokenize --batch-size 0)",
         r"argument --batch-size: 0 is too small; give a whole number >= 1",
         argv=lambda w, u: ["tokenize", "--data", w.data, "--modality", "rgb", "--tokenizer",
                            w.model / "tokenizers" / "tok_rgb.safetensors", "--batch-size", "0"]),
    Case("value-eval-limit", AREA, "a sample limit of 0 (eval --limit 0)",
         r"argument --limit: 0 is too small; give a whole number >= 1",
         argv=lambda w, u: ["eval", "--model", w.model, "--data", w.data, "--limit", "0"]),
    Case("value-eval-batch-size", AREA, "a negative batch size (eval --batch-size -1)",
         r"argument --batch-size: -1 is too small; give a whole number >= 1",
         argv=lambda w, u: ["eval", "--model", w.model, "--data", w.data, "--batch-size", "-1"]),
    Case("value-demo-scenes", AREA, "no scenes to render (demo --scenes 0)",
         r"argument --scenes: 0 is too small; give a whole number >= 1",
         argv=lambda w, u: ["demo", "--scenes", "0", "--out", "out"]),
    Case("value-label-batch-size", AREA, "a batch size of 0 (label --batch-size 0)",
         r"argument --batch-size: 0 is too small; give a whole number >= 1",
         argv=lambda w, u: ["label", "--data", w.data, "-m", "canny_edge", "--batch-size", "0"]),
    Case("value-label-edge-size", AREA, "an edge scale below 8 pixels (label --edge-size 4)",
         r"edge scale must be at least 8 pixels",
         argv=lambda w, u: ["label", "--data", w.data, "-m", "canny_edge", "--edge-size", "4"]),
    Case("value-train-tokenizer-steps", AREA, "no training steps (train-tokenizer --steps 0)",
         r"argument --steps: 0 is too small; give a whole number >= 1",
         argv=lambda w, u: ["train-tokenizer", "--kind", "vqvae", "--data", w.data / "depth", "--out", "out",
                            "--steps", "0"]),
    Case("value-retrieve-k", AREA, "no results asked for (retrieve --k 0)",
         r"argument --k: 0 is too small; give a whole number >= 1",
         argv=lambda w, u: ["retrieve", "--model", w.model, "--index", "gallery.index", "--input", "rgb=x.png",
                            "--k", "0"]),
    Case("value-generate-dense", AREA, "no prompted passes (generate --dense 0)",
         r"argument --dense: 0 is too small; give a whole number >= 1",
         argv=lambda w, u: _generate(w, "--dense", "0")),
    Case("value-generate-decode-steps", AREA, "no denoising steps (generate --decode-steps 0)",
         r"argument --decode-steps: 0 is too small; give a whole number >= 1",
         argv=lambda w, u: _generate(w, "--decode-steps", "0")),
    Case("value-dataset-crops", AREA, "a malformed crop size (dataset motorcycle --crops 0x5)",
         r"--crops '0x5': write WxH pairs separated by commas",
         argv=lambda w, u: ["dataset", "motorcycle", "--out", "out", "--crops", "0x5"]),
    Case("value-serve-port", AREA, "a port out of range (serve --port 70000)",
         r"--port 70000: give a port between 1 and 65535",
         argv=lambda w, u: ["serve", "--port", "70000"]),
    Case("value-serve-port-text", AREA, "a port that is not a number (serve --port abc)",
         r"argument --port: invalid int value: 'abc'; give a whole number",
         argv=lambda w, u: ["serve", "--port", "abc"]),
    Case("value-tokenize-device", AREA, "a device name torch does not know (tokenize --device xyz)",
         r"argument --device: 'xyz' is not a device \(give cpu, cuda, cuda:N, mps or auto\)",
         argv=lambda w, u: ["tokenize", "--data", w.data, "--modality", "rgb", "--tokenizer",
                            w.model / "tokenizers" / "tok_rgb.safetensors", "--device", "xyz"]),
    Case("value-label-device", AREA, "a misspelt device (label --device cudaa)",
         r"'cudaa' is not a device; did you mean cuda\?",
         argv=lambda w, u: ["label", "--data", w.data, "-m", "canny_edge", "--device", "cudaa"]),
    Case("value-train-device", AREA, "a recipe device torch does not know (train.device=gpu)",
         r"train\.device='gpu' is not a device; use cpu, cuda, cuda:N, mps or auto",
         argv=lambda w, u: ["train-tokenizer", "--kind", "vqvae", "--data", w.data / "depth", "--out", "out",
                            "--steps", "1", "--set", "train.device=gpu"]),
    Case("value-label-fov", AREA, "a field of view of 0 degrees (label -m normal --fov 0)",
         r"--fov 0: give the camera's horizontal field of view in degrees, between 0 and 180",
         argv=lambda w, u: ["label", "--data", w.data, "-m", "normal", "--fov", "0"]),
    # -- decoding options ------------------------------------------------------------------------------------
    Case("value-generate-temperature", AREA, "a negative temperature (generate --temps -1)",
         r"temperature -1\.0 < 0; use 0 for greedy decoding",
         argv=lambda w, u: _generate(w, "--temps", "-1")),
    Case("value-generate-temperature-text", AREA, "a temperature that is not a number (generate --temps abc)",
         r"temps='abc' is not understood; give a number, e\.g\. 1\.0",
         argv=lambda w, u: _generate(w, "--temps", "abc")),
    Case("value-generate-temperature-nan", AREA, "a temperature of nan (generate --temps nan)",
         r"temps='nan' is not finite; give a number",
         argv=lambda w, u: _generate(w, "--temps", "nan")),
    Case("value-generate-top-p", AREA, "a top-p above 1 (generate --top-p 1.5)",
         r"top_p=1\.5 must lie in \[0, 1\] \(0 disables nucleus filtering\)",
         argv=lambda w, u: _generate(w, "--top-p", "1.5")),
    Case("value-generate-top-p-negative", AREA, "a negative top-p (generate --top-p -0.5)",
         r"top_p=-0\.5 must lie in \[0, 1\]",
         argv=lambda w, u: _generate(w, "--top-p", "-0.5")),
    Case("value-generate-top-k", AREA, "a negative top-k (generate --top-k -1)",
         r"top_k=-1 must be >= 0 \(0 disables it\)",
         argv=lambda w, u: _generate(w, "--top-k", "-1")),
    Case("value-generate-guidance", AREA, "a guidance scale that is not a number (generate --cfg abc)",
         r"cfg='abc' is not understood; give one scale \(2\.0\) or weights per condition",
         argv=lambda w, u: _generate(w, "--cfg", "abc")),
    Case("value-generate-guidance-weight", AREA, "a guidance weight that is not a number (generate --cfg rgb=x)",
         r"cfg 'rgb=x': each weight must be a number",
         argv=lambda w, u: _generate(w, "--cfg", "rgb=x")),
    Case("value-generate-steps", AREA, "decoding steps that are not a number (generate --steps x)",
         r"steps='x' is not understood; give a whole number of steps",
         argv=lambda w, u: _generate(w, "--steps", "x")),
    Case("value-generate-steps-zero", AREA, "no decoding steps (generate --steps 0)",
         r"steps=0: a schedule needs at least one step",
         argv=lambda w, u: _generate(w, "--steps", "0")),
    Case("value-generate-tokens", AREA, "no tokens to generate (generate --tokens 0)",
         r"tokens=0, but it has at most 64 tokens; use 1\.\.64",
         argv=lambda w, u: _generate(w, "--tokens", "0")),
    Case("value-generate-scheme", AREA, "a misspelt decoding scheme (generate --schemes magkit)",
         r"unknown decoding scheme 'magkit'; choose one of",
         argv=lambda w, u: _generate(w, "--schemes", "magkit")),
    Case("value-library-steps", AREA, "decoding steps that are not a number, in a schedule",
         r"steps='eight' is not understood; give a whole number of steps",
         call=steps_not_a_number),
    # -- malformed pairs, boxes, seeds -----------------------------------------------------------------------
    Case("value-generate-input-pair", AREA, "an --input without NAME=VALUE (generate --input rgb)",
         r"--input 'rgb': write NAME=VALUE, e\.g\. rgb=photo\.jpg",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", "rgb", "--target", "depth", "--out", "out"]),
    Case("value-generate-input-name", AREA, "an --input without a name (generate --input =photo.png)",
         r"--input '=.*': write NAME=VALUE",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", f"={w.photo}", "--target", "depth",
                            "--out", "out"]),
    Case("value-generate-tokenizers-pair", AREA, "a --tokenizers pair without a value (--tokenizers depth=)",
         r"--tokenizers 'depth=': write NAME=PATH_OR_ID",
         argv=lambda w, u: _generate(w, "--tokenizers", "depth=")),
    Case("value-generate-flipped-box", AREA, "a box condition whose corners are swapped (xmin > xmax)",
         r"box 1 has no area \(xmin >= xmax or ymin >= ymax\); write v0=xmin v1=ymin v2=xmax v3=ymax",
         argv=lambda w, u: ["generate", "--model", w.model, "--input", "world_det=v0=600 v1=200 v2=100 v3=900 cube",
                            "--target", "rgb", "--out", "out"]),
    Case("value-library-box", AREA, "a box outside the image",
         r"box 1 \(0\.5, 0\.2, 1\.4, 0\.6\) is outside the image: corners are fractions",
         call=box_outside_the_image),
    Case("value-library-seed", AREA, "a seed that is not a whole number",
         r"seed 1\.5: give a whole number",
         call=seed_not_whole),
    Case("value-train-steps-text", AREA, "a recipe value of the wrong type (train train.steps=abc)",
         r"config key 'train\.steps' expects int, got 'abc'",
         argv=lambda w, u: ["train", "train.steps=abc"]),
    Case("value-train-lr", AREA, "a negative learning rate (train optim.blr=-1)",
         r"optim\.blr / optim\.lr must be positive",
         argv=lambda w, u: ["train", "optim.blr=-1"]),
    Case("value-train-lr-nan", AREA, "a learning rate of NaN (train optim.lr=.nan), which passes every > 0 check",
         r"config key 'optim\.lr' is nan; give a finite number",
         argv=lambda w, u: ["train", "optim.lr=.nan"]),
    Case("value-tokenizer-inf", AREA, "an infinite tokenizer learning rate (train-tokenizer --set optim.lr=inf)",
         r"is inf; give a finite number",
         argv=lambda w, u: ["train-tokenizer", "--kind", "vqvae", "--data", w.data / "depth", "--out", "out",
                            "--steps", "1", "--set", "optim.lr=inf"]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case, check):
    check(case)


def test_counts_accept_their_bounds():
    import argparse

    from open4m.cli.commands import at_least

    assert at_least(1)("1") == 1 and at_least(0)("0") == 0 and at_least(8)("64") == 64
    with pytest.raises(argparse.ArgumentTypeError, match="'1.5' is not a whole number"):
        at_least(1)("1.5")


def test_top_p_zero_still_means_off_and_numbers_in_hyphen_strings_parse():
    """0 turns nucleus filtering off (documented); `3.0-0.5` is two values, `-1.0` one negative value."""
    from open4m.generation.schedules import build_schedule

    schedule = build_schedule("rgb@224->tok_depth@224->tok_normal@224", top_p=0, temps="3.0-0.5")
    steps = [s for s in schedule if s.target == "tok_depth@224"]
    assert steps[0].top_p == 0.0 and steps[0].temperature == 3.0
