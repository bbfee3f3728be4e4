"""Approximate (FAISS IVF / HNSW) against exact retrieval on synthetic clustered galleries.

    python benchmarks/retrieval_faiss.py --sizes 100000 1000000 --dim 768

The gallery is random but clustered like real embeddings (points around random centres, L2-normalised,
768-d by default: DINOv2-B's global embedding, what `open4m index` predicts); the queries are other points
of the same clusters. For each size it prints the exact search (`GalleryIndex.search`, one matrix product
per query batch) and each approximate index at a few search efforts: build seconds, milliseconds per query
with all queries in one batch ("batch") and one query at a time ("single", what `open4m retrieve` does),
recall@1 / @10 against the exact top-k, and the memory of what is searched (the exact vectors; the
serialised FAISS index, vectors included). Needs `pip install 'open4m[faiss]'`.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch


def clustered(n: int, dim: int, clusters: int, spread: float, generator: torch.Generator) -> torch.Tensor:
    centres = torch.randn(clusters, dim, generator=generator)
    rows = []
    for start in range(0, n, 100_000):  # in chunks: a million 768-d points are 3 GB already
        m = min(100_000, n - start)
        which = torch.randint(0, clusters, (m,), generator=generator)
        rows.append(torch.nn.functional.normalize(centres[which] + spread * torch.randn(m, dim, generator=generator),
                                                  dim=-1))
    return torch.cat(rows)


def exact_topk(gallery: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    return (queries @ gallery.T).topk(k, dim=-1).indices


def recall(found: torch.Tensor, truth: torch.Tensor, k: int) -> float:
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) / k for f, t in zip(found, truth)]
    return sum(hits) / len(hits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--kinds", nargs="+", default=["ivf", "hnsw"])
    ap.add_argument("--probes", type=int, nargs="+", default=None,
                    help="search efforts to try (default: ivf 8 32 128, hnsw 32 64 256)")
    ap.add_argument("--repeats", type=int, default=3, help="query timing: best of N")
    ap.add_argument("--single", type=int, default=50, help="queries timed one at a time")
    ap.add_argument("--lists", type=int, default=None, help="ivf cells (default: open4m's, about 4 sqrt(N))")
    ap.add_argument("--spread", type=float, default=0.6,
                    help="noise around the centres, per dimension (centres ~ N(0, 1)): higher = less clustered, harder")
    args = ap.parse_args()

    from open4m.generation.ann import ApproximateIndex, require_faiss
    from open4m.generation.retrieval import GalleryIndex

    faiss = require_faiss("this benchmark")
    threads = torch.get_num_threads()
    faiss.omp_set_num_threads(threads)
    print(f"# FAISS {faiss.__version__} vs exact torch search — {platform.machine()}, {threads} threads, "
          f"{args.dim}-d, spread {args.spread}, {args.queries} queries (one batch), best of {args.repeats}")
    print(f"| {'gallery':>9} | {'index':<18} | {'build s':>8} | {'ms/q batch':>10} | {'ms/q single':>11} | "
          f"{'recall@1':>8} | {'recall@10':>9} | {'memory MB':>9} |")
    print("|-----------|--------------------|----------|------------|-------------|----------|-----------|-----------|")
    for n in args.sizes:
        g = torch.Generator().manual_seed(n)
        points = clustered(n + args.queries, args.dim, max(100, n // 500), args.spread, g)
        gallery = GalleryIndex(points[:n], [str(i) for i in range(n)])
        queries = points[n:]
        del points

        def timed(fn):
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = fn()
                best = min(best, time.perf_counter() - t0)
            return out, best

        singles = queries[:args.single]

        def one_by_one(search):
            return lambda: [search(q[None]) for q in singles]

        truth, seconds = timed(lambda: exact_topk(gallery.vectors, queries, 10))
        _, single = timed(one_by_one(lambda q: exact_topk(gallery.vectors, q, 10)))
        print(f"| {n:>9,} | {'exact (torch)':<18} | {0.0:>8.1f} | {1000 * seconds / args.queries:>10.3f} | "
              f"{1000 * single / len(singles):>11.3f} | {1.0:>8.3f} | {1.0:>9.3f} | "
              f"{gallery.vectors.numel() * 4 / 2**20:>9.0f} |", flush=True)
        for kind in args.kinds:
            t0 = time.perf_counter()
            approx = ApproximateIndex.build(gallery.vectors, kind, lists=args.lists if kind == "ivf" else None)
            build = time.perf_counter() - t0
            probes = args.probes or ([8, 32, 128] if kind == "ivf" else [32, 64, 256])
            for probe in probes:
                (_, ids), seconds = timed(lambda: approx.search(queries, 10, probe))
                _, single = timed(one_by_one(lambda q: approx.search(q, 10, probe)))
                name = f"{kind} " + (f"{approx.params['lists']}/{probe}" if kind == "ivf" else f"M{approx.params['links']} ef{probe}")
                print(f"| {n:>9,} | {name:<18} | {build:>8.1f} | {1000 * seconds / args.queries:>10.3f} | "
                      f"{1000 * single / len(singles):>11.3f} | {recall(ids, truth, 1):>8.3f} | {recall(ids, truth, 10):>9.3f} | {approx.nbytes / 2**20:>9.0f} |",
                      flush=True)
            del approx


if __name__ == "__main__":
    main()
