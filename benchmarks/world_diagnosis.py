"""Why the world model's weak tasks are weak: the measurements behind docs/results.md ("Diagnosis").

    python benchmarks/world_diagnosis.py --model RUN/model [--run RUN] [--scenes 64] [--curves curves.png]
    python benchmarks/world_diagnosis.py --guidance-only test --scenes 256   # caption -> RGB guidance alone
    python benchmarks/world_diagnosis.py --bound-only val --scenes 128       # depth + caption -> RGB: bound, colours
    python benchmarks/world_diagnosis.py --caption-bound-only val --scenes 128  # caption -> RGB's PSNR: bound
    python benchmarks/world_diagnosis.py --conditions-only val --scenes 128  # caption -> RGB given more than a caption
    python benchmarks/world_diagnosis.py --context-only val --scenes 64     # RGB loss vs RGB tokens shown

Prints, for a world model bundle (default: the shipped one):
- vocabulary: text tokens per caption and the world's words the WordPiece vocabulary splits into pieces;
- token accuracy per image modality: RGB -> tokens in one greedy MaskGIT step, compared with the
  tokenizer's own encoding of the ground truth (train and val scenes: a gap is overfitting, none is
  under-fitting);
- objects: semseg object-vs-not IoU and the shape accuracy on true object pixels (chance is 1/6), and
  box mAP@50 with and without the class (localisation vs recognition);
- shapes: the multiset F1 of the shapes the boxes read from the photo name against the shapes the
  caption names (where the model's knowledge of shapes is lost on the way to text);
- generation: depth + caption -> RGB's PSNR (mean of 8 samples) split into object pixels and the rest, each
  swapped for the truth or for the set's mean floor / wall / background colour (what each part costs);
- bound: the best depth + caption -> RGB any estimator can reach (renders of each scene's exact objects and camera
  averaged over what depth and caption leave open: floor and wall colour, light; in pixels and through the
  model's RGB tokenizer), the squared error by region (sky, floor, wall, objects) of those, of the model's
  mean of 8 MaskGIT samples and of its posterior mean (the eval's estimate), each with the scene's caption and
  with another scene's, and the floor / wall colours the model draws against the true ones;
- caption bound: the best PSNR any caption -> RGB estimator can reach, approximately: each scene's captioned
  objects placed in layouts drawn from the world's prior (cameras, positions, floor and wall colours, light) that
  list them in the caption's left-to-right order and keep every relation it states, rendered and averaged (a
  draw from the posterior given the caption, to the extent the caption's words constrain it), against the model's
  posterior mean from the caption alone;
- conditions: caption -> RGB read back given the true segmentation, depth or boxes besides the caption (or the
  boxes alone), and chained through segmentation, boxes or boxes then segmentation drawn from the caption, with
  the boxes a caption gives scored as text (which step from a caption to a picture fails);
- context: the RGB tokens' loss given the caption (and the true boxes) and k of the photo's own RGB tokens, for k
  from none to nearly all: the condition of MaskGIT's later steps, whose loss should keep falling as k grows;
  where it stops, the model has not learnt to use that many (its training input budget);
- sampling: semseg mIoU and box mAP@50 for several MaskGIT step counts and temperatures, and caption -> RGB
  read back under classifier-free guidance.
With `--run RUN` (an `open4m demo --train --out RUN` folder) it also draws the per-modality training loss
curves of `RUN/fourm/metrics.jsonl` into `--curves` (needs matplotlib); `--stage N` draws those of a later
stage of the recipe (`RUN/fourm-N`).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def vocabulary(model, samples) -> None:
    tok = model.base.tokenizer(model.sequence_modality("caption"))
    captions = [s["caption"] for s in samples]
    counts = [len(tok.encode(c)) for c in captions]
    words = sorted({w for c in captions for w in re.findall(r"[a-z]+", c.lower())})
    split = [w for w in words if len(tok.encode(w)) > 1]
    limit = model.model.modality_info[model.sequence_modality("caption")].max_tokens - 2
    print(f"vocabulary: {tok.vocab_size} ids; caption tokens mean {np.mean(counts):.1f}, max {max(counts)} "
          f"(the model reads {limit}; {np.mean(np.array(counts) > limit):.0%} of captions cut); "
          f"{len(split)} of {len(words)} words split into pieces{': ' + ', '.join(split[:12]) if split else ''}")


def token_accuracy(model, samples, split: str) -> None:
    from open4m.eval.runner import _at

    rgb = {model.rgb: np.stack(_at(model, "rgb", [s["rgb"] for s in samples], model.rgb))}
    row = []
    for base in ("rgb", "depth", "normal", "semseg", "canny_edge"):
        name = model.image_modality(base)
        if name is None or base == "rgb" and model.image_modality("rgb") is None:
            continue
        truth = model.image_tokens(base, _at(model, base, [s[base] for s in samples], name), name)
        out = model.generate(rgb, name, steps=1)
        pred = out.tokens[name]["tensor"].reshape(truth.shape)
        row.append(f"{base} {float((pred == truth).float().mean()):.3f}")
    print(f"token accuracy ({split}, RGB -> tokens, 1 greedy step): " + ", ".join(row))


def objects(model, samples, split: str) -> None:
    from open4m.eval.runner import _at, _fitted
    from open4m.eval.scoring import score

    rgb = {model.rgb: np.stack(_at(model, "rgb", [s["rgb"] for s in samples], model.rgb))}
    pred = _fitted("semseg", list(model.image("semseg", rgb)), samples)
    p = np.concatenate([x.ravel() for x in pred])
    g = np.concatenate([np.asarray(s["semseg"]).ravel() for s in samples])
    po, go = p >= 3, g >= 3  # classes 0-2: background, floor, wall; 3-8: the six shapes
    miou = score("semseg", pred, samples, 9)[0]["miou"]
    boxes = model.boxes(rgb)
    with_class = score("det", boxes, samples, 0)[0]["map_50"]
    anon = copy.deepcopy(list(samples))
    for s in anon:
        for inst in s["det"]["instances"]:
            inst["class_name"] = "cube"
    anon_boxes = [None if b is None else [replace(x, class_name="cube", alternatives=()) for x in b] for b in boxes]
    without = score("det", anon_boxes, anon, 0)[0]["map_50"]
    print(f"objects ({split}): semseg mIoU {miou:.3f}, object-vs-not IoU {(po & go).sum() / max((po | go).sum(), 1):.3f}, "
          f"shape accuracy on object pixels {(p[go] == g[go]).mean():.3f} (chance 0.167); "
          f"box mAP@50 {with_class:.3f}, class-agnostic {without:.3f}")


def shapes(model, samples) -> None:
    from open4m.eval.captions import SceneCaptionMetrics
    from open4m.eval.runner import _at, read_back_shapes

    rgb = np.stack(_at(model, "rgb", [s["rgb"] for s in samples], model.rgb))
    read = read_back_shapes(model, rgb, samples)[0]
    said = SceneCaptionMetrics()
    for text, s in zip(model.texts("caption", {model.rgb: rgb}), samples):
        said.update(text, s["scene_graph"])
    said_scores = said.compute()
    print(f"shapes (val, from the photo): boxes shape F1 {read['shape_f1']:.3f}, count {read['count_acc']:.3f}; "
          f"caption shape F1 {said_scores['shape_f1']:.3f}, count {said_scores['count_acc']:.3f}")


def generation(model, samples, draws: int = 8) -> np.ndarray:
    """Prints the split below; returns the draws, (scenes, draws, H, W, 3) at the model's size, for `bound`."""
    from open4m.eval.runner import _fitted, _rgb_draws, _rgb_inputs
    from open4m.metrics import reconstruction_metrics

    stacks = _rgb_draws(model, _rgb_inputs(model, [s["caption"] for s in samples], [s["depth"] for s in samples]),
                        draws)
    fitted = _fitted("depthcaption2rgb", [{"samples": st} for st in stacks], samples)
    pred = np.stack([p["samples"].astype(np.float64).mean(0) for p in fitted])
    truth = np.stack([np.asarray(s["rgb"], np.float64) for s in samples])
    seg = np.stack([np.asarray(s["semseg"]) for s in samples])
    objects = seg >= 3  # classes 0-2: background, floor, wall
    class_mean = truth.copy()
    for c in range(3):
        if (seg == c).any():
            class_mean[seg == c] = truth[seg == c].mean(0)
    mean_image = np.broadcast_to(truth.mean(0), truth.shape)

    def psnr(objects_from: np.ndarray, rest_from: np.ndarray) -> float:
        return reconstruction_metrics(np.where(objects[..., None], objects_from, rest_from), truth, 255.0)["psnr"]

    print(f"generation (val, depth + caption -> RGB, mean of {draws} samples; objects are {objects.mean():.1%} of "
          f"the pixels): model {psnr(pred, pred):.2f} dB; true objects + model rest {psnr(truth, pred):.2f}; "
          f"model objects + class-mean rest {psnr(pred, class_mean):.2f}; true objects + class-mean rest "
          f"{psnr(truth, class_mean):.2f}; true objects + mean image {psnr(truth, mean_image):.2f}; "
          f"mean image {psnr(mean_image, mean_image):.2f}")
    return stacks


