"""Near-duplicate vectors: points whose nearest cosine neighbour is (almost) the same direction."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._core import EmbeddingInputError, Result, check_k, metric as _field
from ..embeddings import as_embedding_set

#: Default cosine at or above which two vectors count as near-duplicates.
DUPLICATE_COSINE = 0.99


@dataclass(frozen=True, repr=False)
class NearDuplicateReport(Result):
    """Points whose nearest cosine neighbour is (almost) the same direction."""

    _title = "near-duplicate vectors"
    threshold: float = _field("Cosine at or above which a nearest neighbour counts as a near-duplicate.")
    chord_threshold: float = _field("The same threshold as a chord distance, sqrt(2 - 2 cos).")
    rate: float = _field("Share of points whose nearest neighbour is a near-duplicate.")
    n_points: int = _field("Points whose nearest neighbour is a near-duplicate.")
    n_exact: int = _field("Points whose nearest unit vector is identical to theirs (chord distance 0).")
    n_pairs: int = _field("Distinct near-duplicate pairs (i < j) among the k-NN lists.")
    examples: object = _field("The most similar near-duplicate pairs (i, j, cosine, labels).")
    duplicate_of: np.ndarray = _field("Nearest neighbour of each point if it is a near-duplicate, else -1.",
                                      default=None, summary=False)
    sample_size: int | None = _field(
        "Query points the rate was measured on, each searched against the whole set (None: every point).",
        default=None)
    rate_ci: tuple | None = _field("95 % Wilson interval of the rate when it comes from a query sample.",
                                   "Wilson, JASA 1927", default=None)


def near_duplicates(data, *, threshold: float = DUPLICATE_COSINE, k: int = 10,
                    max_examples: int = 20) -> NearDuplicateReport:
    """Find points whose nearest cosine neighbour has cosine >= ``threshold``.

    The test is made on the chord distance ``||u_i - u_j|| <= sqrt(2 - 2 * threshold)``, which the
    neighbour engine computes directly from the vectors (accurate for tiny distances, where
    ``1 - cos`` in float32 is not). Neighbours come from the set's shared cosine k-NN table; ``k``
    only selects which cached table to read (k = 10 matches the other reports' default), while the
    rate uses the first neighbour. Pairs are counted from all k neighbours, so a group of more than
    k + 1 copies is undercounted.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
    threshold : float in (-1, 1]
        Cosine threshold; default 0.99.
    k : int
        Size of the shared neighbour table to read.
    max_examples : int
        Example pairs listed, most similar first.

    Returns
    -------
    NearDuplicateReport

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 16))
    >>> x[10] = x[3] * 2.0  # same direction
    >>> near_duplicates(x).n_points
    2
    """
    data = as_embedding_set(data)
    threshold = float(threshold)
    if not -1.0 < threshold <= 1.0:
        raise EmbeddingInputError(f"threshold is a cosine and must lie in (-1, 1]; got {threshold}")
    k = check_k(k, data.n - 1, context="neighbours (self excluded)")
    max_examples = check_k(max_examples, 10**9, what="max_examples", context="examples")
    return near_duplicates_from_table(data, data.neighbors(k, metric="cosine"), None, threshold=threshold,
                                      max_examples=max_examples)


def near_duplicates_from_table(data, table, rows, *, threshold: float = DUPLICATE_COSINE,
                               max_examples: int = 20) -> NearDuplicateReport:
    """:func:`near_duplicates` from a cosine table of the query ``rows`` (None: every point) searched
    against the whole set. With a sample, ``rate`` estimates the whole set's rate (with a Wilson
    interval), and the counts and pairs are those among the sampled queries."""
    chord = math.sqrt(max(0.0, 2.0 - 2.0 * threshold))
    row_ids = np.arange(table.n_queries) if rows is None else np.asarray(rows, dtype=np.int64)
    dist = table.distances.astype(np.float64)
    close = dist <= chord
    first = close[:, 0]
    duplicate_of = np.where(first, table.indices[:, 0], -1)

    # every close (point, neighbour) entry as an unordered pair, each pair kept once
    hits, cols = np.nonzero(close)
    a, b = row_ids[hits], table.indices[hits, cols]
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)
    pairs, first_seen = np.unique(pairs, axis=0, return_index=True)
    pair_cos = 1.0 - 0.5 * dist[hits, cols][first_seen] ** 2
    order = np.argsort(-pair_cos, kind="stable")[:max_examples]
    import pandas as pd

    examples = pd.DataFrame({
        "i": pairs[order, 0], "j": pairs[order, 1], "cosine": pair_cos[order],
        "label_i": [data.label(int(r)) for r in pairs[order, 0]],
        "label_j": [data.label(int(r)) for r in pairs[order, 1]],
    })
    return NearDuplicateReport(
        threshold=threshold, chord_threshold=chord, rate=float(first.mean()), n_points=int(first.sum()),
        n_exact=int((dist[:, 0] == 0).sum()), n_pairs=len(pairs), examples=examples,
        duplicate_of=duplicate_of if rows is None else None,
        sample_size=None if rows is None else len(row_ids),
        rate_ci=None if rows is None else wilson_interval(int(first.sum()), len(row_ids)),
    )


def wilson_interval(hits: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion (95 % by default); good near 0 and 1."""
    p = hits / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    low = 0.0 if hits == 0 else max(0.0, centre - half)  # exact ends: no rounding residue at 0 or 1
    return (low, 1.0 if hits == trials else min(1.0, centre + half))
