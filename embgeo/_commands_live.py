"""``embgeo live-index``: how well a vector database's own search answers, against exact search.

Runs :func:`embgeo.analysis.live_index_report` on a LanceDB, Chroma, Qdrant or Milvus URI: the
database's answers to a query sample (held-out rows of the collection, or ``--queries``), scored by
recall@k against exact k-NN over the same vectors with the collection's own distance, with the latency
p50/p95/p99 and QPS at the database's current settings, recall by query difficulty and the never-returned
rate. The ``--json`` output is ``LiveIndexReport.to_dict()``.
"""

from __future__ import annotations

import argparse
import json

from .cli import _positive_int, load_embeddings, subcommand


def _sweep(text: str) -> dict:
    """``hnsw_ef=16,64,256`` -> ``{"hnsw_ef": (16, 64, 256)}``."""
    name, _, values = text.partition("=")
    try:
        parsed = tuple(int(v) for v in values.split(",") if v.strip())
    except ValueError:
        parsed = ()
    if not name.strip() or not parsed:
        raise argparse.ArgumentTypeError(f"expected NAME=V1,V2,... with integer values, e.g. hnsw_ef=16,64,256; got {text!r}")
    return {name.strip(): parsed}


def _configure_live(p: argparse.ArgumentParser) -> None:
    p.add_argument("uri", help="lancedb://PATH/TABLE, chroma://PATH/COLLECTION, qdrant+local://PATH/COLLECTION, "
                               "qdrant://HOST:PORT/COLLECTION or milvus://FILE.db/COLLECTION")
    p.add_argument("--queries", metavar="Q", help="query vectors (a file or URI); default: --n-queries rows of URI")
    p.add_argument("--n-queries", type=_positive_int, default=200,
                   help="held-out rows of the collection used as queries (default: 200)")
    p.add_argument("--k", type=_positive_int, default=10, help="neighbours per query (default: 10)")
    p.add_argument("--vectors", metavar="NAME", help="the vector column, field or named vector (when there are several)")
    p.add_argument("--metric", choices=("euclidean", "cosine", "dot"),
                   help="LanceDB only: the distance its queries use (default euclidean); the other databases rank by "
                        "the collection's own distance")
    p.add_argument("--sweep", type=_sweep, metavar="NAME=V1,V2",
                   help="also sweep one per-query search parameter: hnsw_ef (Qdrant), nprobes/ef/refine_factor "
                        "(LanceDB), ef/nprobe (Milvus)")
    p.add_argument("--faiss", action="store_true",
                   help="also run embgeo's faiss sweep (HNSW, IVF-Flat) on the same vectors and queries, side by side")
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")


@subcommand("live-index", help="recall@k, latency and QPS of a vector database's own search, against exact search",
            configure=_configure_live)
def _run_live(args: argparse.Namespace) -> int:
    from embgeo.analysis import live_index_report

    queries = None if args.queries is None else load_embeddings(args.queries).vectors
    report = live_index_report(args.uri, queries=queries, k=args.k, n_queries=args.n_queries, vectors=args.vectors,
                               metric=args.metric, sweep=args.sweep, faiss=args.faiss)
    print(repr(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.to_dict(), f, indent=2, allow_nan=False)
    return 0