def psnr_db(estimate, truth: np.ndarray, inflation: float = 1.0) -> float:
    """PSNR of 0-255 images, the squared error divided by `inflation` first: 1 + 1/K extrapolates the mean of K
    renders to infinitely many, taking the renders' spread around their mean to be as large as the error left."""
    mse = float(np.mean((np.asarray(estimate, np.float64) - truth) ** 2)) / inflation
    return 10 * np.log10(255.0**2 / mse)


def bound(model, samples, split: str, draws: int = 8, drawn: np.ndarray | None = None) -> None:
    """What depth + caption -> RGB could reach and where the model falls short; the samples must be the first
    of `split` (their scenes are re-rendered from their seeds). `drawn`: the model's draws from the scenes' own
    captions where `generation` made them already (seeds 0 .. draws-1)."""
    from open4m.data.synthetic import seed_for
    from open4m.data.synthetic.render import render
    from open4m.data.synthetic.scene import sample_scene
    from open4m.eval.runner import RGB_ESTIMATE_DRAWS, _rgb_draws, _rgb_inputs

    truth = np.stack([np.asarray(s["rgb"], np.float64) for s in samples])
    seg = np.stack([np.asarray(s["semseg"]) for s in samples])
    size = truth.shape[1:3]

    def psnr(estimate, inflation: float = 1.0) -> str:
        return f"{psnr_db(estimate, truth, inflation):.2f}"

    def regions(estimate) -> str:  # squared error per true region, as a share of the whole image's, [-1, 1] units
        err = ((np.asarray(estimate, np.float64) - truth) / 127.5) ** 2
        parts = {"sky": seg == 0, "floor": seg == 1, "wall": seg == 2, "objects": seg >= 3}
        return ", ".join(f"{name} {err[mask].sum() / err.size:.4f}" for name, mask in parts.items())

    pixels, tokens = [], []
    for i in range(len(samples)):  # the nuisances of `draws` other scenes: draws from their prior
        scene = sample_scene(seed_for(split, i))
        others = [sample_scene(10_000_000 + i * draws + k) for k in range(draws)]
        renders = [render(replace(scene, floor_color=o.floor_color, wall_color=o.wall_color, light_dir=o.light_dir),
                          size).rgb for o in others]
        pixels.append(np.mean(renders, 0))
        tokens.append(model.round_trip("rgb", renders).astype(np.float64).mean(0))
    round_trip = model.round_trip("rgb", [s["rgb"] for s in samples])
    mean_image = np.broadcast_to(truth.mean(0), truth.shape)
    print(f"bound ({split}, depth + caption -> RGB, {len(samples)} scenes; the floor is the mean image + 2 dB): "
          f"mean image {psnr(mean_image)} dB; the best estimate from the scene's objects and camera, mean of {draws} "
          f"renders {psnr(pixels)} (of infinitely many {psnr(pixels, 1 + 1 / draws)}); the same through the model's "
          f"RGB tokenizer {psnr(tokens)}; the tokenizer's round trip of the photo {psnr(round_trip)}")
    captions, depths = [s["caption"] for s in samples], [s["depth"] for s in samples]
    inputs = {"the scene's caption": _rgb_inputs(model, captions, depths),
              "another scene's caption": _rgb_inputs(model, captions[1:] + captions[:1], depths)}
    if drawn is None:
        drawn = _rgb_draws(model, inputs["the scene's caption"], draws)
    stacks = {"the scene's caption": drawn,
              "another scene's caption": _rgb_draws(model, inputs["another scene's caption"], draws)}
    estimates = {c: model.image_estimate("rgb", given, draws=RGB_ESTIMATE_DRAWS) for c, given in inputs.items()}
    print("  squared error by true region (shares of the image's mean; sky, floor, wall, objects):")
    for label, estimate in (("mean image", mean_image), ("best estimate", pixels), ("photo's round trip", round_trip),
                            *((f"model with {c}, mean of {draws} MaskGIT samples", st.astype(np.float64).mean(1))
                              for c, st in stacks.items()),
                            *((f"model with {c}, its posterior mean ({RGB_ESTIMATE_DRAWS} draws, the eval's)", e)
                              for c, e in estimates.items())):
        print(f"    {label}: {psnr(estimate)} dB = {regions(estimate)}")
    for name, cls in (("floor", 1), ("wall", 2)):
        true, colours = [], []  # per scene with enough of the region: its true colour, each draw's
        for image, draws_of_scene, mask in zip(truth, drawn.astype(np.float64), seg == cls):
            if mask.sum() >= 50:
                true.append(image[mask].mean(0))
                colours.append(draws_of_scene[:, mask].mean(1))
        scenes, true, drawn_colours = len(true), np.stack(true), np.stack(colours)
        corr = [np.corrcoef(drawn_colours.mean(1)[:, c], true[:, c])[0, 1] for c in range(3)]
        print(f"  {name} colour ({scenes} scenes): correlation of the mean of {draws} with the truth R/G/B "
              f"{', '.join(f'{c:.2f}' for c in corr)}; spread of the {draws} draws of a scene "
              f"{drawn_colours.std(1).mean():.1f}, of the true colours {true.std(0).mean():.1f} (0-255)")


