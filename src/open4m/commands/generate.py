"""`open4m generate`: any-to-any generation from files and text, written to PNGs and JSON.

    open4m generate --model fm.safetensors --tokenizers toks/ --input rgb=photo.jpg \
        --target depth,normal,caption --steps 8 --out out/

Targets are generated in the order given, each conditioned on the inputs and on every target
before it. Tokenizers are looked up in the `--tokenizers` folder by modality name (`tok_depth@224`,
`tok_depth` or `depth`, as a folder, `.safetensors` or `.json`; `text`/`tokenizer.json`/`text_tokenizer.json` for sequences;
`sam_mask` for the SAM instance masks, drawn with `--dense`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate modalities from others with a FourM model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a FourM .safetensors file, Hub-layout folder or Hub id")
    p.add_argument("--tokenizers", type=Path, help="folder holding the tokenizers (see above)")
    p.add_argument("--input", action="append", default=[], metavar="NAME=VALUE",
                   help="a condition: rgb=photo.jpg, caption='a dog', tok_depth=depth.png (repeatable)")
    p.add_argument("--target", required=True, help="comma-separated targets, generated in this order")
    p.add_argument("--schemes", help="per-target decoding scheme(s): maskgit, roar, autoregressive")
    p.add_argument("--tokens", help="tokens to generate per target (default: all; sequences: the most)")
    p.add_argument("--steps", help="decoding steps (one value or one per target, hyphen-separated)")
    p.add_argument("--token-schedules", help="cosine or linear: how many tokens each MaskGIT step commits")
    p.add_argument("--temps", default="1.0", help="temperature(s), e.g. 1.0 or 3.0-0.5 (default 1.0)")
    p.add_argument("--temp-schedules", default="constant", help="constant, linear or onex:MIN:POWER")
    p.add_argument("--cfg", default="1.0", help="classifier-free guidance scale(s) (1 = none)")
    p.add_argument("--cfg-schedules", default="constant",
                   help="guidance scale over the steps: constant, linear or cosine (fade to 1), rising")
    p.add_argument("--cfg-grow-conditioning", action="store_true",
                   help="each finished target joins the guidance conditions of the later ones")
    p.add_argument("--top-k", default="0", help="top-k filtering (0 = off)")
    p.add_argument("--top-p", default="0.0", help="nucleus filtering (0 = off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draft-tokens", type=int, default=8, metavar="N",
                   help="most guessed tokens one autoregressive pass verifies (speculative decoding; exact at "
                        "temperature 0; 0 = off; default 8)")
    p.add_argument("--dense", type=int, default=1, metavar="N",
                   help="sam_instance targets: N prompted passes per image, merged into one instance map "
                        "(drawn when the tokenizer folder has a sam_mask tokenizer; the 4M-21 demo uses 32)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.set_defaults(handler=run)


def _parse_inputs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--input {item!r}: write NAME=VALUE, e.g. rgb=photo.jpg or caption='a red car'")
        out[name.strip()] = value
    return out


def load_tokenizers(folder: Path | None, names: list[str], sequence_names: list[str]) -> dict:
    """Tokenizers found in `folder` for the given modalities (missing ones are simply absent)."""
    from ..generation.pipeline import SAM_MASK_KEYS, _tokenizer_keys
    from ..tokenizers import load_tokenizer

    if folder is None:
        return {}
    if not folder.is_dir():
        raise FileNotFoundError(f"--tokenizers {folder} is not a folder")
    found = {}
    wanted = [(key, n) for n in names for key in _tokenizer_keys(n)]
    if sequence_names:
        wanted += [("text", "text"), ("tokenizer", "text"), ("text_tokenizer", "text")]  # the last: world bundles
    if "sam_instance" in names:
        wanted += [(key, "sam_mask") for key in SAM_MASK_KEYS]
    for key, name in wanted:
        if name in found:
            continue
        for candidate in (folder / key, folder / f"{key}.safetensors", folder / f"{key}.json"):
            if candidate.exists():
                found[name] = load_tokenizer(candidate)
                break
    return found


def _value(name: str, raw: str, model):
    """A file path becomes an image (or a .npy array); text stays text for sequences."""
    import numpy as np

    from ..modalities import Kind

    kind = model.modality_info[name].kind
    if kind is Kind.SEQUENCE:
        return raw
    path = Path(raw)
    if not path.exists():
        raise FileNotFoundError(f"--input {name}={raw}: no such file")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    from PIL import Image

    img = Image.open(path)
    return img if kind is Kind.PIXELS else np.asarray(img)


def run(args: argparse.Namespace) -> int:
    from safetensors.torch import save_file

    from ..generation.pipeline import Pipeline
    from ..generation.schedules import _resolve
    from ..modalities import Kind
    from ..model import FourM

    model = FourM.from_pretrained(args.model)
    size = model.config.image_size
    raw_inputs = _parse_inputs(args.input)
    inputs = {_resolve(n, size, target=False).name: v for n, v in raw_inputs.items()}
    targets = [_resolve(t.strip(), size, target=True).name for t in args.target.split(",") if t.strip()]
    if not targets:
        raise ValueError("--target is empty; name at least one modality to generate")
    names = [*inputs, *targets]
    seq = [n for n in names if model.modality_info.get(n) is not None and model.modality_info[n].kind is Kind.SEQUENCE]
    tokenizers = load_tokenizers(args.tokenizers, names, seq)
    spec = ",".join(inputs) + "->" + "->".join(targets)
    options = {k: v for k, v in dict(schemes=args.schemes, tokens=args.tokens, steps=args.steps,
                                     token_schedules=args.token_schedules, temps=args.temps,
                                     temp_schedules=args.temp_schedules, cfg=args.cfg, cfg_schedules=args.cfg_schedules,
                                     top_k=args.top_k, top_p=args.top_p).items() if v is not None}
    options["cfg_grow_conditioning"] = args.cfg_grow_conditioning
    pipe = Pipeline(spec, model, tokenizers, draft_tokens=args.draft_tokens, dense=args.dense, **options)
    print(pipe.schedule)
    values = {n: _value(n, v, model) for n, v in inputs.items()}
    out = pipe(values, seed=args.seed, progress=True)
    written = out.save(args.out)
    tokens = {f"{n}.tensor": e["tensor"].contiguous() for n, e in out.tokens.items() if n in targets}
    tmp = args.out / "tokens.safetensors.tmp"
    save_file(tokens, str(tmp), metadata={"spec": spec, "seed": str(args.seed)})
    tmp.replace(args.out / "tokens.safetensors")
    written.append(args.out / "tokens.safetensors")
    undecoded = [t for t in targets if t not in out.images and t not in out.texts]
    for name, texts in out.texts.items():
        for i, text in enumerate(texts):
            print(f"{name}[{i}]: {text}")
    if undecoded:
        print(f"no tokenizer found for {undecoded}: their tokens are in tokens.safetensors only")
    print(f"wrote {len(written)} files to {args.out}")
    return 0
