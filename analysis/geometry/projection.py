"""2-D and 3-D projections of an embedding set, with a measure of how far to trust them.

A projection always distorts; a picture without a trust score invites reading clusters that are not
there. :func:`project` therefore returns, with the coordinates, two scores computed on a sample of
points: the k-nearest-neighbour preservation between the original space and the projection
(methods sheet, "Index statistics"), and the trustworthiness of Venna & Kaski (2001) as implemented
by scikit-learn.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from .._core import (
    EmbeddingInputError,
    Result,
    check_k,
    check_metric,
    check_random_state,
    metric as _field,
    prepare_rows,
)
from ..embeddings import EmbeddingSet, as_embedding_set
from ..neighbors import exact_knn, recall_at_k

METHODS = ("pca", "umap")


@dataclass(frozen=True, repr=False)
class Projection(Result):
    """Low-dimensional coordinates of (a sample of) an embedding set and how well they keep neighbours."""

    _title = "projection with trust scores"
    coords: np.ndarray = _field("Projected coordinates, float32, shape (n_points, n_components).")
    rows: np.ndarray = _field("Row of the original set for each projected point (all rows unless sampled).")
    method: str = _field("Projection method: 'pca' or 'umap'.")
    metric: str = _field("Similarity of the original space the projection and the scores use.")
    n_components: int = _field("Output dimension (2 or 3).")
    k: int = _field("Neighbourhood size of the trust scores.")
    knn_preservation: float = _field(
        "Mean share of each point's k nearest neighbours in the original space that are also among "
        "its k nearest in the projection (1 = every neighbourhood kept; k/n = chance).",
        "Venna & Kaski, 2001; Lee & Verleysen, 2009",
    )
    trustworthiness: float = _field(
        "scikit-learn trustworthiness on the trust sample: 1 = no false neighbours introduced by the "
        "projection; about 0.5 = random.",
        "Venna & Kaski, 2001",
    )
    trust_sample: int = _field("Points the two trust scores were measured on.")
    explained_variance_ratio: np.ndarray | None = _field(
        "PCA only: share of the variance each component keeps.", default=None
    )
    seconds: float = _field("Wall time of projection and scoring.", default=float("nan"))
    n_total: int = _field("Rows in the original set.", default=0)

    @property
    def sampled(self) -> bool:
        """True when only a sample of the rows was projected."""
        return self.coords.shape[0] < self.n_total


def _pca(x: np.ndarray, n_components: int, seed: int):
    from sklearn.decomposition import PCA

    pca = PCA(n_components=n_components, random_state=seed)
    coords = pca.fit_transform(x)
    return coords.astype(np.float32), pca.explained_variance_ratio_.astype(np.float64)


def _umap(emb: EmbeddingSet, n_components: int, metric: str, n_neighbors: int, seed: int):
    """UMAP fed with embgeo's exact neighbour table (cached on the set), so pynndescent is skipped.

    UMAP counts the point itself as its first neighbour, so self is prepended with distance 0.
    For cosine, chord distances d are turned into UMAP's cosine distance 1 - cos = d^2 / 2.
    """
    import umap

    nn = emb.neighbors(n_neighbors - 1, metric=metric)
    dist = nn.distances.astype(np.float32)
    if metric == "cosine":
        dist = 0.5 * dist**2
    idx = np.hstack([np.arange(emb.n, dtype=np.int64)[:, None], nn.indices.astype(np.int64)])
    dist = np.hstack([np.zeros((emb.n, 1), np.float32), dist])
    reducer = umap.UMAP(n_components=n_components, n_neighbors=n_neighbors, metric=metric,
                        random_state=seed, precomputed_knn=(idx, dist, None), n_jobs=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="umap")
        coords = reducer.fit_transform(prepare_rows(emb.vectors, metric))
    return np.asarray(coords, dtype=np.float32)


def project(data, method: str = "pca", n_components: int = 2, metric: str = "cosine", *,
            sample: int | None = None, k: int = 10, n_neighbors: int = 15, trust_sample: int = 1000,
            random_state=0) -> Projection:
    """Project embeddings to 2-D or 3-D with PCA or UMAP and score how well neighbours survive.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
    method : {"pca", "umap"}
        PCA (scikit-learn) or UMAP (McInnes, Healy & Melville, 2018; umap-learn). Under cosine both
        work on the unit-normalised vectors. UMAP gets its k-NN graph from the set's cached exact
        neighbour table (:meth:`EmbeddingSet.neighbors`) instead of running its own search.
    n_components : {2, 3}
    metric : {"cosine", "dot", "euclidean"}
        The original space's similarity. The projection is compared with Euclidean distance.
    sample : int, optional
        Project only this many rows, drawn uniformly without replacement (the rows used are in
        ``rows``). Useful above ~100k points where UMAP gets slow.
    k : int
        Neighbourhood size of the trust scores.
    n_neighbors : int
        UMAP's neighbourhood size (counting the point itself, as umap-learn does).
    trust_sample : int
        The trust scores are measured on this many projected points (all if fewer). Neighbour
        preservation compares each sampled point's k nearest among *all* projected points in both
        spaces; trustworthiness (scikit-learn) uses neighbourhoods within the trust sample only.
    random_state : int or numpy.random.Generator

    Returns
    -------
    Projection

    References
    ----------
    Venna, J. & Kaski, S. (2001). Neighborhood preservation in nonlinear projection methods: an
    experimental study. ICANN 2001.
    McInnes, L., Healy, J. & Melville, J. (2018). UMAP: Uniform Manifold Approximation and Projection
    for Dimension Reduction. arXiv:1802.03426.

    Examples
    --------
    >>> import numpy as np
    >>> from embgeo.analysis import project
    >>> x = np.random.default_rng(0).normal(size=(300, 16)).astype("float32")
    >>> p = project(x, "pca", 2, metric="euclidean")
    >>> p.coords.shape
    (300, 2)
    """
    t0 = time.perf_counter()
    emb = as_embedding_set(data)
    metric = check_metric(metric)
    if method not in METHODS:
        raise EmbeddingInputError(f"unknown projection method {method!r}; choose one of {', '.join(METHODS)}")
    if n_components not in (2, 3):
        raise EmbeddingInputError(f"n_components must be 2 or 3, got {n_components!r}")
    if method == "umap" and metric == "dot":
        raise EmbeddingInputError("UMAP needs a distance; use metric='cosine' or 'euclidean' (dot is not a distance)")
    rng = check_random_state(random_state)
    seed = int(rng.integers(2**31 - 1))
    n_total = emb.n
    if sample is not None and sample < n_total:
        check_k(int(sample), n_total, what="sample", context="rows")
        rows = np.sort(rng.choice(n_total, size=int(sample), replace=False))
        work = emb.subset(rows)
    else:
        rows = np.arange(n_total)
        work = emb
    check_k(k, work.n - 1, context="neighbours among the projected points (self excluded)")
    if method == "pca":
        if work.dim < n_components:
            raise EmbeddingInputError(f"cannot take {n_components} principal components of {work.dim}-D vectors")
        coords, evr = _pca(prepare_rows(work.vectors, metric), n_components, seed)
    else:
        check_k(n_neighbors - 1, work.n - 1, what="n_neighbors - 1", context="neighbours (self excluded)")
        coords, evr = _umap(work, n_components, metric, n_neighbors, seed), None

    # Trust scores on a sample of the projected points.
    m = min(trust_sample, work.n)
    q = np.arange(work.n) if m == work.n else np.sort(rng.choice(work.n, size=m, replace=False))
    if m == work.n:
        orig = work.neighbors(k, metric=metric).indices  # cached, reused by dashboards
    else:
        orig = exact_knn(work.vectors, k=k, metric=metric, query_indices=q).indices
    proj = exact_knn(coords, k=k, metric="euclidean", query_indices=q, validate=False).indices
    preservation = recall_at_k(proj, orig)  # neighbourhood preservation: the same set overlap
    trust = _trustworthiness(work.vectors[q], coords[q], metric, k)
    return Projection(coords=coords, rows=rows, method=method, metric=metric, n_components=n_components,
                      k=k, knn_preservation=preservation, trustworthiness=trust, trust_sample=m,
                      explained_variance_ratio=evr, seconds=time.perf_counter() - t0, n_total=n_total)


def _trustworthiness(x: np.ndarray, y: np.ndarray, metric: str, k: int) -> float:
    from sklearn.manifold import trustworthiness

    kk = min(k, (x.shape[0] - 1) // 2)  # scikit-learn requires k < n / 2
    if kk < 1:
        return float("nan")
    if metric == "dot":  # rank by -<x, y>, shifted non-negative (ranks unchanged) for scikit-learn
        d = -(x.astype(np.float64) @ x.T.astype(np.float64))
        return float(trustworthiness(d - d.min(), y, n_neighbors=kk, metric="precomputed"))
    return float(trustworthiness(prepare_rows(x, metric), y, n_neighbors=kk, metric="euclidean"))
