"""`open4m generate`: any-to-any generation from files and text, written to PNGs and JSON.

    open4m generate --model EPFL-VILAB/4M-21_B --input rgb=photo.jpg --target depth,normal,semseg,caption

`--model` is a released name (`open4m info --pretrained`), a Hub id, or a local file or folder.
Targets are generated in the order given, each conditioned on the inputs and on every target
before it. Each modality's tokenizer is found on first use: the model's own folder (models saved
by open4m list theirs), else the released tokenizer the registry names, fetched through the
Hugging Face cache (`HF_HUB_OFFLINE=1` works once it is there). `--tokenizers` overrides: a folder
of tokenizers named by modality (`tok_depth@224`, `tok_depth` or `depth`, as a folder,
`.safetensors` or `.json`; `text`/`tokenizer.json`/`text_tokenizer.json` for sequences;
`sam_mask` for the SAM instance masks, drawn with `--dense`), or `NAME=PATH_OR_ID` for one modality
(`NAME=none` keeps that modality's tokens undecoded).
Decoding options left unset follow the official demo for official modalities (`--preset auto`).
`--estimate DRAWS` writes each image target's least-squares estimate (the model's posterior mean) instead of
a sample: what a squared-error score such as PSNR rewards.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

from open4m.errors import ConfigError, NotFound

from . import add_overwrite_argument, at_least, check_output, path_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate modalities from others with a FourM model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a released name, a Hub id, or a FourM .safetensors file / folder")
    add_tokenizer_option(p)
    p.add_argument("--input", action="append", default=[], metavar="NAME=VALUE",
                   help="a condition: rgb=photo.jpg, caption='a dog', tok_depth=depth.png (repeatable)")
    p.add_argument("--target", required=True, help="comma-separated targets, generated in this order")
    p.add_argument("--preset", choices=["auto", "demo", "open4m"], default="auto",
                   help="defaults for the options below: the official demo's per-modality settings (demo), open4m's "
                        "(MaskGIT 8 cosine steps, temperature 1, no guidance), or demo for official modalities (auto)")
    p.add_argument("--schemes", help="per-target decoding scheme(s): maskgit, roar, autoregressive")
    p.add_argument("--tokens", help="tokens to generate per target (default: all; sequences: the most)")
    p.add_argument("--steps", help="decoding steps (one value or one per target, hyphen-separated)")
    p.add_argument("--token-schedules", help="cosine or linear: how many tokens each MaskGIT step commits")
    p.add_argument("--temps", help="temperature(s), e.g. 1.0 or 3.0-0.5")
    p.add_argument("--temp-schedules", help="constant, linear or onex:MIN:POWER")
    p.add_argument("--cfg", help="classifier-free guidance: one scale (1 = none) or weights per condition, "
                                 "e.g. caption=3,rgb=1; one value per target joined by '-', where a weight may "
                                 "name an earlier target, e.g. 1-det=2,caption=0.5 for caption->det->rgb")
    p.add_argument("--cfg-schedules", help="guidance scale over the steps: constant, linear or cosine (fade to 1), rising")
    p.add_argument("--cfg-grow-conditioning", action=argparse.BooleanOptionalAction, default=None,
                   help="each finished target joins the guidance conditions of the later ones (demo preset: on)")
    p.add_argument("--top-k", help="top-k filtering (0 = off)")
    p.add_argument("--top-p", help="nucleus filtering (0 = off; demo preset: 0.8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--estimate", type=at_least(1), metavar="DRAWS",
                   help="write each image target's least-squares estimate instead of a sample: the mean of DRAWS "
                        "token grids drawn from the model's per-token distributions given the inputs (one pass per "
                        "target; 64 is plenty). Blurry where the inputs leave things open; the estimate PSNR "
                        "rewards (docs/generation.md). Image targets only; --temps sets the distributions' "
                        "temperature (default 1)")
    p.add_argument("--draft-tokens", type=at_least(0), default=8, metavar="N",
                   help="most guessed tokens one autoregressive pass verifies (speculative decoding; exact at "
                        "temperature 0; 0 = off; default 8)")
    p.add_argument("--compile", action="store_true",
                   help="run each MaskGIT / ROAR step as one torch.compile graph with static shapes (the same "
                        "tokens; compiles on the first step; on CPUs slower than eager, see docs/generation.md)")
    p.add_argument("--dense", type=at_least(1), default=1, metavar="N",
                   help="sam_instance targets: N prompted passes per image, merged into one instance map "
                        "(drawn with the sam_mask tokenizer; the 4M-21 demo uses 32)")
    p.add_argument("--sr", metavar="MODEL", help="a super-resolution model (e.g. 4M-7-SR_L_CC12M): every tok_*@224 "
                                                "output is then refined to @448")
    p.add_argument("--decode-steps", type=at_least(1), metavar="N",
                   help="denoising steps of the diffusion tokenizers (RGB, depth, normals, edges; default 25)")
    p.add_argument("--decode-scheduler", choices=["ddim", "ddpm"],
                   help="sampler of the diffusion tokenizers (default: each tokenizer's own; ddim is the fast path)")
    p.add_argument("--dtype", choices=["fp32", "bf16", "fp16", "int8", "int8-dynamic"], default="fp32",
                   help="the model's weights and compute (CPU: int8 = int8 linear weights, needs open4m[int8]; "
                        "int8-dynamic = int8 weights and activations, faster)")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit) of --model")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_overwrite_argument(p, "into --out")
    p.set_defaults(handler=run)


def parse_inputs(items: list[str]) -> dict[str, str]:
    """--input NAME=VALUE items -> {name: value} (values stay strings: paths or text)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--input {item!r}: write NAME=VALUE, e.g. rgb=photo.jpg or caption='a red car'")
        if name.strip() in out:
            raise ConfigError(f"--input {name.strip()}= is given twice; give each condition once")
        out[name.strip()] = value
    return out


