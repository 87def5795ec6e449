"""``embgeo shift``: how far a query set sits from the corpus it searches, and which queries are out of
distribution.

Runs :func:`embgeo.analysis.shift_report` on two inputs (files or bundled samples, of one dimension)
and prints the headline numbers: the centroid and modality gap, the Frechet distance, the spread ratio
and the largest principal angle, the MMD test and the classifier AUC (on stated samples), the share of
out-of-distribution queries, the shift after each candidate transform with what it does to retrieval
(the overlap of the exact top-k with the raw space's and, with ``--index``, the index's recall@k in
that space by shift bucket), the hardest queries and the verdicts. ``--json`` writes ``ShiftReport.to_dict()``: ``centroid_gap``, ``modality_gap``,
``bures_wasserstein``, ``mmd_rbf``, ``mmd_p_value``, ``classifier_auc``, ``classifier_auc_ci``,
``knn_ood_rate``, ``transforms[]``, ``by_bucket[]``, ``hardest[]``, ``verdicts[]``, among others.
"""

from __future__ import annotations

import argparse
import json

from .cli import _positive_int, add_metric_argument, load_embeddings, subcommand

_INPUTS = ("embeddings file (.npy, .npz, .parquet, .csv, .safetensors, .fvecs, .hdf5), a directory or quoted glob "
           "of shards, or a bundled sample: sample:words, sample:sentences")


def _configure_shift(p: argparse.ArgumentParser) -> None:
    p.add_argument("corpus", help=f"the searched set: {_INPUTS}")
    p.add_argument("queries", help="the query set, of the corpus's dimension (same forms)")
    add_metric_argument(p, default="cosine", help="similarity (default: cosine; statistics of the unit rows)")
    p.add_argument("--k", type=_positive_int, default=10,
                   help="the k-th corpus neighbour scores each query (default: 10)")
    p.add_argument("--sample-size", type=_positive_int, default=1000,
                   help="rows of each set for the MMD and classifier tests (default: 1000, at most 10000: "
                        "the MMD holds a (2 x sample size)^2 float64 matrix)")
    p.add_argument("--permutations", type=int, default=200,
                   help="permutations of the MMD p-values (default: 200; 0 for none)")
    p.add_argument("--index", choices=("flat", "hnsw", "ivf", "ivfpq", "sq8"), default=None,
                   help="also build this faiss index on the corpus and give its recall@k per shift bucket")
    p.add_argument("--no-transforms", action="store_true",
                   help="skip the shift after centring and whitening (up to five more passes over the "
                        "corpus and four over the queries, a classifier fit per transform, and an exact search "
                        "(with --index, an index build) of the samples in each space)")
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")


def _f(x, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _buckets(values) -> str:
    return " ".join("-" if v is None else f"{v:.2f}" for v in values or [])


def headline(r) -> list[str]:
    """The report's headline numbers, one per line."""
    angle = max(r.principal_angles) if r.principal_angles else None
    p_text = "no permutations" if r.mmd_p_value is None else f"p = {_f(r.mmd_p_value, 3)} ({r.n_permutations} permutations)"
    lines = [
        f"shift: {r.name_queries!r} ({r.n_queries:,}) against {r.name_corpus!r} ({r.n_corpus:,}), d={r.dim}, "
        f"metric={r.metric}, k={r.k}",
        f"  centroid gap          {_f(r.centroid_gap)} ({_f(r.centroid_gap_in_spreads, 3)} corpus spreads; "
        f"cosine between the means {_f(r.mean_cosine_between_means)})",
        f"  modality gap          {_f(r.modality_gap)}  # between the centres of the L2-normalised sets",
        f"  Frechet distance      {_f(r.frechet_distance)} (Bures-Wasserstein {_f(r.bures_wasserstein)})",
        f"  spread ratio          {_f(r.total_variance_ratio)} (largest principal angle of the top "
        f"{r.n_components}: {_f(angle, 3)} degrees)",
        f"  MMD^2 rbf             {_f(r.mmd_rbf)}, {p_text}",
        f"  MMD^2 linear          {_f(r.mmd_linear_sample)} on the samples, p = {_f(r.mmd_linear_p_value, 3)}; "
        f"{_f(r.mmd_linear)} over all rows",
        f"  classifier AUC        {_f(r.classifier_auc, 3)} [{_f(r.classifier_auc_ci[0], 3)}, "
        f"{_f(r.classifier_auc_ci[1], 3)}] ({r.n_folds}-fold)",
        f"  samples               {r.sample_size['corpus']:,} corpus rows, {r.sample_size['queries']:,} queries",
        f"  OOD queries           {r.knn_ood_rate:.1%} by k-th neighbour distance, {r.mahalanobis_ood_rate:.1%} "
        "by Mahalanobis (5% when they look like the corpus)",
    ]
    if r.transforms:
        settings = [c for c in r.transforms[0] if c.startswith("recall ") and not c.endswith(" by bucket")]
        lines.append("  after transforms      (centroid gap in spreads, classifier AUC, MMD^2 rbf in that space)")
        lines.append(f"    and on {r.sample_size['queries']:,} queries against {r.sample_size['corpus']:,} corpus "
                     f"rows: overlap@{r.k} (share of the exact top-{r.k} the raw space also retrieves)"
                     + "".join(f"; {c[7:]} recall@{r.k}, by bucket near to far" for c in settings))
        lines += [f"    {t['transform']:<36} {_f(t['centroid_gap_in_spreads'], 3):>8} {_f(t['classifier_auc'], 3):>8} "
                  f"{_f(t['mmd_rbf'], 3):>10}   overlap@{r.k} {_f(t.get('overlap_at_k'), 3):>5}"
                  + "".join(f"   recall@{r.k} {_f(t.get(c), 3):>5} [{_buckets(t.get(c + ' by bucket'))}]"
                            for c in settings) for t in r.transforms]
    if r.index is not None:
        lines += [f"  index {s['setting']:<30} recall@{r.k} {s['recall_at_k']:.3f}" for s in r.index["settings"]]
    lines.append("  hardest queries       " + "; ".join(
        f"{h['text'] or h['label'] or '#' + str(h['query'])} ({_f(h['knn_distance'], 3)})"
        for h in r.hardest[:5]))
    lines += [f"  [{v.status:>4}] {v.title}: {v.value}" for v in r.verdicts]
    lines += [f"  note: {n}" for n in r.notes]
    return lines


@subcommand("shift", help="distribution shift between a query set and the corpus it searches",
            configure=_configure_shift)
def _run_shift(args: argparse.Namespace) -> int:
    import sys

    from embgeo.analysis import EmbeddingInputError, shift_report

    if args.permutations < 0:
        from .cli import UsageError

        raise UsageError(f"--permutations must be 0 or more, got {args.permutations}")
    corpus, queries = load_embeddings(args.corpus), load_embeddings(args.queries)
    if queries.dim != corpus.dim:
        raise EmbeddingInputError(  # bad data, not a bad command line
            f"{args.queries}: queries have dimension {queries.dim}, the corpus {args.corpus} has {corpus.dim}")
    report = shift_report(corpus, queries, metric=args.metric, k=args.k, sample_size=args.sample_size,
                          n_permutations=args.permutations, index=args.index, transforms=not args.no_transforms,
                          progress=sys.stderr.isatty())
    print("\n".join(headline(report)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.to_dict(), f, indent=2, allow_nan=False)
    return 0
