"""The world model's card (a bundle's `README.md`), built from what the bundle records about itself.

Why generated: every bundle `open4m demo --train` writes needs a card, and the card must stay in
step with `world.json` (spec, recipe, timings, evaluation). What only a person can say about one
model (a loss curve read off the logs, what the numbers mean) travels in `world.json`'s `notes`.
The result is the ``card`` argument of `FourM.save_pretrained` (:mod:`open4m.card` lays it out).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from ..config import merged
from ..data.masking import led_modalities
from ..data.synthetic.world import IMAGE_MODALITIES, SEQUENCE_MODALITIES, WorldSpec

# What each `fourm.data.mixture` of the recipe means, for readers of the card.
_MIXTURES = {
    "rgb-to-all": "the 4M-7 structure: a share {share:g} of the samples take their inputs from the RGB pixels alone, "
                  "the rest from a symmetric Dirichlet({alpha}) over everything",
    "symmetric": "a symmetric Dirichlet({alpha}) over every modality for inputs and targets",
}


def _biased_part(key: str, share: float) -> str:
    led = led_modalities(key)
    if len(led) == 1:
        part = " (4M's caption-biased part)" if "caption" in key else ""
        return f"a share {share:g} whose input is `{key}` alone{part}"
    return f"a share {share:g} whose input is {' and '.join(f'`{m}`' for m in led)} together"


def card_info(spec: WorldSpec, model: Any, tokenizers: Mapping[str, Any], text_tok: Any,
              info: Mapping[str, Any]) -> dict[str, Any]:
    """Description, training data, metrics and notes of a world model, for `FourM.save_pretrained(card=...)`."""
    recipe = yaml.safe_load(info.get("recipe") or "{}") or {}
    evaluation = info.get("eval") or {}
    card: dict[str, Any] = {
        "description": _description(spec, model, tokenizers, text_tok, recipe, info.get("timings") or {},
                                    info.get("device")),
        "data": _data(spec, int(info.get("train_scenes", 0)), recipe),
        "tags": ["world-model", "procedural-data", "toy"],
    }
    if evaluation.get("metrics"):
        card["metrics"] = _metric_rows(evaluation["metrics"], evaluation.get("intervals") or {})
    notes = [_eval_note(evaluation)] if evaluation else []
    if info.get("comparison"):
        notes.append(_comparison(info["comparison"]))
    notes += [info["notes"]] if info.get("notes") else []
    if notes:
        card["notes"] = "\n\n".join(notes)
    return card


def _params(module: Any) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


_DEVICES = {"cpu": "the CPU", "cuda": "a CUDA GPU", "mps": "Apple's MPS"}


def _tokenizer_sizes(tokenizers: Mapping[str, Any]) -> str:
    """Each image tokenizer's encoder and decoder as its own config states them, modalities of one size together:
    a recipe may size one modality's tokenizer apart (`tokenizers.per_modality`), so no recipe-wide figure holds."""
    groups: dict[str, dict[str, float]] = {}
    for b in IMAGE_MODALITIES:
        c = tokenizers[b].config
        parts = [f"{c.enc_type} encoder" + (f" {c.enc_depth} block(s) dim {c.enc_dim}" if c.enc_type == "vit" else ""),
                 f"{c.dec_type} decoder" + (f" {c.dec_depth} block(s) dim {c.dec_dim}" if c.dec_type == "vit" else "")]
        groups.setdefault(", ".join(parts), {})[b] = _params(tokenizers[b])
    out = []
    for arch, sizes in groups.items():
        low, high = f"{min(sizes.values()):.2f}", f"{max(sizes.values()):.2f}"
        size = f"{low if low == high else f'{low}-{high}'} M params" + (" each" if len(sizes) > 1 else "")
        out.append(f"{' / '.join(sizes)}: {arch}, {size}")
    return "; ".join(out)


def _grids(spec: WorldSpec) -> str:
    """The token grids of the image modalities: one phrase when they share patch_size, else each that differs."""
    s, p = spec.image_size, spec.patch_size
    own = "; ".join(f"{b} {s // q}x{s // q}" for b, q in spec.token_patch_sizes.items())
    return f"{s // p}x{s // p} tokens" + (f"; {own}" if own else "")


def _patches(spec: WorldSpec) -> str:
    own = ", ".join(f"{b} {q} px" for b, q in spec.token_patch_sizes.items())
    return f"{spec.patch_size} px patches" + (f" ({own})" if own else "")