def add_tokenizer_option(p: argparse.ArgumentParser) -> None:
    """`--tokenizers`, shared by every verb that decodes with a model's tokenizers."""
    p.add_argument("--tokenizers", action="append", default=[], metavar="DIR|NAME=PATH",
                   help="override tokenizers: a folder of them, or NAME=PATH_OR_ID for one modality (NAME=none: "
                        "keep its tokens); repeatable. Default: the model's own, else the released ones")


def tokenizer_overrides(items: list[str]) -> tuple[Path | None, dict[str, str | None]]:
    """--tokenizers values -> (a folder or None, {modality: path or id})."""
    folder, named = None, {}
    for item in items:
        name, sep, value = item.partition("=")
        if sep:
            if not name.strip() or not value.strip():
                raise ConfigError(f"--tokenizers {item!r}: write NAME=PATH_OR_ID (e.g. depth=my_depth_tokenizer/)")
            named[name.strip()] = None if value.strip().lower() == "none" else value.strip()
        elif folder is not None:
            raise ConfigError("--tokenizers names two folders; give one folder, plus NAME=PATH for single modalities")
        else:
            folder = Path(item)
            if not folder.is_dir():
                raise NotFound(f"--tokenizers {item}: no such folder (for one modality write NAME=PATH)")
            if not any(p.suffix in (".safetensors", ".json") or p.is_dir() for p in folder.iterdir()):
                raise NotFound(f"--tokenizers {item}: the folder holds no tokenizers (tok_<modality>.safetensors, "
                               "text.json, or their folders); point at the folder that does")
    return folder, named


def check_tokenizer_names(named: dict[str, str | None], model) -> None:
    """Each `--tokenizers NAME=...` must name a modality of the model (or a short form of one): a misspelt name
    would otherwise be ignored and the model's own tokenizer used without a word."""
    import difflib

    from open4m.tokenizers.resolver import SAM_MASK_KEYS, tokenizer_keys

    known = {key for name in model.modality_info for key in tokenizer_keys(name)} | set(SAM_MASK_KEYS)
    for name in named:
        if name not in known and name.split("@", 1)[0] not in known:  # tok_depth@448: the --sr model's size
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"--tokenizers {name}=: the model has no modality {name!r}{hint} (name one of "
                              f"{', '.join(sorted(model.modality_info))}, or its short form)")


def input_value(name: str, raw: str, model):
    """One --input value as the library takes it (a file read as an image or array; text stays text)."""
    from open4m.generation.request import condition_value

    return condition_value(name, raw, model, f"--input {name}=")


# Options that shape the steps of a sample. An estimate is one pass per target with all of its tokens masked
# (`Pipeline.estimate`), so it ran without them and printed a schedule it did not follow.
_STEP_OPTIONS = ("schemes", "tokens", "steps", "token_schedules", "temp_schedules", "cfg_schedules", "compile")


