"""`open4m index`: embed a folder of images with predicted global embeddings, for `open4m retrieve`.

    open4m index --model EPFL-VILAB/4M-21_B --images gallery/ --out gallery.index

Each image is given as `--modality` (default rgb), the model predicts `--target` (default
tok_dinov2_global; ROAR, 1 step, temperature 0.1, top-p 0.8 as in the 4M-21 demos) and its
tokenizer decodes the vector (found as `open4m generate` finds it; `--tokenizers` overrides). The
index stores L2-normalised vectors and the file names; `--approximate ivf|hnsw` also builds a FAISS
index into it (`pip install 'open4m[faiss]'`), which `open4m retrieve` then searches instead of
comparing the query with every vector (for galleries of hundreds of thousands of images and more).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from open4m.errors import DataError, NotFound

from . import add_overwrite_argument, check_output, path_errors, report_skipped
from .generate import add_tokenizer_option

logger = logging.getLogger(__name__)

KINDS = ("ivf", "hnsw")  # open4m.generation.ann.KINDS (not imported here: the parser stays import-light)


def add_embedding_options(p: argparse.ArgumentParser) -> None:
    """Options shared by `index` and `retrieve` (both must embed the same way)."""
    p.add_argument("--model", required=True, help="a released name, a Hub id, or a FourM .safetensors file / folder")
    add_tokenizer_option(p)
    p.add_argument("--target", default="tok_dinov2_global", help="global-embedding modality to predict")
    p.add_argument("--temps", default="0.1")
    p.add_argument("--top-p", default="0.8")
    p.add_argument("--seed", type=int, default=0)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("index", help="build a retrieval index from a folder of images",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_embedding_options(p)
    p.add_argument("--images", type=Path, required=True, help="folder of gallery images")
    p.add_argument("--modality", default="rgb", help="what the images are given as (default rgb)")
    p.add_argument("--out", type=Path, required=True, help="index file to write (safetensors)")
    p.add_argument("--approximate", choices=KINDS, default=None,
                   help="also build an approximate FAISS index: ivf (k-means cells) or hnsw (a graph); default: "
                        "exact search only")
    p.add_argument("--lists", type=int, default=None, help="ivf: number of cells (default ~4 sqrt(N))")
    p.add_argument("--links", type=int, default=32, help="hnsw: neighbours per vector (default 32)")
    p.add_argument("--probe", type=int, default=None,
                   help="default search effort stored with the index: ivf cells scanned (32), hnsw beam width (64)")
    add_overwrite_argument(p, "--out")
    p.set_defaults(handler=run)


def embedding_pipeline(args: argparse.Namespace, conditions: list[str]):
    from open4m.generation.pipeline import Pipeline
    from open4m.generation.schedules import resolve_modality
    from open4m.model import FourM
    from .generate import check_tokenizer_names, tokenizer_overrides

    model = FourM.from_pretrained(args.model)
    size = model.config.image_size
    conds = [resolve_modality(c, size, target=False).name for c in conditions]
    target = resolve_modality(args.target, size, target=True).name
    folder, named = tokenizer_overrides(args.tokenizers)
    check_tokenizer_names(named, model)
    spec = ",".join(conds) + "->" + target
    return Pipeline(spec, model, named, tokenizer_folder=folder, schemes="roar", steps=1, temps=args.temps,
                    top_p=args.top_p), conds


def embedding_settings(args: argparse.Namespace, pipe) -> dict[str, object]:
    """How `pipe` predicts embeddings, as `index` records it and `retrieve` compares it: vectors predicted by
    another model, target, sampling or seed are not comparable, and ranking by them is noise."""
    from open4m.pretrained import find

    given = Path(args.model).expanduser()
    entry = find(str(args.model))
    model = str(given.resolve()) if given.exists() else entry.repo_id if entry is not None else str(args.model)
    return {"model": model, "target": pipe.schedule.targets[-1], "temps": str(args.temps), "top_p": str(args.top_p),
            "seed": int(args.seed)}


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from open4m.data.codecs import IMAGE_EXTS, open_image
    from open4m.generation.ann import check_settings, require_faiss
    from open4m.generation.retrieval import GalleryIndex, predict_embeddings
    from open4m.modalities import Kind

    check_output(args.out, args, folder=False)
    if not args.images.is_dir():
        raise NotFound(f"--images {args.images} is not a folder")
    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DataError(f"--images {args.images} holds no images ({', '.join(IMAGE_EXTS)})")
    if args.approximate:  # a missing extra or a bad count fails before the gallery is embedded
        check_settings(args.approximate, lists=args.lists, links=args.links, probe=args.probe)
        require_faiss(f"--approximate {args.approximate}")
    pipe, (cond,) = embedding_pipeline(args, [args.modality])
    vectors, names, skipped = [], [], []
    for path in tqdm(files, desc="indexing", unit="image"):
        try:
            image = open_image(path, "--images: file")
        except DataError as err:  # one damaged image is left out (named in the summary), not the whole gallery
            logger.warning("skipping %s", err)
            skipped.append(str(err))
            continue
        value = image if pipe.model.modality_info[cond].kind is Kind.PIXELS else np.asarray(image)
        vectors.append(predict_embeddings(pipe, {cond: value}, seed=args.seed))
        names.append(path.name)
    if not vectors:
        raise DataError(f"--images {args.images}: none of its {len(files)} images can be read (e.g. {skipped[0]}); "
                        "replace them, or point --images at a folder of good ones")
    index = GalleryIndex.build(vectors, names, embedding_settings(args, pipe))
    if args.approximate:
        index = index.with_approximate(args.approximate, lists=args.lists, links=args.links, probe=args.probe)
    with path_errors("--out"):
        index.save(args.out)
    print(f"indexed {len(names)} images ({index.vectors.shape[1]}-d) into {args.out}")
    report_skipped(skipped, "unreadable image(s), not indexed")
    return 0