def caption_layouts(sample, draws: int, seed: int, tries: int = 400) -> list:
    """`draws` scenes the caption of `sample` describes as well as its own: layouts from the world's prior (object
    count = the caption's), the caption's objects assigned to them left to right (in the camera's view), kept only
    where every relation the caption states holds; for an empty room, prior rooms emptied. Fewer when `tries` prior
    layouts do not give enough."""
    from open4m.data.synthetic.captions import parse_caption, relations
    from open4m.data.synthetic.scene import SceneObject, sample_scene

    def placed_at(said_object: dict, x: float = 0.0, z: float = 0.0, yaw: float = 0.0) -> SceneObject:
        return SceneObject(**said_object, x=x, z=z, yaw=yaw)

    def left_to_right(scene) -> list[int]:  # object indices by the image column of their centres
        where = scene.camera.to_camera(np.stack([o.centre for o in scene.objects]))
        return sorted(range(len(scene.objects)), key=lambda i: where[i, 0] / where[i, 2])

    graph = sample["scene_graph"]
    said = parse_caption(sample["caption"])
    phrase = [placed_at(o).phrase for o in said["objects"]]
    stated = {(phrase.index(placed_at(r["subject"]).phrase), r["relation"], phrase.index(placed_at(r["object"]).phrase))
              for r in said["relations"]}
    if len(phrase) != len(graph["visible"]):
        raise ValueError(f"scene {graph['seed']}: its caption names {len(phrase)} objects, {len(graph['visible'])} "
                         f"are visible")
    kept = []
    for k in range(tries):
        if len(kept) == draws:
            break
        layout = sample_scene(seed + k, num_objects=max(len(phrase), 1))
        if not phrase:  # "The room is empty."
            kept.append(replace(layout, objects=()))
            continue
        if len(layout.objects) != len(phrase):
            continue
        slots = left_to_right(layout)
        objects = [None] * len(phrase)
        for said_object, slot in zip(said["objects"], slots):
            prior = layout.objects[slot]
            objects[slot] = placed_at(said_object, prior.x, prior.z, prior.yaw)
        scene = replace(layout, objects=tuple(objects))
        if left_to_right(scene) != slots:  # the caption's objects are of other heights: a near tie may swap
            continue
        order = {slot: n for n, slot in enumerate(slots)}  # layout index -> the caption's object
        if stated <= {(order[i], rel, order[j]) for i, rel, j in relations(scene, list(range(len(phrase))))}:
            kept.append(scene)
    return kept


