"""Statistics of a neighbour table: the one home of what every report reads off k-NN lists.

* :func:`overlap_counts`, :func:`recall_per_query`, :func:`recall_at_k`: set overlap of two tables
  (recall@k of an index or an approximate table; neighbourhood preservation between two spaces or a
  projection). Ids are distinct within a row, as every table here has them; negative ids (faiss marks
  missing results with -1) never match.
* :func:`k_occurrence`: how many lists each point is in (hubness, antihubs, reachability).
* :func:`relative_contrast`, :func:`expansion`: how far a query's k-th neighbour stands out from the
  corpus and from its 2k-th neighbour (distance concentration, query difficulty).
* :func:`duplicate_tolerance`, :func:`duplicate_mask`, :func:`local_intrinsic_dimension_from_distances`:
  the Levina-Bickel local ID of each query and the rule that says when a distance is 0 (the copies
  themselves are grouped in :mod:`.copies`).

Every function takes a :class:`~.table.Neighbors` table or its arrays, so the same code serves a
corpus self-join, a query sample, an index's answers and an exact ground truth.
"""

from __future__ import annotations

import numpy as np

from .._core import EmbeddingInputError

#: A nearest-neighbour distance at most this times the median second-neighbour distance is a
#: duplicate (absorbs the float32 rounding of normalised vectors).
DUPLICATE_RTOL = 1e-6


def _ids(table) -> np.ndarray:
    return np.asarray(getattr(table, "indices", table))


def _distances(table) -> np.ndarray:
    return np.asarray(getattr(table, "distances", table), dtype=np.float64)


# --------------------------------------------------------------------------------------------- overlap


def overlap_counts(found, truth) -> np.ndarray:
    """Number of ids each row of ``found`` (cut to truth's width) shares with the same row of ``truth``.

    One sort of the two rows side by side counts the shared ids (ids are distinct within a row);
    negative ids in ``found`` (missing results) are made distinct and never count.
    """
    found, truth = _ids(found), _ids(truth)
    if found.ndim != 2 or truth.ndim != 2 or found.shape[0] != truth.shape[0]:
        raise EmbeddingInputError(f"found has shape {found.shape} and truth {truth.shape}: both must be 2-D "
                                  "with one row per query")
    k = truth.shape[1]
    if found.shape[1] < k:
        raise EmbeddingInputError(f"found has {found.shape[1]} columns, fewer than k={k}")
    f = found[:, :k].astype(np.int64)
    missing = f < 0
    if missing.any():  # -1, -2, ... : distinct from each other and from every real id
        f = np.where(missing, -1 - np.arange(k)[None, :], f)
    both = np.sort(np.concatenate([f, truth.astype(np.int64)], axis=1), axis=1)
    return (both[:, 1:] == both[:, :-1]).sum(axis=1)


def recall_per_query(found, truth) -> np.ndarray:
    """Per-query set-overlap recall ``|found[i, :k] & truth[i]| / k``, k = truth's width.

    References
    ----------
    Aumueller, Bernhardsson, Faithfull, "ANN-Benchmarks", Information Systems 87, 2020 (recall@k by
    set overlap); Venna & Kaski, ICANN 2001 (the same overlap as neighbourhood preservation).

    Examples
    --------
    >>> recall_per_query([[1, 2], [3, -1]], [[2, 1], [3, 4]]).tolist()
    [1.0, 0.5]
    """
    truth = _ids(truth)
    return overlap_counts(found, truth) / truth.shape[1]


def recall_at_k(found, truth) -> float:
    """Mean over queries of :func:`recall_per_query`."""
    return float(recall_per_query(found, truth).mean())


# --------------------------------------------------------------------------------------------- occurrence


