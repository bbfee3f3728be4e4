"""`open4m tokenize`: pre-tokenize one modality of an aligned dataset (folders or shards).

Image-like modalities go through a VQ tokenizer, sequence modalities (caption, det, color_palette,
metadata, human_poses, sam_instance, keypoints, ocr) through their codec and the WordPiece text
tokenizer. Writes ``ROOT/tok_<modality>/<key>.npy`` (or shards; int16/int32, one row per crop) and
shares the crops of each sample with every other modality through ``ROOT/crop_settings/``; reruns
skip finished files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from open4m.errors import ConfigError

from . import add_overwrite_argument, at_least, check_output, device_name, path_errors, report_skipped

_EPILOG = """\
what goes in and what comes out:
  image-like   rgb (JPG/PNG), depth (16-bit PNG, mm), normal (PNG), semseg_coco (8-bit PNG ids), canny_edge /
               sam_edge (PNG, 0 = no edge), hed_edge (PNG, [0, 1]), feature maps (.npy): a VQ tokenizer;
               ROOT/tok_<modality>/<key>.npy holds (n_crops, tokens), row 0 the centre crop
  sam_mask     one instance mask per file (PNG, any size): cut to its box, resized to the tokenizer's 64x64
  sequences    caption (.txt/.json), det, color_palette, metadata, human_poses, sam_instance, keypoints, ocr
               (.json): the text tokenizer (default: the released 30k WordPiece, `text`); (n_crops, L) ids
               padded with [PAD]=0; det/keypoints/ocr boxes follow each crop (crop_settings and the sample's
               image), palettes and metadata draw their size / field order per row
  a token folder or shard root of these files is what `open4m train` reads as data.source; each epoch
  picks one crop per sample from (seed, epoch, index), the same row for every modality.

examples:
  open4m tokenize --data DIR --modality rgb --tokenizer 4M_tokenizers_rgb_16k_224-448 --n-crops 4
  open4m tokenize --data DIR --modality det --n-crops 4      # after rgb: the same 4 crops
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenize", help="pre-tokenize a modality of an aligned dataset (images or sequences; "
                                        "folders root/<modality>/<key>.<ext> or shards)",
                       description=__doc__.split("\n\n", 1)[0], epilog=_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="dataset root holding one folder per modality")
    p.add_argument("--modality", required=True,
                   help="the folder to tokenize, e.g. rgb, depth, semseg_coco, canny_edge, sam_mask, caption, det")
    p.add_argument("--tokenizer", help="tokenizer .safetensors file, directory, released name or Hub id (sequence "
                                       "modalities: a text tokenizer, default `text`; required for the others)")
    p.add_argument("--out-name", help="output folder name under --data (default tok_<modality>)")
    p.add_argument("--n-crops", type=at_least(1), default=1, help="crops per sample; row 0 is the centre crop")
    p.add_argument("--image-size", type=at_least(1), help="resize crops to this size (default: the tokenizer's)")
    p.add_argument("--batch-size", type=at_least(1), default=16)
    p.add_argument("--device", type=device_name, help="cpu, cuda, cuda:N, mps (default auto: cuda when available, else cpu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random crops, palette sizes and metadata orders")
    add_overwrite_argument(p, "into --out-name", "a rerun resumes its own token folder without it")
    p.set_defaults(handler=run)


def _token_folder(path: Path) -> bool:
    """A folder of token files an earlier `open4m tokenize` wrote (a rerun resumes it)."""
    return all(p.suffix in (".npy", ".tar") for p in path.rglob("*") if p.is_file())


def run(args: argparse.Namespace) -> int:
    from open4m.data.pretokenize import is_sequence_modality, pretokenize
    from open4m.tokenizers import load_tokenizer
    from open4m.tokenizers.resolver import data_mismatch
    from open4m.train.distributed import pick_device

    out_name = args.out_name or f"tok_{args.modality.split('@')[0]}"
    if Path(out_name).name != out_name or out_name in (args.modality, args.modality.split("@")[0]):
        raise ConfigError(f"--out-name {out_name!r}: name a new folder under --data (e.g. tok_{args.modality}), not "
                          "the modality's own folder or a path")
    check_output(args.data / out_name, args, folder=True, flag="--out-name", ours=_token_folder)
    sequence = is_sequence_modality(args.modality)
    if args.tokenizer is None and not sequence:
        raise ConfigError(f"--modality {args.modality} needs --tokenizer (a VQ tokenizer file, folder or released name)")
    tokenizer = load_tokenizer(args.tokenizer or "text", encoder_only=True)  # decoders are not needed to tokenize
    mismatch = data_mismatch(tokenizer, args.modality)
    if mismatch:
        raise ConfigError(f"--tokenizer {args.tokenizer} cannot tokenize --modality {args.modality}: {mismatch}; give "
                          f"the {args.modality} tokenizer, or the --modality it was trained on")
    if not sequence:
        tokenizer.to(pick_device(args.device, "--device"))
    with path_errors("--data"):
        report = pretokenize(args.data, args.modality, tokenizer, out_name=args.out_name, n_crops=args.n_crops,
                             batch_size=args.batch_size, image_size=args.image_size, seed=args.seed)
    print(f"wrote {report.written} token files to {report.out_dir} ({report.skipped} already there)")
    report_skipped(report.corrupt)
    return 0
