"""`open4m label`: add pseudo-label modalities (edges, palettes, metadata, network outputs) to a dataset.

The built-in labelers are the names of `open4m.data.labelers.LABELERS`, read without importing any
labeler module (help stays instant); `MODEL_KINDS` run a local transformers model given by --model.
"""

from __future__ import annotations

import argparse
import inspect

from open4m.errors import ConfigError, UnknownNameError

from . import at_least, device_name, path_errors, report_skipped


def _names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(registered labelers, model-folder kinds); importing the registry loads no numpy or torch."""
    from open4m.data.labelers import LABELERS, MODEL_KINDS

    return tuple(LABELERS), MODEL_KINDS


def register(sub: argparse._SubParsersAction) -> None:
    builtin, network = _names()
    p = sub.add_parser("label", help="pseudo-label a folder dataset (or a folder of plain images)")
    p.add_argument("--data", required=True, help="dataset root (DIR/<modality>/...) or a folder of images "
                                                 "(subfolders included)")
    p.add_argument("--modality", "-m", nargs="+", required=True, metavar="M",
                   help=f"labels to add, in order: {', '.join(builtin)}; with --model: {', '.join(network)}; "
                        "normal without --model: from the depth modality. Network labelers need "
                        "pip install 'open4m[labelers]' (see docs/data.md)")
    p.add_argument("--model", help="local path of a transformers model for the --model labelers")
    p.add_argument("--name", help="output modality name for a --model labeler (default: the --modality)")
    p.add_argument("--fov", type=float, default=60.0,
                   help="horizontal field of view (degrees) for normals from depth (default 60)")
    p.add_argument("--edge-size", type=int, default=None, metavar="PIXELS",
                   help="canny_edge: find edges at this scale (the photo shrunk to this short side, e.g. the model's "
                        "input size), written at the photo's size (default: the photo's own scale)")
    p.add_argument("--device", default="cpu", type=device_name, help="where network labelers run: cpu (default), cuda, cuda:1, mps")
    p.add_argument("--batch-size", type=at_least(1), default=16)
    p.add_argument("--overwrite", action="store_true", help="relabel samples that already have the label")
    p.set_defaults(handler=run)


def _make(modality: str, args: argparse.Namespace):
    from open4m.data import labelers

    if modality in labelers.LABELERS:
        cls = labelers.LABELERS[modality]
        params = inspect.signature(cls).parameters
        kwargs = {"device": args.device} if "device" in params else {}
        if modality == "canny_edge" and args.edge_size is not None:
            kwargs["size"] = args.edge_size
        return cls(**kwargs)
    if modality == "normal" and not args.model:  # geometry from an existing depth modality
        from open4m.data.labelers.network import NormalLabeler

        return NormalLabeler(fov_deg=args.fov)
    if modality in labelers.MODEL_KINDS:
        if not args.model:
            raise ConfigError(f"--modality {modality} runs a network: pass --model PATH (a local transformers model)")
        from open4m.data.labelers.network import from_pretrained

        labeler = from_pretrained(modality, args.model, name=args.name, device=args.device)
        if modality == "normal":
            labeler.fov_deg = args.fov
        return labeler
    import difflib

    known = (*labelers.LABELERS, *labelers.MODEL_KINDS)
    close = difflib.get_close_matches(modality, known, n=2)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise UnknownNameError(f"unknown label modality {modality!r}; {hint}choose from {', '.join(known)}")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from open4m.atomic import check_output
    from open4m.data.labelers import label_folder
    from open4m.train.distributed import pick_device

    if Path(args.data).is_dir():  # labels are written beside the data: a read-only dataset fails before any work
        check_output(args.data, folder=True, overwrite=True, flag="--data")
    if not 0 < args.fov < 180:
        raise ConfigError(f"--fov {args.fov:g}: give the camera's horizontal field of view in degrees, between 0 and 180")
    args.device = str(pick_device(args.device, "--device"))
    made = [_make(m, args) for m in args.modality]  # every name checked (and every extra found) before any work
    for modality, labeler in zip(args.modality, made):
        skipped: list[str] = []
        with path_errors("--data"):
            stats = label_folder(args.data, labeler, batch_size=args.batch_size, overwrite=args.overwrite,
                                 skipped=skipped)
        lacking = f", {stats['missing']} lack an input (see the warning)" if stats["missing"] else ""
        print(f"{modality}: {stats['labeled']} labeled, {stats['skipped']} already present, {stats['corrupt']} corrupt"
              f"{lacking}")
        report_skipped(skipped, "corrupt file(s), not labelled")
    return 0
