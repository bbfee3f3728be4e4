"""`open4m tokenize`: pre-tokenize one modality of an aligned dataset (folders or shards) with a tokenizer.

Writes ``ROOT/tok_<modality>/<key>.npy`` (or shards; int16/int32, one row per crop) and shares the crops of
each sample with every other modality through ``ROOT/crop_settings/``; reruns skip finished files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from open4m.errors import ConfigError

from . import path_errors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenize", help="pre-tokenize a modality of an aligned dataset (folders root/<modality>/<key>.<ext> or shards)")
    p.add_argument("--data", type=Path, required=True, help="dataset root holding one folder per modality")
    p.add_argument("--modality", required=True, help="the folder to tokenize, e.g. rgb, depth, semseg_coco")
    p.add_argument("--tokenizer", required=True, help="tokenizer .safetensors file, directory or Hub id")
    p.add_argument("--out-name", help="output folder name under --data (default tok_<modality>)")
    p.add_argument("--n-crops", type=int, default=1, help="crops per sample; row 0 is the centre crop")
    p.add_argument("--image-size", type=int, help="resize crops to this size (default: the tokenizer's)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", help="default: cuda when available, else cpu")
    p.add_argument("--seed", type=int, default=0, help="seed of the random crops")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from open4m.tokenizers import VQTokenizer, load_tokenizer
    from open4m.data.pretokenize import pretokenize

    if args.n_crops < 1:
        raise ConfigError("--n-crops must be at least 1")
    tokenizer = load_tokenizer(args.tokenizer, encoder_only=True)  # decoders are not needed to tokenize
    if not isinstance(tokenizer, VQTokenizer):
        raise ConfigError(f"--tokenizer {args.tokenizer} is a text tokenizer; `open4m tokenize` runs image/vector "
                          "tokenizers")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer.to(device)
    with path_errors("--data"):
        report = pretokenize(args.data, args.modality, tokenizer, out_name=args.out_name, n_crops=args.n_crops,
                             batch_size=args.batch_size, image_size=args.image_size, seed=args.seed)
    print(f"wrote {report.written} token files to {report.out_dir} ({report.skipped} already there)")
    return 0