def estimate_temperature(args: argparse.Namespace) -> float:
    """The temperature of `--estimate`'s per-token distributions: `--temps` (one number; default 1, the model's own).

    `--temps` was ignored by the estimate without a word (it always drew at temperature 1), and so were the options that
    shape a sample's steps; these are refused here, before the model loads.
    """
    given = [f"--{k.replace('_', '-')}" for k in _STEP_OPTIONS if getattr(args, k) not in (None, False)]
    if given:
        raise ConfigError(f"--estimate makes one pass per target (every token at once), so {', '.join(given)} would "
                          "change nothing; drop them (--temps, --cfg, --top-k and --top-p apply to the estimate)")
    if args.temps is None:
        return 1.0
    try:
        temperature = float(args.temps)
    except ValueError:
        temperature = math.nan
    if not math.isfinite(temperature) or temperature < 0:
        raise ConfigError(f"--temps {args.temps} with --estimate: give one temperature >= 0 (1: the model's own "
                          "distribution, 0: its argmax)")
    return temperature


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from open4m.atomic import atomic_write
    from open4m.generation.pipeline import Pipeline
    from open4m.generation.request import build_request
    from open4m.model import FourM

    raw_inputs = parse_inputs(args.input)  # option errors before the (slow) model load
    if args.estimate is not None and args.sr:
        raise ConfigError("--estimate with --sr: an estimate is not refined by super-resolution; drop one of them")
    temperature = estimate_temperature(args) if args.estimate is not None else 1.0
    check_output(args.out, args, folder=True)
    folder, named = tokenizer_overrides(args.tokenizers)
    model = FourM.from_pretrained(args.model, revision=args.revision, dtype=None)
    check_tokenizer_names(named, model)
    request = build_request(model, raw_inputs, args.target.split(","), seed=args.seed, schemes=args.schemes,
                            tokens=args.tokens, steps=args.steps, token_schedules=args.token_schedules,
                            temps=args.temps, temp_schedules=args.temp_schedules, cfg=args.cfg,
                            cfg_schedules=args.cfg_schedules, cfg_grow_conditioning=args.cfg_grow_conditioning,
                            top_k=args.top_k, top_p=args.top_p)
    extra = {k: v for k, v in dict(decode_steps=args.decode_steps, decode_scheduler=args.decode_scheduler,
                                   sr_model=args.sr).items() if v is not None}
    pipe = Pipeline(request.spec, model, named, tokenizer_folder=folder, preset=args.preset,
                    draft_tokens=args.draft_tokens, compile=args.compile, dense=args.dense, dtype=args.dtype,
                    **request.options, **extra)
    chatty = args.log_level <= logging.INFO  # -q: the results only (texts, files written), no schedule or progress
    if chatty:  # an estimate is one pass per target, not the schedule's steps: it says what it does instead
        print(pipe.schedule if args.estimate is None else
              f"conditions: {', '.join(pipe.schedule.conditions) or 'none'}\n"
              f"{', '.join(request.targets)}: least-squares estimate, the mean of {args.estimate} token grids drawn "
              f"in one pass from the model's per-token distributions at temperature {temperature:g}")
    out = request.run(pipe, progress=chatty, label="--input {name}=", estimate=args.estimate, temperature=temperature)
    targets = request.targets
    all_targets = [*targets, *(pipe.sr_schedule.targets if pipe.sr_schedule else ())]
    tokens = {f"{n}.tensor": e["tensor"].contiguous() for n, e in out.tokens.items() if n in all_targets}
    with path_errors("--out"):
        written = out.save(args.out)
        if tokens:  # an estimate has no tokens of its own
            written.append(atomic_write(args.out / "tokens.safetensors", lambda tmp: save_file(
                tokens, str(tmp), metadata={"spec": request.spec, "seed": str(args.seed)})))
    undecoded = [t for t in all_targets if t not in out.images and t not in out.texts and t not in out.vectors]
    for name, texts in out.texts.items():
        for i, text in enumerate(texts):
            print(f"{name}[{i}]: {text}")
    if undecoded:
        print(f"no tokenizer found for {undecoded}: their tokens are in tokens.safetensors only")
    print(f"wrote {len(written)} files to {args.out}")
    return 0