def caption_bound(model, samples, split: str, draws: int = 32) -> None:
    """Caption -> RGB scored by PSNR, as depth + caption -> RGB is: the mean image, the model's posterior mean from
    the caption alone (the eval's estimate), and the best any estimator can approximately reach (the mean of
    `draws` renders of scenes the caption describes, `caption_layouts`)."""
    from open4m.data.synthetic.render import render
    from open4m.eval.runner import RGB_ESTIMATE_DRAWS, _rgb_inputs

    truth = np.stack([np.asarray(s["rgb"], np.float64) for s in samples])
    size = truth.shape[1:3]

    def psnr(estimate, inflation: float = 1.0) -> float:
        return psnr_db(estimate, truth, inflation)

    best, counts = [], []
    for i, sample in enumerate(samples):
        scenes = caption_layouts(sample, draws, seed=20_000_000 + i * 1000)
        counts.append(len(scenes))
        best.append(np.mean([render(scene, size).rgb for scene in scenes], 0))
    estimate = model.image_estimate("rgb", _rgb_inputs(model, [s["caption"] for s in samples]),
                                    draws=RGB_ESTIMATE_DRAWS)
    mean_image = np.broadcast_to(truth.mean(0), truth.shape)
    print(f"caption bound ({split}, caption -> RGB by PSNR, {len(samples)} scenes; renders per scene: mean "
          f"{np.mean(counts):.1f}, min {min(counts)} of {draws})")
    print("| estimate of the photo from its caption | PSNR (dB) |\n| --- | --- |")
    print(f"| the mean image / + 2 dB | {psnr(mean_image):.2f} / {psnr(mean_image) + 2:.2f} |")
    print(f"| the model's posterior mean ({RGB_ESTIMATE_DRAWS} draws, as the eval scores depth + caption -> RGB) | "
          f"{psnr(estimate):.2f} |")
    print(f"| best estimate, mean of {draws} renders of scenes the caption describes / of infinitely many | "
          f"{psnr(best):.2f} / {psnr(best, 1 + 1 / draws):.2f} |")