def _description(spec: WorldSpec, model: Any, tokenizers: Mapping[str, Any], text_tok: Any,
                 recipe: Mapping[str, Any], timings: Mapping[str, float], device: str | None) -> str:
    s, p, c = spec.image_size, spec.patch_size, model.config
    on = f" on {_DEVICES.get(device, device)}" if device else ""
    start = ((recipe.get("fourm") or {}).get("model") or {}).get("init_from")
    minutes = (f", {timings['fourm_s'] / 60:.0f} minutes of FourM training{on}{' after its start' if start else ''}"
               if "fourm_s" in timings else "")
    preset = ((recipe.get("fourm") or {}).get("model") or {}).get("preset")
    codebooks = " / ".join(f"{spec.codebook_sizes[b]} ({b})" for b in IMAGE_MODALITIES)
    extra = (recipe.get("text") or {}).get("extra_words")
    rows = [
        ["FourM", f"{f'preset `{preset}`, ' if preset else ''}dim {c.dim}, {c.encoder_depth} encoder + "
                  f"{c.decoder_depth} decoder blocks, {c.num_heads} heads, patch {p}",
         f"{_params(model):.2f} M params"],
        ["modalities", f"`{spec.rgb_pixels}` (pixels in [-1, 1], input only, {spec.rgb_patch_size} px patches: "
                       f"{s // spec.rgb_patch_size}x{s // spec.rgb_patch_size} tokens), "
                       f"`tok_{{{','.join(IMAGE_MODALITIES)}}}@{s}` ({_grids(spec)}), "
                       f"`{{{','.join(spec.sequence_modalities)}}}` (text)", ""],
        ["image tokenizers", f"VQ-VAE per modality, {_patches(spec)}, codebooks {codebooks}; "
                             + _tokenizer_sizes(tokenizers),
         f"{sum(_params(tokenizers[b]) for b in IMAGE_MODALITIES):.2f} M params in all"],
        ["text", "WordPiece in the 4M id layout" + (f" + {extra} world words" if extra else "")
         + f" ({text_tok.vocab_size} ids), one tokenizer for every sequence modality", ""],
    ]
    table = "\n".join(["| part | what | size |", "| --- | --- | --- |"] + ["| " + " | ".join(r) + " |" for r in rows])
    taken = (recipe.get("tokenizers") or {}).get("from_bundle")
    origin = (f" Its first FourM stage starts from the weights of `{_shown(start)}` (`fourm.model.init_from`), so "
              f"its training adds to that model's" + (f", with the text vocabulary and the tokenizers of "
                                                     f"`{_shown(taken)}` but those the recipe retrains" if taken else "")
              + "." if start else "")

    def modality(key: str) -> str:  # a world key's modality in the bundle
        return spec.tok(key) if key in IMAGE_MODALITIES else SEQUENCE_MODALITIES[key]

    chain = spec.caption_rgb_chain
    given = [modality(k) for k in ("caption", *chain)]  # what the RGB of caption -> RGB is drawn from
    weights = {modality(k): w for k, w in spec.caption_rgb_guidance.items()}
    rgb_weights = ",".join(f"{n}={w:g}" for n, w in weights.items())
    # one guidance value per target: the links unguided (1), the RGB with the weights, which may name the links
    cfg = (", cfg=" + (f"[{', '.join(['1'] * len(chain))}, \"{rgb_weights}\"]" if chain else f"\"{rgb_weights}\"")
           if weights else "")
    call = f"`open4m.pipeline(\"{'->'.join([*given, spec.tok('rgb')])}\", model=FOLDER{cfg})`"
    chained = (f" A picture is drawn from a caption through {', then '.join(chain)} (chained generation, each from the "
               f"caption and what was drawn before it), as the eval and `open4m demo` draw it: {call}." if chain else "")
    if weights:
        chained += (" The RGB is drawn with classifier-free guidance on each condition (one pass per condition, "
                    "uncond + sum_k w_k (cond_k - uncond)), weights " + ", ".join(f"`{n}` {w:g}" for n, w in weights.items())
                    + " (the others 1" + ("; the links unguided)" if chain else f"): {call}") + ".")
    return (f"A small 4M (FourM encoder-decoder over discrete tokens) trained {'' if start else 'from scratch '}by "
            f"open4m's own pipeline "
            f"on the procedural world (`open4m.data.synthetic`). It exists so that `open4m demo` shows any-to-any "
            f"prediction end to end on a laptop CPU without downloads. It is a toy: {s} px scenes, "
            f"{_params(model):.1f} M parameters{minutes}.{origin} It is not a model of real images.\n\n"
            f"On world scenes: `open4m demo --model FOLDER` (every task, with metrics), "
            f"`open4m generate --model FOLDER --input rgb=scene.png --target depth,world_caption --out out/`, or "
            f"`open4m.pipeline(\"rgb->depth\", model=FOLDER)` in Python.{chained}\n\n{table}\n\n"
            f"Weights: float16 safetensors (sincos tables float32), loaded as float32. `model.safetensors` describes "
            f"the model's own modalities (the pixel normalisation included), so a fresh process loads the folder "
            f"without the world code; `world.json` keeps the world spec, the recipe (`open4m demo --train`), the "
            f"timings and the evaluation this card shows.")


