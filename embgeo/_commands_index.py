"""``embgeo index-stats``: how well approximate indexes serve an embedding set, and why.

Runs :func:`embgeo.analysis.index_report`: exact ground truth, a small faiss sweep (HNSW,
IVF-Flat, 8-bit scalar quantisation; IVF-PQ on request), per-query difficulty (LID, relative contrast,
expansion, recall by LID bucket) and reachability. The default sweep (three search settings per
kind, one timed repeat) keeps ~20,000 vectors to seconds; ``--thorough`` runs the library's full sweep.

The ``--json`` output is ``IndexReport.to_dict()``: ``k``, ``n_queries``, ``exact.seconds``,
``indexes[].{kind, params, recall_at_k, qps, build_seconds, bytes_per_vector}``,
``difficulty.{lid_median, rc_median, expansion_median, recall_by_bucket}`` (None under ``dot``) and
``reachability.never_retrieved_rate``, among others.
"""

from __future__ import annotations

import argparse
import json

from .cli import _positive_int, add_input_argument, add_metric_argument, load_embeddings, subcommand

#: Search settings of the quick default sweep (the library default sweeps 5 and 7 values).
QUICK_SWEEP = {"hnsw": {"efSearch": (16, 64, 256)}, "ivf": {"nprobe": (1, 8, 64)},
               "ivfpq": {"nprobe": (1, 8, 64)}}
#: IVF-PQ is left out by default: training its d/4 sub-quantisers took about two minutes on 19,000
#: 384-d vectors on two cores (``--indexes hnsw,ivf,ivfpq,sq8`` adds it).
DEFAULT_INDEXES = ("hnsw", "ivf", "sq8")


def _index_kinds(text: str) -> tuple[str, ...]:
    from embgeo.analysis import INDEX_KINDS

    kinds = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [k for k in kinds if k not in INDEX_KINDS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list from {', '.join(INDEX_KINDS)}, got {text!r}")
    return kinds


def _configure_index_stats(p: argparse.ArgumentParser) -> None:
    add_input_argument(p)
    p.add_argument("--queries", metavar="Q",
                   help="query vectors (a file, or 'benchmark' for an ann-benchmarks file's test set); "
                        "default: hold out min(1000, n/10) rows of PATH")
    p.add_argument("--k", type=_positive_int, default=10, help="neighbours per query (default: 10)")
    add_metric_argument(p, default=None, help="similarity (default: the benchmark file's, else cosine)")
    p.add_argument("--indexes", type=_index_kinds, default=DEFAULT_INDEXES, metavar="KINDS",
                   help="comma-separated index kinds from flat, hnsw, ivf, ivfpq, sq8 "
                        "(default: hnsw,ivf,sq8; ivfpq training is slow)")
    p.add_argument("--repeats", type=_positive_int, default=1,
                   help="timed searches per setting; QPS is the best (default: 1)")
    p.add_argument("--thorough", action="store_true",
                   help="sweep every default search setting (efSearch 16-256, nprobe 1-64) instead of three")
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")


@subcommand("index-stats", help="recall/QPS of faiss indexes, query difficulty and reachability",
            configure=_configure_index_stats)
def _run_index_stats(args: argparse.Namespace) -> int:
    from embgeo.analysis import EmbeddingInputError, index_report

    data = load_embeddings(args.path)
    queries = args.queries
    if queries is not None and queries != "benchmark":
        queries = load_embeddings(queries).vectors
        if queries.shape[1] != data.dim:
            raise EmbeddingInputError(  # bad data, not a bad command line
                f"{args.queries}: queries have dimension {queries.shape[1]}, PATH has {data.dim}")
    params = None if args.thorough else {kind: dict(QUICK_SWEEP[kind]) for kind in args.indexes
                                         if kind in QUICK_SWEEP}
    report = index_report(data, queries=queries, k=args.k, metric=args.metric, indexes=args.indexes,
                          index_params=params, repeats=args.repeats)
    print(repr(report))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.to_dict(), f, indent=2, allow_nan=False)
    return 0