def sampling(model, samples) -> None:
    from open4m.eval.runner import _at, _fitted, _rgb_draws, _rgb_from, _rgb_inputs, read_back_shapes
    from open4m.eval.scoring import score

    rgb = {model.rgb: np.stack(_at(model, "rgb", [s["rgb"] for s in samples], model.rgb))}
    print("sampling (val): steps temperature -> semseg mIoU")
    for steps, temp in ((1, 0.0), (4, 0.0), (8, 0.0), (16, 0.0), (8, 0.5), (8, 1.0)):
        pred = _fitted("semseg", list(model.image("semseg", rgb, steps=steps, temperature=temp, seed=0)), samples)
        print(f"  {steps:2d} {temp:.1f} -> {score('semseg', pred, samples, 9)[0]['miou']:.3f}")
    truth = [np.asarray(s["rgb"]) for s in samples]
    mean_image = next(iter(score("depthcaption2rgb", truth, samples, 9)[1].values()))["psnr"]
    print(f"sampling (val): RGB generation steps temperature -> depth+caption->RGB PSNR of one sample / of the mean "
          f"of 4 (mean image {mean_image:.2f} dB), caption->RGB shape F1")
    captions = [s["caption"] for s in samples]
    inputs = _rgb_inputs(model, captions, [s["depth"] for s in samples])
    for steps, temp in ((8, 0.0), (8, 0.5), (8, 1.0), (16, 0.5)):
        draws = _rgb_draws(model, inputs, 4, steps=steps, temperature=temp)
        psnr = score("depthcaption2rgb", [{"samples": d} for d in draws], samples, 9)[0]
        f1 = read_back_shapes(model, _rgb_from(model, captions, steps=steps, temperature=temp), samples)[0]["shape_f1"]
        print(f"  {steps:2d} {temp:.1f} -> {psnr['psnr_sample']:.2f} / {psnr['psnr']:.2f} dB, shape F1 {f1:.3f}")
    caption_guidance(model, samples)
    print("sampling (val): box temperature -> mAP@50")
    for temp in (0.0, 0.5):
        print(f"  {temp:.1f} -> {score('det', model.boxes(rgb, temperature=temp), samples, 0)[0]['map_50']:.3f}")