def k_occurrence(neighbors, n: int) -> np.ndarray:
    """k-occurrence N_k: how many neighbour lists each of ``n`` points appears in.

    Parameters
    ----------
    neighbors : Neighbors or array-like of int, shape (n_queries, k)
        A k-NN table (self excluded), or its ``indices``.
    n : int
        Number of corpus points (length of the result).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
        ``N_k[i]`` = number of rows of the table that contain ``i``. For a self-join table the values
        sum to ``n * k`` and average exactly ``k``; ``N_k = 0`` marks an antihub.

    References
    ----------
    Radovanovic, Nanopoulos, Ivanovic, "Hubs in space: popular nearest neighbors in high-dimensional
    data", JMLR 11, 2010.

    Examples
    --------
    >>> k_occurrence([[1], [0], [0]], 3).tolist()
    [2, 1, 0]
    """
    ids = _ids(neighbors)
    if ids.ndim != 2:
        raise EmbeddingInputError(f"neighbour indices must be 2-D (n_queries, k); got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise EmbeddingInputError(f"neighbour indices must be integers; got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise EmbeddingInputError(
            f"neighbour indices must lie in [0, {n}); found values from {ids.min()} to {ids.max()}"
        )
    return np.bincount(ids.ravel(), minlength=n).astype(np.int64)


# --------------------------------------------------------------------------------------------- contrast


def _kth(dist: np.ndarray, k: int, what: str) -> np.ndarray:
    if dist.ndim != 2 or not 1 <= k <= dist.shape[1]:
        raise EmbeddingInputError(f"{what} needs distances to at least {k} neighbours; got shape {dist.shape}")
    return dist[:, k - 1]


def zero_kth_distance(table, k: int) -> np.ndarray:
    """True where the k-th neighbour is (numerically) at distance 0: a copy of the query.

    "Numerically" is the rule of :func:`duplicate_mask`: at most :func:`duplicate_tolerance` of the
    table (when it has 2 columns), since identical rows normalised in different blocks can differ
    in float32 rounding (a chord of ~6e-8, not 0) depending on the BLAS and SIMD width.
    """
    dist = _distances(table)
    d_k = _kth(dist, k, "the k-th neighbour distance")
    tol = duplicate_tolerance(dist) if dist.shape[1] >= 2 else 0.0
    return ~(d_k > tol)


def relative_contrast(table, k: int, mean_distance=None) -> np.ndarray:
    """Per query ``RC_k = mean distance to the corpus / distance to the k-th neighbour``.

    ``mean_distance`` defaults to the table's own (``exact_knn(..., mean_distance=True)``). NaN where
    the k-th neighbour is at distance 0 (duplicates): the ratio is undefined there. Near 1 means the
    neighbours barely stand out, a hard query.

    References
    ----------
    He, Kumar, Chang, "On the difficulty of nearest neighbor search", ICML 2012; Aumueller &
    Ceccarello, Information Systems 101, 2021 (per query).
    """
    mean = getattr(table, "mean_distance", None) if mean_distance is None else mean_distance
    if mean is None:
        raise EmbeddingInputError("relative contrast needs each query's mean distance to the corpus "
                                  "(search with mean_distance=True)")
    d_k = _kth(_distances(table), k, "relative contrast")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(zero_kth_distance(table, k), np.nan, np.asarray(mean, dtype=np.float64) / d_k)


def expansion(table, k: int) -> np.ndarray:
    """Per query ``E_2k = D_2k / D_k``; NaN where ``D_k = 0`` (:func:`zero_kth_distance`). Near 1 means a hard query.

    References
    ----------
    Aumueller & Ceccarello, "The role of local dimensionality measures in benchmarking nearest
    neighbor search", Information Systems 101, 2021.
    """
    dist = _distances(table)
    d_k, d_2k = _kth(dist, k, "expansion"), _kth(dist, 2 * k, "expansion")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(zero_kth_distance(dist, k), np.nan, d_2k / d_k)


# --------------------------------------------------------------------------------------------- local ID


def duplicate_tolerance(table) -> float:
    """The distance at or below which two points count as one: :data:`DUPLICATE_RTOL` times the median
    second-neighbour distance of the table (needs >= 2 columns).

    Read off a table of *distinct* neighbours (:func:`.copies.distinct_neighbors`), so that copies
    filling the lists do not pull the median to 0.
    """
    dist = np.asarray(getattr(table, "distances", table))  # only the second column is converted
    if dist.ndim != 2 or dist.shape[1] < 2:
        raise EmbeddingInputError(f"the duplicate tolerance needs distances to 2 neighbours; got shape {dist.shape}")
    return DUPLICATE_RTOL * float(np.median(dist[:, 1].astype(np.float64)))


def duplicate_mask(table) -> np.ndarray:
    """True where the nearest neighbour is (numerically) at distance 0; needs >= 2 columns.

    "Numerically": at most :func:`duplicate_tolerance` (:data:`DUPLICATE_RTOL` times the median
    second-neighbour distance), which absorbs the float32 rounding of normalised vectors. The
    intrinsic-dimension estimators do not leave such points out: they fold every group of copies
    into one point first (:mod:`.copies`), so this mask only flags what a table of distinct
    neighbours still holds.
    """
    dist = _distances(table)
    return dist[:, 0] <= duplicate_tolerance(dist)


def levina_bickel_inverse(table) -> np.ndarray:
    """Per row, ``1 / m_k(x) = (1 / (k - 1)) sum_{j<k} log(T_k / T_j)`` over its k distances."""
    dist = _distances(table)
    k = dist.shape[1]
    with np.errstate(divide="ignore"):
        logs = np.log(dist[:, -1:] / dist[:, :-1])
    return logs.sum(axis=1) / (k - 1)


def local_intrinsic_dimension_from_distances(table, *, form: str = "mle") -> np.ndarray:
    """Local intrinsic dimension of each row from the distances to its k neighbours, NaN for duplicates.

    ``form="mle"``: Levina-Bickel ``m_k(x) = [(1 / (k - 1)) sum_{j<k} log(T_k / T_j)]^(-1)``;
    ``form="hill"``: Amsaleg et al.'s ``-[(1 / k) sum_{i<=k} log(r_i / r_k)]^(-1)``, which is
    ``k / (k - 1)`` times the first. A row whose k distances are all equal gets ``inf`` (no growth of
    density with radius: the hardest case); a row whose nearest neighbour is at distance 0 (a
    duplicate, see :func:`duplicate_mask`) gets NaN: give it the distances to distinct neighbours
    (:func:`.copies.distinct_neighbors`) for the local ID of the point it copies.

    References
    ----------
    Levina & Bickel, "Maximum likelihood estimation of intrinsic dimension", NIPS 17 (2005).
    Amsaleg, Chelly, Furon, Girard, Houle, Kawarabayashi & Nett, "Estimating local intrinsic
    dimensionality", KDD 2015.

    Examples
    --------
    >>> round(float(local_intrinsic_dimension_from_distances([[0.5, 1.0], [0.6, 1.0]], form="hill")[0]), 4)
    2.8854
    """
    if form not in ("mle", "hill"):
        raise EmbeddingInputError(f"form must be 'mle' (Levina-Bickel) or 'hill' (Amsaleg et al.), got {form!r}")
    dist = _distances(table)
    k = dist.shape[1]
    if k < 2:
        raise EmbeddingInputError(f"local intrinsic dimension needs k >= 2 neighbours, got {k}")
    dup = duplicate_mask(dist)
    lid = np.full(len(dist), np.nan)
    with np.errstate(divide="ignore"):
        lid[~dup] = 1.0 / levina_bickel_inverse(dist[~dup])
    if form == "hill":
        lid *= k / (k - 1)
    return lid
