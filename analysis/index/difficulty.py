"""How hard each query is for nearest-neighbour search, and index recall by difficulty bucket."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._core import Result, check_distance_metric, check_k, hidden, metric as _field
from ..neighbors import expansion, local_intrinsic_dimension_from_distances, relative_contrast
from .ground_truth import GroundTruth


@dataclass(frozen=True, repr=False)
class QueryDifficulty(Result):
    """How hard each query is for nearest-neighbour search, and index recall by difficulty."""

    _title = "query difficulty"
    lid_median: float = _field("Median local intrinsic dimension of the queries (higher = harder).",
                               "Amsaleg et al., KDD 2015 (Hill MLE)")
    rc_median: float = _field("Median relative contrast: mean distance to the corpus / k-th NN distance "
                              "(near 1 = hard).", "He, Kumar, Chang, ICML 2012; Aumueller & Ceccarello, 2021")
    expansion_median: float = _field("Median expansion D_2k / D_k (near 1 = hard).",
                                     "Aumueller & Ceccarello, 2021")
    recall_by_bucket: list = _field(
        "Per LID quantile bucket (easy to hard): LID range, queries, and recall@k of each index setting "
        "(queries with an exact duplicate in the corpus have no LID and sit in no bucket).")
    hardest: list = _field("Queries with the highest LID, with their labels and contrast.")
    lid: np.ndarray = hidden()
    relative_contrast: np.ndarray | None = hidden()
    expansion: np.ndarray | None = hidden()


def query_difficulty(ground: GroundTruth, *, per_query_recall: dict | None = None, n_buckets: int = 4,
                     n_hardest: int = 5, labels=None) -> QueryDifficulty:
    """Local ID, relative contrast and expansion per query, and recall per LID quantile bucket.

    Parameters
    ----------
    ground : GroundTruth
        Exact neighbours with 2k columns and mean distances (from :func:`ground_truth`).
    per_query_recall : dict of label -> array (m,), optional
        Per-query recall of each index setting, broken down by bucket.
    n_buckets : int
        LID quantile buckets (4 = quartiles).
    n_hardest : int
        How many of the highest-LID queries to list.
    labels : callable, optional
        ``labels(i)`` names query i (default: the corpus row label for held-out queries, else "query #i").

    Returns
    -------
    QueryDifficulty

    References
    ----------
    Amsaleg et al., KDD 2015 (LID); He, Kumar, Chang, "On the difficulty of nearest neighbor search",
    ICML 2012 (relative contrast); Aumueller & Ceccarello, "The role of local dimensionality
    measures in benchmarking nearest neighbor search", Information Systems 2021 (RC and expansion per
    query).
    """
    check_distance_metric(ground.metric, "query difficulty")
    check_k(n_buckets, max(1, ground.n_queries), what="n_buckets", context="queries")
    k = ground.k
    lid = local_intrinsic_dimension_from_distances(ground.distances[:, :k], form="hill")
    rc = relative_contrast(ground, k) if ground.mean_distance is not None else None
    ex = expansion(ground, k) if ground.distances.shape[1] >= 2 * k else None
    finite = lid[np.isfinite(lid)]
    edges = np.quantile(finite, np.linspace(0, 1, n_buckets + 1)) if finite.size else None
    buckets = []
    if edges is not None:
        # inf (no contrast at all) joins the hardest bucket; NaN (duplicates) joins none.
        which = np.where(np.isnan(lid), -1, np.searchsorted(edges[1:-1], lid, side="right"))
        for b in range(n_buckets):
            rows = which == b
            entry = {"bucket": b, "lid_low": float(edges[b]), "lid_high": float(edges[b + 1]),
                     "n_queries": int(rows.sum())}
            entry["recall"] = {name: (float(r[rows].mean()) if rows.any() else None)
                               for name, r in (per_query_recall or {}).items()}
            buckets.append(entry)
    if labels is None:
        labels = lambda i: f"query #{i}"  # noqa: E731
    mean_recall = (np.mean(np.vstack(list(per_query_recall.values())), axis=0)
                   if per_query_recall else None)
    order = np.argsort(-np.nan_to_num(lid, nan=-np.inf), kind="stable")[:n_hardest]
    hardest = [{"query": int(i), "label": labels(int(i)), "lid": float(lid[i]),
                "relative_contrast": None if rc is None else float(rc[i]),
                "expansion": None if ex is None else float(ex[i]),
                "mean_recall": None if mean_recall is None else float(mean_recall[i])} for i in order]
    return QueryDifficulty(
        lid_median=_median(lid), rc_median=_median(rc), expansion_median=_median(ex),
        recall_by_bucket=buckets, hardest=hardest, lid=lid, relative_contrast=rc, expansion=ex,
    )


def _median(values) -> float:
    """Median of the defined values; NaN (without numpy's all-NaN warning) when there are none, as on
    identical points, whose distance ratios are all 0 / 0."""
    if values is None or not (~np.isnan(values)).any():
        return float("nan")
    return float(np.nanmedian(values))