def curves(metrics: Path, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--curves needs matplotlib: pip install matplotlib") from None
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    keys = sorted({k for r in rows for k in r if k.startswith("train/loss/")})
    fig, ax = plt.subplots(figsize=(8, 5))
    for k in keys:
        pts = [(r["step"], r[k]) for r in rows if k in r]
        steps, values = zip(*pts)
        kernel = np.ones(5) / 5  # 5-log-window moving average: each logged loss is one batch
        smooth = np.convolve(values, kernel, mode="valid") if len(values) > 5 else values
        ax.plot(steps[len(steps) - len(smooth):], smooth, label=k.removeprefix("train/loss/"))
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (per target token)")
    ax.set_yscale("log")
    ax.set_title(f"FourM training loss per modality ({metrics.parent.parent.name}/{metrics.parent.name})")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"curves: {out}")


def caption_guidance(model, samples, scales=(1.0, 2.0, 3.0, 4.0), temperatures=(1.0, 0.5)) -> None:
    """Caption -> RGB read back under classifier-free guidance (8 MaskGIT steps, seed 0): guidance draws more
    objects, in another scene's image too, so the margin over that baseline is what to compare."""
    from open4m.eval.runner import read_back_shapes

    cap, target = model.sequence_modality("caption", output=False), model.image_modality("rgb")
    condition = {cap: model.text_condition("caption", [s["caption"] for s in samples])}
    print("sampling: caption -> RGB guidance temperature -> shape F1, count accuracy, another scene's F1")
    for temp in temperatures:
        for cfg in scales:
            out = model.base.with_spec(f"{cap}->{target}", steps=8, temps=temp, cfg=cfg)(condition, seed=0)
            drawn = model.forms.from_model("rgb", out.decoded[target], model.tokenizer(target))
            scores, base = read_back_shapes(model, drawn, samples)
            other = base["shape_f1"]
            print(f"  {cfg:3.1f} {temp:.1f} -> {scores['shape_f1']:.3f}, {scores['count_acc']:.3f}, {other:.3f} "
                  f"(margin {scores['shape_f1'] - other:+.3f})")