#: How the card says the captions list their objects (nothing for the random order every world began with).
_CAPTION_ORDER_TEXT = {"left_to_right": " (objects listed left to right in the image)"}


def _shown(path: str) -> str:
    """A recipe's path as the card names it: a folder on the training machine by its name, anything else as given."""
    return Path(path).resolve().name if Path(path).is_absolute() else path


def _data(spec: WorldSpec, scenes: int, recipe: Mapping[str, Any]) -> str:
    s = spec.image_size
    more = sorted({int(st["scenes"]) for st in recipe.get("stages") or [] if isinstance(st, Mapping) and "scenes" in st}
                  - {scenes})
    if more:  # later FourM stages train on other (usually more) scenes of the same split
        staged = ", ".join(f"{n} (seeds 0..{n - 1})" for n in more)
        scenes_text = f"{scenes} scenes of the `train` split (seeds 0..{scenes - 1}; later FourM stages: {staged})"
    else:
        scenes_text = f"{scenes} scenes of the `train` split (seeds 0..{scenes - 1})"
    text = (f"{scenes_text} rendered at {s}x{s}: RGB, metric depth, "
            f"surface normals, semantic segmentation (9 classes: background, floor, wall, 6 shapes), Canny edges, "
            f"boxes, scene-graph captions{_CAPTION_ORDER_TEXT.get(spec.caption_order, '')}, 4-colour palettes and 11 image-metadata fields. Evaluation uses the "
            f"disjoint `val` split (seeds 10,000,000+); `open4m demo` shows the `test` split.")
    return "\n\n".join([text, *_training(recipe)])


def _training(recipe: Mapping[str, Any]) -> list[str]:
    """The recipe's training settings in one paragraph (none when the bundle kept no recipe)."""
    tok = (recipe.get("tokenizers") or {}).get("train") or {}
    fourm = recipe.get("fourm") or {}
    data, optim, train = fourm.get("data") or {}, fourm.get("optim") or {}, fourm.get("train") or {}
    if not (tok and data and optim and train):
        return []
    mixture = str(data.get("mixture", "symmetric"))
    tokens = int(train["steps"]) * int(data["batch_size"]) * (int(data["input_tokens"]) + int(data["target_tokens"]))
    weights = data.get("target_alphas") or {}
    parts = [_MIXTURES.get(mixture, "").format(alpha=data.get("alpha"), share=float(data.get("rgb_share", 0.5))),
             "target alphas " + ", ".join(f"`{m}` {a}" for m, a in weights.items()) if weights else "",
             *(_biased_part(str(m), float(v)) for m, v in (data.get("biased_shares") or {}).items()),
             *(f"`{m}` shown in part beside them (input alpha {a:g}, the rest a target)"
               for m, a in (data.get("biased_input_alphas") or {}).items())]
    masking = "; ".join(p for p in parts if p)
    own = {b: (c.get("train") or {}).get("steps") for b, c in
           ((recipe.get("tokenizers") or {}).get("per_modality") or {}).items() if isinstance(c, Mapping)}
    steps = f"{tok['steps']} steps" + "".join(f" ({b}: {n})" for b, n in own.items() if n)
    return [f"Training (`open4m demo --train`): tokenizers {steps}, batch {tok['batch_size']}, AdamW "
            f"lr {tok['lr']}, EMA {tok.get('ema_decay')}. FourM: `open4m train` with `data.mixture: {mixture}`"
            f"{f' ({masking})' if masking else ''}, {data['input_tokens']} input + {data['target_tokens']} target "
            f"tokens per sample, batch {data['batch_size']}, {train['steps']} steps ({tokens / 1e6:.1f} M tokens), "
            f"lr {optim['lr']} with {optim.get('warmup', 0)} warm-up steps and cosine decay, EMA "
            f"{train.get('ema_decay')}, {train.get('threads')} threads.{_stages(recipe.get('stages') or [], fourm)}"]


