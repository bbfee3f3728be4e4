"""`open4m label`: add pseudo-label modalities (edges, palettes, metadata, network outputs) to a dataset."""

from __future__ import annotations

import argparse

from open4m.errors import ConfigError, UnknownNameError

from . import path_errors

_BUILTIN = ("canny_edge", "sam_edge", "color_palette", "metadata")
_NETWORK = ("depth", "normal", "semseg", "feature_map", "embedding", "caption")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="pseudo-label a folder dataset (or a folder of plain images)")
    p.add_argument("--data", required=True, help="dataset root (DIR/<modality>/...) or a folder of images")
    p.add_argument("--modality", "-m", nargs="+", required=True, metavar="M",
                   help=f"labels to add, in order: built-in {', '.join(_BUILTIN)}; "
                        f"with --model: {', '.join(_NETWORK)}; normal without --model: from the depth modality")
    p.add_argument("--model", help="local path of a transformers model for network labelers")
    p.add_argument("--name", help="output modality name for a network labeler (default: the --modality)")
    p.add_argument("--fov", type=float, default=60.0,
                   help="horizontal field of view (degrees) for normals from depth (default 60)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--overwrite", action="store_true", help="relabel samples that already have the label")
    p.set_defaults(handler=run)


def _make(modality: str, args: argparse.Namespace):
    from open4m.data import labelers

    if modality in labelers.LABELERS:
        return labelers.LABELERS[modality]()
    if modality == "normal" and not args.model:  # geometry from an existing depth modality
        from open4m.data.labelers.network import NormalLabeler

        return NormalLabeler(fov_deg=args.fov)
    if modality in _NETWORK:
        if not args.model:
            raise ConfigError(f"--modality {modality} runs a network: pass --model PATH (a local transformers model)")
        from open4m.data.labelers.network import from_pretrained

        labeler = from_pretrained(modality, args.model, name=args.name)
        if modality == "normal":
            labeler.fov_deg = args.fov
        return labeler
    import difflib

    close = difflib.get_close_matches(modality, _BUILTIN + _NETWORK, n=2)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise UnknownNameError(f"unknown label modality {modality!r}; {hint}choose from {', '.join(_BUILTIN + _NETWORK)}")


def run(args: argparse.Namespace) -> int:
    from open4m.data.labelers import label_folder

    for modality in args.modality:
        labeler = _make(modality, args)
        with path_errors("--data"):
            stats = label_folder(args.data, labeler, batch_size=args.batch_size, overwrite=args.overwrite)
        print(f"{modality}: {stats['labeled']} labeled, {stats['skipped']} already present, {stats['corrupt']} corrupt")
    return 0