def caption_conditions(model, samples, batch: int = 32) -> None:
    """Caption -> RGB read back when the model is given more than the caption (the truth of segmentation, depth
    or boxes) or draws an intermediate from it first (chained generation): whether its RGB tokens can carry the
    floor's margin at all, and which step from a caption to a picture loses it. Seed 0, 8 steps at temperature
    1 for every image target, boxes autoregressive; the RGB with the guidance the model's spec gives caption ->
    RGB on the conditions it weights (`caption_rgb_guidance`), as the eval draws it; `batch` scenes per call, as
    the measurements in docs/results.md were drawn. Each row's margin is over the same recipe applied to another
    scene."""
    from open4m.data.synthetic.world import sequence_text
    from open4m.eval.runner import add_condition, draw_link, read_back_shapes
    from open4m.eval.scoring import score

    # An intermediate is fixed by its chunk, the true conditions and the chain up to it (seed 0): rows that share
    # a chain's start (caption -> boxes -> ...) and the boxes-as-text row draw it once.
    intermediates: dict[tuple, list[str] | np.ndarray] = {}

    def drawn(start: int, given: tuple[str, ...], chain: tuple[str, ...], scheme: str) -> np.ndarray:
        chunk = samples[start:start + batch]
        inputs: dict = {}
        for key in given:  # the truth of each given condition
            add_condition(model, key, [sequence_text("det", s) if key == "det" else s[key] for s in chunk], inputs)
        for k, base in enumerate(chain):  # each intermediate is drawn from every condition so far and joins them
            key = (start, given, chain[:k + 1])
            if key not in intermediates:
                intermediates[key] = draw_link(model, base, inputs)
            add_condition(model, base, intermediates[key], inputs)
        return model.image("rgb", inputs, steps=8, temperature=1.0, seed=0, scheme=scheme,
                           cfg=model.caption_rgb_cfg(inputs))

    rows = [("the photo's round trip (the tokens' cap)", None)]
    rows += [(label, (given, chain, scheme)) for label, given, chain, scheme in (
        ("caption alone", ("caption",), (), "maskgit"),
        ("caption, random order (ROAR)", ("caption",), (), "roar"),
        ("caption + true segmentation", ("caption", "semseg"), (), "maskgit"),
        ("true segmentation alone", ("semseg",), (), "maskgit"),
        ("caption + true depth", ("caption", "depth"), (), "maskgit"),
        ("caption + true boxes", ("caption", "det"), (), "maskgit"),
        ("true boxes alone", ("det",), (), "maskgit"),
        ("true boxes -> segmentation -> RGB", ("det",), ("semseg",), "maskgit"),
        ("caption -> segmentation -> RGB", ("caption",), ("semseg",), "maskgit"),
        ("caption -> boxes -> RGB", ("caption",), ("det",), "maskgit"),
        ("caption -> boxes -> segmentation -> RGB", ("caption",), ("det", "semseg"), "maskgit"))]
    print("caption -> RGB given more than the caption -> shape F1, count accuracy, another scene's F1 (margin)")
    for label, how in rows:
        if how is None:
            images = model.round_trip("rgb", [s["rgb"] for s in samples])
        else:
            images = np.concatenate([drawn(i, *how) for i in range(0, len(samples), batch)])
        scores, base = read_back_shapes(model, images, samples)
        other = base["shape_f1"]
        print(f"  {label:42s} -> {scores['shape_f1']:.3f}, {scores['count_acc']:.3f}, {other:.3f} "
              f"(margin {scores['shape_f1'] - other:+.3f})")
    # the chains' first step on its own: the shapes the boxes drawn from the caption name, read as text
    boxes = [t for i in range(0, len(samples), batch) for t in intermediates[(i, ("caption",), ("det",))]]
    said, base = score("caption2rgb", [(None, t) for t in boxes], samples, 0)
    other = next(iter(base.values()))["shape_f1"]
    print(f"  {'(the boxes drawn from the caption, as text)':42s} -> {said['shape_f1']:.3f}, {said['count_acc']:.3f}, "
          f"{other:.3f} (margin {said['shape_f1'] - other:+.3f})")