def _stages(stages: list, fourm: Mapping[str, Any]) -> str:
    """The recipe's further FourM stages (warm restarts) in a sentence each."""
    text = ""
    for n, changes in enumerate(stages, start=2):
        stage = merged(fourm, changes)
        optim, train = stage.get("optim") or {}, stage.get("train") or {}
        other = ", ".join(f"`{k}` {v}" for k, v in _dotted({k: v for k, v in changes.items()
                                                             if k not in ("optim", "train", "scenes")}))
        scenes = f" on {changes['scenes']} train scenes" if "scenes" in changes else ""
        text += (f" Stage {n} restarts from stage {n - 1}'s EMA weights with a fresh AdamW{scenes}: {train['steps']} "
                 f"steps, lr {optim['lr']} with {optim.get('warmup', 0)} warm-up steps and cosine decay, seed "
                 f"{train.get('seed')}{f'; it also sets {other}' if other else ''}.")
    return text


def _dotted(changes: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A stage's nested changes as (dotted key, value) pairs, so the card states what a stage sets, not only where."""
    pairs: list[tuple[str, Any]] = []
    for key, value in changes.items():
        if isinstance(value, Mapping):
            pairs += _dotted(value, f"{prefix}{key}.")
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


def _metric_rows(metrics: Mapping[str, Any], intervals: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """`world.json`'s eval metrics as card rows: scalars as "model [95% interval] (baseline b)"; tokenizer round
    trips per modality."""
    rows: dict[str, dict[str, str]] = {}
    for task, result in metrics.items():
        model, baseline = result.get("model") or {}, result.get("baseline") or {}
        if task == "recon":
            for modality, values in model.items():
                rows[f"recon/{modality}"] = {k: _num(v) for k, v in values.items() if _scalar(v)}
            continue
        ci = intervals.get(task) or {}
        rows[task] = {k: _num(v) + (f" [{_num(ci['low'])}, {_num(ci['high'])}]" if ci.get("metric") == k else "")
                      + (f" (baseline {_num(baseline[k])})" if _scalar(baseline.get(k)) else "")
                      for k, v in model.items() if _scalar(v)}
    return rows


def _comparison(rows: list[Mapping[str, Any]]) -> str:
    """The multitask model against single-task specialists trained with the same compute (a table)."""
    head = ["| model | task | metric | value | baseline | train s |", "| --- | --- | --- | --- | --- | --- |"]
    body = [f"| {r['model']} | {r['task']} | {r['metric']} | {_num(r['value'])} | {_num(r['baseline'])} | "
            f"{r['train_s']:.0f} |" for r in rows]
    steps = {r.get("steps") for r in rows} - {None}
    equal = f" for {steps.pop()} steps each" if len(steps) == 1 else ""
    return ("Multitask vs single-task specialists at equal compute (`benchmarks/multitask_vs_specialist.py`): the "
            f"same architecture, batch and token budget trained from scratch{equal}; a specialist reads RGB pixels "
            "and predicts only its own modality.\n\n" + "\n".join(head + body))


def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _num(value: float) -> str:
    return f"{value:.4g}"


def _eval_note(evaluation: Mapping[str, Any]) -> str:
    command = f" (`{evaluation['command']}`)" if evaluation.get("command") else ""
    ci = (" Brackets: the 95% bootstrap interval of each task's headline metric over the scenes."
          if evaluation.get("intervals") else "")
    return (f"Metrics: {evaluation.get('scenes')} scenes of the `{evaluation.get('split')}` split, greedy decoding"
            f"{command}; each trivial baseline (docs/demo.md) is computed on the same scenes. The `recon/*` rows "
            f"are the tokenizers' own round trips, upper bounds for the predictions.{ci}")
