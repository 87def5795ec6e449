"""Index-size scaling: recall of one fixed index setting and the neighbour margin as the corpus grows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._core import (EmbeddingInputError, Progress, Result, check_k, check_random_state, metric as _field,
                     prepare_rows, sub_progress)
from ..neighbors import exact_knn, recall_per_query
from .faiss_indexes import apply_search_params, build_index, default_n_lists, setting_label
from .queries import split_queries


@dataclass(frozen=True, repr=False)
class IndexScaling(Result):
    """Recall of one fixed index setting and the neighbour margin as the corpus grows."""

    _title = "index-size scaling"
    setting: str = _field("The fixed index setting measured at every size.")
    sizes: list = _field("Corpus sizes (nested random subsets).")
    recall_at_k: list = _field("Recall@k at each size.")
    margin: list = _field("Median gap D_{k+1} - D_k between the k-th true neighbour and the nearest "
                          "distractor, in distance units (chord for cosine; smaller = easier to confuse).",
                          "Reimers & Gurevych, ACL 2021")
    recall_slope_per_decade: float = _field("Fitted change of recall per tenfold corpus growth "
                                            "(line recall = a + b log10 n).", "Reimers & Gurevych, ACL 2021")
    recall_intercept: float = _field("a of that line.")
    margin_slope_per_decade: float = _field("Fitted change of the margin per tenfold growth.")

    def predicted_recall(self, n: float) -> float:
        """The fitted line's recall at corpus size ``n`` (an extrapolation beyond the largest size)."""
        return float(self.recall_intercept + self.recall_slope_per_decade * math.log10(n))


def _scaling_search(kind: str, params: dict, n_lists: int | None, k: int) -> dict:
    """One fixed search setting: the first value given in ``params``, else efSearch=64 / nprobe=8."""
    given = {"hnsw": params.get("efSearch", 64), "ivf": params.get("nprobe", 8),
             "ivfpq": params.get("nprobe", 8)}.get(kind)
    first = given[0] if isinstance(given, (tuple, list)) else given
    if kind == "hnsw":
        return {"efSearch": int(max(first, k))}
    if kind in ("ivf", "ivfpq"):
        return {"nprobe": int(min(first, n_lists))}
    return {}


def index_scaling(data, *, queries=None, k: int = 10, metric: str | None = None, holdout=None,
                  fractions=(0.125, 0.25, 0.5, 1.0), kind: str = "hnsw", params: dict | None = None,
                  random_state=0, backend: str = "auto", progress=False) -> IndexScaling:
    """Recall and true-neighbour margin on nested corpus subsets, with a recall-vs-log n trend.

    Each subset is the first ``fraction * n`` rows of one random permutation, so sizes are nested.
    The index keeps fixed parameters at every size (IVF keeps the smallest subset's ``nlist``; the
    search setting is efSearch=64 or nprobe=8 unless ``params`` names one), so only the corpus size
    changes. The margin is the median gap between the distances of the k-th nearest neighbour and
    the (k+1)-th, the closest distractor: as the index grows, distractors crowd in (at local
    dimension m the gap shrinks like n^(-1/m)) and an approximate search confuses them more easily.

    Parameters
    ----------
    progress : None, bool or callable
        ``progress(done, total, description)`` after each step: for every size, its exact search (tile
        by tile) and then its index built and searched; raising in it stops between two steps.

    Returns
    -------
    IndexScaling

    References
    ----------
    Reimers & Gurevych, "The curse of dense low-dimensional information retrieval for large index
    sizes", ACL 2021.
    """
    split = split_queries(data, queries, holdout=holdout, metric=metric, random_state=random_state)
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.size < 2 or (fr <= 0).any() or (fr > 1).any():
        raise EmbeddingInputError(f"fractions must be at least two values in (0, 1], got {list(fractions)}")
    n = split.corpus.shape[0]
    sizes = sorted({int(round(f * n)) for f in fr})
    check_k(k + 1, sizes[0], what="k + 1", context="points in the smallest subset")
    params = dict(params or {})
    if kind in ("ivf", "ivfpq"):
        params.setdefault("nlist", default_n_lists(sizes[0]))
    perm = check_random_state(random_state).permutation(n)
    q = np.ascontiguousarray(prepare_rows(split.queries, split.metric), dtype=np.float32)
    recalls, margins, label = [], [], kind
    # one bar for the whole run: the exact searches report into it as fractions of their step
    inner = (lambda step: sub_progress(progress, step, 2 * len(sizes))) if callable(progress) else (lambda step: False)
    with Progress(progress, 2 * len(sizes), "index-size scaling") as steps:
        for step, size in enumerate(sizes):
            rows = np.sort(perm[:size])
            sub = split.corpus[rows]
            steps.report(2 * step, f"exact search at {size:,} rows")
            nb = exact_knn(sub, split.queries, k=k + 1, metric=split.metric, backend=backend, progress=inner(2 * step))
            d = nb.distances.astype(np.float64)
            margins.append(float(np.median(d[:, k] - d[:, k - 1])))
            steps.report(2 * step + 1, f"building {kind} at {size:,} rows")
            x = np.ascontiguousarray(prepare_rows(sub, split.metric), dtype=np.float32)
            index, built, _ = build_index(kind, x, split.metric, params, random_state=random_state)
            search = _scaling_search(kind, params, built.get("nlist"), k)
            apply_search_params(index, search)
            _, ids = index.search(q, k)
            recalls.append(float(recall_per_query(ids, nb.indices[:, :k]).mean()))
            label = setting_label(kind, {**built, **search})
        steps.report(2 * len(sizes), "index-size scaling: done")
    logn = np.log10(sizes)
    slope, intercept = np.polyfit(logn, recalls, 1)
    mslope, _ = np.polyfit(logn, margins, 1)
    return IndexScaling(setting=label, sizes=list(sizes), recall_at_k=recalls, margin=margins,
                        recall_slope_per_decade=float(slope), recall_intercept=float(intercept),
                        margin_slope_per_decade=float(mslope))