def rgb_context(model, samples, shown=(0, 32, 64, 96, 128, 160, 192, 224, 248), batch: int = 16) -> None:
    """The RGB tokens' loss given the caption (and the true boxes) and `k` of the photo's own RGB tokens at random
    places, on the tokens left: what each MaskGIT step after the first asks, with ever more of the grid drawn. With
    more tokens shown, each left has more known neighbours, so a model that uses them has its loss fall to the
    last step. The sequences and the k tokens all go through the encoder: a model trained with N input tokens has
    seen few samples where they add up to more than N, and past that its loss stops falling (docs/results.md)."""
    from open4m.data.masking import collate
    from open4m.data.masking.assembly import _image_entry
    from open4m.data.synthetic.world import sequence_text
    from open4m.eval.runner import add_condition

    name = model.image_modality("rgb")
    truth = model.image_tokens("rgb", [s["rgb"] for s in samples])
    n_scenes, grid = truth.shape
    shown = [k for k in shown if k < grid]
    columns = {}
    for given in (("caption", "det"), ("caption",)):
        inputs: dict = {}
        for key in given:
            add_condition(model, key, [sequence_text("det", s) if key == "det" else s[key] for s in samples], inputs)
        pipe = model.pipeline(list(inputs), name, steps=8, temperature=1.0)
        conditions, _ = pipe.tokenize(inputs)
        rows = []
        for k in shown:
            places = torch.rand(n_scenes, grid, generator=torch.Generator().manual_seed(k)).argsort(dim=1)
            total, count, encoder = 0.0, 0, []
            for i in range(0, n_scenes, batch):
                mod_dict = pipe.sampler.prepare({c: v[i:i + batch] for c, v in conditions.items()}, pipe.schedule)
                # the RGB laid out as the masker lays out training samples: k shown, the rest targets that attend
                # to each other (as MaskGIT's queries do)
                mod_dict[name] = collate([{name: _image_entry(t, grid, p[:k].numpy(), p[k:].numpy())}
                                          for t, p in zip(truth[i:i + batch], places[i:i + batch])])[name]
                visible = sum((~e["input_mask"]).sum(dim=1) for e in mod_dict.values())
                encoder.append(visible.float())
                with torch.no_grad():
                    loss, _ = model.model(mod_dict, int(visible.max()), grid - k)
                total, count = total + float(loss) * len(visible), count + len(visible)
            rows.append((float(torch.cat(encoder).mean()), total / count))
        columns["+".join(given)] = rows
    print("RGB token loss (nats) on the tokens left, given the caption (+ true boxes) and k RGB tokens at random places")
    print(f"{'k shown':>8s}  " + "  ".join(f"{c + ' (encoder tokens)':>30s}" for c in columns))
    for j, k in enumerate(shown):
        print(f"{k:8d}  " + "  ".join(f"{rows[j][1]:17.3f} ({rows[j][0]:5.0f} tokens)" + " " * 5
                                      for rows in columns.values()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a world model bundle (default: the shipped one)")
    ap.add_argument("--run", default=None, help="an `open4m demo --train --out RUN` folder: draw its loss curves")
    ap.add_argument("--curves", default="curves.png", help="where the loss curves go")
    ap.add_argument("--stage", type=int, default=1, help="whose loss curves --run draws: 1 the recipe's `fourm`, "
                    "N >= 2 its stage N (`fourm-N`)")
    ap.add_argument("--scenes", type=int, default=64, help="scenes per split")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-sampling", action="store_true", help="skip the sampling sweep (the slowest part)")
    ap.add_argument("--bound-only", default=None, metavar="SPLIT",
                    help="only depth + caption -> RGB's bound and what the model draws, on --scenes scenes of SPLIT")
    ap.add_argument("--caption-bound-only", default=None, metavar="SPLIT",
                    help="only caption -> RGB's PSNR against the best any estimator reaches, on --scenes scenes of SPLIT")
    ap.add_argument("--conditions-only", default=None, metavar="SPLIT",
                    help="only caption -> RGB given more than the caption, on --scenes scenes of SPLIT")
    ap.add_argument("--context-only", default=None, metavar="SPLIT",
                    help="only the RGB tokens' loss against how many of them are shown, on --scenes scenes of SPLIT")
    ap.add_argument("--guidance-only", default=None, metavar="SPLIT",
                    help="only the caption -> RGB guidance sweep, on --scenes scenes of SPLIT (val, test, train)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from open4m.eval.models import EvalModel
    from open4m.eval.runner import load_samples

    model = EvalModel.load(args.model)
    sections = {"conditions_only": lambda samples, split: caption_conditions(model, samples),
                "guidance_only": lambda samples, split: caption_guidance(model, samples),
                "bound_only": lambda samples, split: bound(model, samples, split, drawn=generation(model, samples)),
                "caption_bound_only": lambda samples, split: caption_bound(model, samples, split),
                "context_only": lambda samples, split: rgb_context(model, samples)}
    for flag, section in sections.items():  # one section alone, on --scenes scenes of the split it names
        split = getattr(args, flag)
        if split:
            print(f"config: model={args.model or 'shipped'} scenes={args.scenes} of {split} "
                  f"threads={args.threads} torch={torch.__version__}")
            section(load_samples(limit=args.scenes, split=split, image_size=model.image_size,
                                 caption_order=model.caption_order), split)
            return
    # the scenes at the model's own size, as `open4m eval` renders them (not resized from 128 px)
    val = load_samples(limit=args.scenes, split="val", image_size=model.image_size, caption_order=model.caption_order)
    train = load_samples(limit=args.scenes, split="train", image_size=model.image_size,
                         caption_order=model.caption_order)
    print(f"config: model={args.model or 'shipped'} scenes={args.scenes} per split (train scenes are the first "
          f"ones the recipe trains on) threads={args.threads} torch={torch.__version__}")
    vocabulary(model, train)
    for split, samples in (("train", train), ("val", val)):
        token_accuracy(model, samples, split)
        objects(model, samples, split)
    shapes(model, val)
    bound(model, val, "val", drawn=generation(model, val))
    caption_conditions(model, val)
    if not args.no_sampling:
        sampling(model, val)
    if args.run:
        from open4m.recipes.world import stage_folder

        curves(Path(args.run) / stage_folder(args.stage) / "metrics.jsonl", Path(args.curves))


if __name__ == "__main__":
    main()
