"""`open4m retrieve`: rank an `open4m index` gallery for a query made of any input modalities.

    open4m retrieve --index gallery.index --model EPFL-VILAB/4M-21_B \
        --input caption="a dog on a beach" --k 5

The query's global embedding is predicted exactly as the gallery's was (same model, target, sampling
and seed: give the options `open4m index` was given; the index records them and a query predicted
otherwise is warned about), then the gallery is ranked by cosine similarity: exactly, or through the approximate FAISS
index `open4m index --approximate` stored in the file (`--exact` ignores it; `--probe` trades speed
for recall). `--faiss` runs the exact search with FAISS.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from open4m.errors import ConfigError, NotFound

from . import at_least
from .index import add_embedding_options, embedding_pipeline, embedding_settings

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrieve", help="rank an index for a query of any input modalities",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_embedding_options(p)
    p.add_argument("--index", type=Path, required=True, help="an index written by `open4m index`")
    p.add_argument("--input", action="append", default=[], metavar="NAME=VALUE",
                   help="a query condition: rgb=photo.jpg, caption='a dog' (repeatable)")
    p.add_argument("--k", type=at_least(1), default=5, help="how many results")
    p.add_argument("--faiss", action="store_true", help="search with FAISS instead of exact torch search")
    p.add_argument("--exact", action="store_true", help="exact search even when the index holds an approximate one")
    p.add_argument("--probe", type=int, default=None,
                   help="approximate search effort (ivf cells scanned / hnsw beam width; default: the index's)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from open4m.generation.retrieval import GalleryIndex, predict_embeddings
    from .generate import input_value, parse_inputs

    if not args.input:
        raise ConfigError("give the query with --input NAME=VALUE (e.g. --input caption='a red car')")
    if not args.index.exists():
        raise NotFound(f"--index {args.index}: no such file (build one with `open4m index`)")
    index = GalleryIndex.load(args.index)
    raw = parse_inputs(args.input)
    pipe, conds = embedding_pipeline(args, list(raw))
    differ = index.differences(embedding_settings(args, pipe))
    if differ:  # the scores would compare vectors predicted two ways: say so instead of ranking in silence
        logger.warning("retrieve: --index %s was embedded with %s; the scores compare embeddings predicted differently: "
                       "give retrieve the options the index was built with", args.index, "; ".join(differ))
    values = {c: input_value(c, v, pipe.model) for c, v in zip(conds, raw.values())}
    query = predict_embeddings(pipe, values, seed=args.seed)
    results = index.search(query, args.k, use_faiss=args.faiss, exact=args.exact, probe=args.probe)[0]
    if args.json:
        print(json.dumps([{"key": k, "score": s} for k, s in results]))
    else:
        for rank, (key, score) in enumerate(results, 1):
            print(f"{rank:>3}. {score:.4f}  {key}")
    return 0
