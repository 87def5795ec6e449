"""The container every analysis takes: vectors plus what is known about them."""

from __future__ import annotations

import html
from dataclasses import dataclass, replace

import numpy as np

from .._core import (
    EmbeddingInputError,
    Moments,
    as_float32_matrix,
    blocked_row_norms,
    check_k,
    check_metric,
    check_magnitudes,
    check_same_dim,
    check_weights,
    float32_matrix_from_blocks,
    is_file_map,
    is_scratch_map,
    iter_row_blocks,
    nonfinite_error,
    row_peaks,
    scan_moments,
)
from ..neighbors import Neighbors, approximate_knn, exact_knn


@dataclass(frozen=True)
class ANNBenchmark:
    """Queries and ground truth stored beside a corpus (an ann-benchmarks ``.hdf5`` file).

    ``neighbors`` are the file's own true neighbour ids for each query, ``distances`` their
    distances, and ``metric`` the file's distance mapped to embgeo's names (angular -> cosine).
    """

    queries: np.ndarray
    neighbors: np.ndarray | None
    distances: np.ndarray | None
    metric: str | None


class EmbeddingSet:
    """Embedding vectors with optional metadata, item weights and a name.

    Parameters
    ----------
    vectors : array-like of shape (n, d)
        Kept as a read-only float32 view when it already is float32 (a memory map stays a memory
        map); any other numeric dtype is converted into a new float32 array. The caller's array is
        never written to.
    metadata : pandas.DataFrame, optional
        One row per vector (labels, texts, ids). A column named ``text`` is used for hover text and
        neighbour lists.
    weights : array-like of shape (n,) or (n, 1), optional
        Non-negative item weights or frequencies (for example word frequencies): exactly one finite
        number per vector (any other shape is refused, never flattened). Stored as given (float64);
        :attr:`probabilities` normalises them to sum 1 without overflow.
    name : str
        Shown in reports and dashboards.
    source : str, optional
        Where the vectors came from (a path).
    benchmark : ANNBenchmark, optional
        Queries and ground-truth neighbours that came with the corpus, checked against it (integer row
        ids in range, one row per query); with ``on_invalid="drop"`` the ids are renumbered to the kept
        rows, and refused if they name a dropped one.
    on_invalid : {"raise", "drop"}
        What to do with rows holding NaN or inf: raise a clear error (default), or leave them out;
        the dropped row numbers are kept in :attr:`dropped_rows`.
    validate : bool
        Scan for NaN/inf rows (block by block). Turn off only for data checked elsewhere.

    Notes
    -----
    Neighbour tables are cached per (metric, exact): :meth:`neighbors` with a k no larger than a
    cached table's slices it instead of searching again, so a full report computes k-NN once. A table
    computed elsewhere joins the cache through :meth:`attach_neighbors`; :meth:`with_neighbors` gives a
    view whose every request under the table's metric is answered from it.
    """

    def __init__(self, vectors, metadata=None, weights=None, *, name: str = "embeddings",
                 source: str | None = None, benchmark: ANNBenchmark | None = None,
                 on_invalid: str = "raise", validate: bool = True):
        if on_invalid not in ("raise", "drop"):
            raise EmbeddingInputError(f"on_invalid must be 'raise' or 'drop', got {on_invalid!r}")
        x = as_float32_matrix(vectors)
        self.dropped_rows = np.empty(0, dtype=np.int64)
        if metadata is not None:
            import pandas as pd

            if not isinstance(metadata, pd.DataFrame):
                metadata = pd.DataFrame(metadata)
            if len(metadata) != x.shape[0]:
                raise EmbeddingInputError(
                    f"metadata has {len(metadata)} rows but there are {x.shape[0]} vectors"
                )
            metadata = metadata.reset_index(drop=True)
        if weights is not None:
            check_weights(weights, x.shape[0])  # one finite non-negative number per row, or raise
            weights = np.asarray(weights, dtype=np.float64).reshape(-1).copy()  # (n,) or (n, 1): safe now
        if benchmark is not None:
            check_benchmark(benchmark, x)
        if validate:
            peaks = row_peaks(x)  # one pass for both checks: a row is finite exactly when its peak is
            bad = np.flatnonzero(~np.isfinite(peaks))
            if len(bad):
                if on_invalid == "raise":
                    raise nonfinite_error(bad, x.shape[0])
                keep = np.setdiff1d(np.arange(x.shape[0]), bad)
                # a new array (a scratch map when large): the caller's data is untouched
                x = float32_matrix_from_blocks(len(keep), x.shape[1], _kept_blocks(x, keep), what="vectors")
                metadata = None if metadata is None else metadata.iloc[keep].reset_index(drop=True)
                weights = None if weights is None else weights[keep]
                benchmark = _renumbered(benchmark, keep, bad)
                self.dropped_rows = bad
                if weights is not None:
                    check_weights(weights, x.shape[0])
                peaks = peaks[keep]
            check_magnitudes(x, peaks=peaks)
        self.vectors = x
        self.metadata = metadata
        self.weights = weights
        self.name = str(name)
        self.source = source
        self.benchmark = benchmark
        self._neighbors: dict[tuple[str, bool], Neighbors] = {}
        self._moments: dict[tuple[bool, bool], Moments] = {}

    # -------------------------------------------------------------------------------- basic facts
    @property
    def n(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return self.n

    @property
    def storage_note(self) -> str:
        """Where the vectors live, for reprs: ``" (memory-mapped)"`` when they are read in place from the
        caller's file, ``" (scratch map on disk)"`` when they were converted (from another dtype, or
        from shards) into a float32 scratch file, else ``""`` (in memory)."""
        if is_file_map(self.vectors):
            return " (memory-mapped)"
        return " (scratch map on disk)" if is_scratch_map(self.vectors) else ""

    @property
    def probabilities(self) -> np.ndarray | None:
        """Weights normalised to sum 1 (the p of Zipfian statistics), or None."""
        # check_weights scales before summing: a plain sum of weights near 1e308 overflows to inf
        return None if self.weights is None else check_weights(self.weights, self.n)

    @property
    def texts(self) -> list[str] | None:
        """The ``text`` metadata column, if there is one."""
        if self.metadata is None or "text" not in self.metadata.columns:
            return None
        return self.metadata["text"].astype(str).tolist()

    def label(self, i: int) -> str:
        """A short human label for row ``i``: its text, else its id, else its number."""
        if self.metadata is not None:
            for col in ("text", "word", "label", "id"):
                if col in self.metadata.columns:
                    return str(self.metadata[col].iloc[i])
        return f"#{i}"

    def subset(self, rows, *, name: str | None = None) -> "EmbeddingSet":
        """A new set holding ``rows`` (a copy), with their metadata and weights."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return EmbeddingSet(
            np.array(self.vectors[rows]),
            None if self.metadata is None else self.metadata.iloc[rows].reset_index(drop=True),
            None if self.weights is None else self.weights[rows],
            name=name or f"{self.name}[{len(rows)} rows]", source=self.source, validate=False,
        )

    def with_vectors(self, vectors, *, name: str | None = None) -> "EmbeddingSet":
        """The same items (metadata, weights) with new vectors, e.g. after a transform."""
        vectors = as_float32_matrix(vectors)
        if vectors.shape[0] != self.n:
            raise EmbeddingInputError(f"new vectors have {vectors.shape[0]} rows, the set has {self.n}")
        return EmbeddingSet(vectors, self.metadata, self.weights, name=name or self.name,
                            source=self.source, benchmark=self.benchmark)

    # -------------------------------------------------------------------------------- neighbours
    def neighbors(self, k: int = 10, *, metric: str = "cosine", exact: bool = True,
                  backend: str = "auto", progress=None, sample_truth=None, memory_limit=None) -> Neighbors:
        """k nearest neighbours of every item (self excluded), cached and reused.

        ``exact=False`` uses the approximate join (:func:`approximate_knn`), whose recall is measured
        on a sample and carried on the result; ``sample_truth`` (rows, indices) passes it exact
        neighbours of a sample the caller has already searched. A cached table with at least ``k``
        columns is sliced, not recomputed. ``progress``: a bar (bool) or a callback, passed to the
        search (see :class:`~embgeo.analysis.Progress`). ``memory_limit``: bytes the search may take
        (default: half the available memory; see :func:`exact_knn` and :func:`approximate_knn`).
        """
        metric = check_metric(metric)
        check_k(k, self.n - 1, context="neighbours (self excluded)")
        key = (metric, bool(exact))
        cached = self._neighbors.get(key)
        if cached is None and not exact:  # an exact table serves approximate requests too
            cached = self._neighbors.get((metric, True))
        if cached is not None and cached.k >= k:
            return cached if cached.k == k else cached.head(k)
        if exact:
            result = exact_knn(self.vectors, k=k, metric=metric, backend=backend, progress=progress,
                               memory_limit=memory_limit)
        else:
            result = approximate_knn(self.vectors, k=k, metric=metric, progress=progress, sample_truth=sample_truth,
                                     memory_limit=memory_limit)
        self._neighbors[key] = result
        return result

    def cached_neighbors(self, k: int, *, metric: str = "cosine", exact: bool = True) -> Neighbors | None:
        """The cached table cut to ``k`` columns if one at least that wide exists, else None.

        ``exact=True`` looks for an exact table only; ``exact=False`` for the one
        :meth:`neighbors` would answer an approximate request with (an exact table serves too).
        Never searches: statistics on a query sample use it to slice rows they would otherwise
        search again.
        """
        metric = check_metric(metric)
        for key in [(metric, True)] if exact else [(metric, False), (metric, True)]:
            cached = self._neighbors.get(key)
            if cached is not None and cached.k >= k:
                return cached.head(k)
        return None

    def norms(self) -> np.ndarray:
        """L2 norm of every vector (float32), read block by block (a memory map is not loaded whole)."""
        return blocked_row_norms(self.vectors)

    def cached_tables(self) -> list[Neighbors]:
        """Every neighbour table cached on this set (each once), e.g. to account for their memory."""
        return list({id(t): t for t in self._neighbors.values()}.values())

    def attach_neighbors(self, table: Neighbors) -> None:
        """Cache a neighbour table of this set computed elsewhere (one row per item, self excluded).

        It is stored under its metric and exactness, and later :meth:`neighbors` requests it covers are
        sliced from it.
        """
        if not isinstance(table, Neighbors):
            raise EmbeddingInputError(f"attach_neighbors takes a Neighbors table, got {type(table).__name__}")
        if table.n_queries != self.n or (table.indices.size and (table.indices.min() < 0
                                                                  or table.indices.max() >= self.n)):
            raise EmbeddingInputError(
                f"the table has {table.n_queries} rows with ids in [{table.indices.min()}, {table.indices.max()}]; "
                f"a table of this set needs {self.n} rows with ids in [0, {self.n})")
        self._neighbors[(check_metric(table.metric), bool(table.exact))] = table

    def with_neighbors(self, table: Neighbors) -> "EmbeddingSet":
        """A view of the same items whose every neighbour request under ``table.metric`` is answered
        from ``table``, exact or not.

        A report built on an approximate table hands the view to parts that ask for exact neighbours,
        so they read the table (its ``exact`` flag and recall travel with it) instead of starting an
        exact search. The view shares this set's arrays and moments; this set's cache is untouched.
        """
        view = EmbeddingSet(self.vectors, self.metadata, self.weights, name=self.name, source=self.source,
                            benchmark=self.benchmark, validate=False)
        view._moments = self._moments  # the same vectors: the same moments
        view._neighbors = dict(self._neighbors)
        view.attach_neighbors(table)
        view._neighbors[(table.metric, not table.exact)] = table
        return view

    def moments(self, *, normalize: bool = False, weighted: bool = False) -> Moments:
        """Mean and scatter of the rows (``normalize``: of their unit vectors), cached.

        ``weighted`` weights each row by its item weight (the Zipfian view; needs weights). One blocked
        float64 pass serves isotropy, the PCA dimension of the intrinsic-dimension report and the
        dashboard's per-dimension statistics alike.
        """
        if weighted and self.weights is None:
            raise EmbeddingInputError(
                "weighted statistics need item weights (frequencies): build the set with "
                "EmbeddingSet(vectors, weights=...)")
        key = (bool(normalize), bool(weighted))
        if key not in self._moments:
            # the probabilities, not the raw weights: the moments are scale-free, and weights near 1e308
            # would overflow their sums
            self._moments[key] = scan_moments(self.vectors, self.probabilities if weighted else None,
                                              normalize=key[0])
        return self._moments[key]

    def attach_moments(self, moments: Moments, *, weighted: bool = False) -> None:
        """Cache moments of this set computed elsewhere (the Dask engine's), read by :meth:`moments`.

        They must be of all ``n`` rows and this dimension; ``moments.normalize`` says which kind.
        """
        if not isinstance(moments, Moments):
            raise EmbeddingInputError(f"attach_moments takes Moments, got {type(moments).__name__}")
        if moments.dim != self.dim or moments.count != self.n:
            raise EmbeddingInputError(f"the moments are of {moments.count} rows of dimension {moments.dim}; "
                                      f"this set has {self.n} rows of dimension {self.dim}")
        if weighted and self.weights is None:
            raise EmbeddingInputError("weighted moments attached to a set without weights")
        self._moments[(bool(moments.normalize), bool(weighted))] = moments

    def clear_cache(self) -> None:
        self._neighbors.clear()
        self._moments.clear()

    # -------------------------------------------------------------------------------- reprs
    def _summary(self) -> list[tuple[str, str]]:
        rows = [("vectors", f"{self.n:,} x {self.dim} float32" + self.storage_note)]
        if self.metadata is not None:
            rows.append(("metadata", ", ".join(map(str, self.metadata.columns)) or "(no columns)"))
        if self.weights is not None:
            rows.append(("weights", f"sum {self.weights.sum():.4g}, max share {self.probabilities.max():.3g}"))
        if self.benchmark is not None:
            rows.append(("benchmark", f"{len(self.benchmark.queries):,} queries, metric {self.benchmark.metric}"))
        if len(self.dropped_rows):
            rows.append(("dropped rows", f"{len(self.dropped_rows)} with NaN/inf"))
        if self.source:
            rows.append(("source", str(self.source)))
        return rows

    def __repr__(self) -> str:
        body = "\n".join(f"  {k:<13}{v}" for k, v in self._summary())
        return f"EmbeddingSet {self.name!r}\n{body}"

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in self._summary())
        return (f"<div class='embgeo-result'><b>EmbeddingSet {html.escape(self.name)}</b>"
                f"<table class='embgeo-table'>{rows}</table></div>")


def _kept_blocks(x: np.ndarray, keep: np.ndarray):
    """``x[keep]`` (sorted row numbers) as (start, block) pairs, read one block of ``x`` at a time."""
    done = 0
    for start, block in iter_row_blocks(x):
        local = keep[(keep >= start) & (keep < start + len(block))] - start
        if len(local):
            yield done, block[local]
            done += len(local)


def _rows(ids: np.ndarray, noun: str = "row") -> str:
    """``row 5`` for one, ``rows [3, 7, ...]`` for several."""
    shown = ", ".join(str(int(i)) for i in ids[:5])
    return f"{noun} {shown}" if len(ids) == 1 else f"{noun}s [{shown}{', ...' if len(ids) > 5 else ''}]"


def check_benchmark(b: ANNBenchmark, x: np.ndarray) -> None:
    """Refuse ground truth that cannot be of the corpus ``x``, before anything is scored against it.

    ``neighbors`` must be integer row numbers of ``x`` (0 to n - 1), one row per query: shape (m, k);
    ``distances``, when given, finite numbers of the same shape. A 1-D table, a float table, a negative
    or an out-of-range id would otherwise crash the ground truth or score every index at recall 0.
    """
    n, q = x.shape[0], np.asarray(b.queries)
    if q.ndim != 2:
        raise EmbeddingInputError(f"benchmark queries (the 'test' dataset) have shape {q.shape}; they must be "
                                  "a 2-D array of shape (n_queries, dim)")
    check_same_dim(x, q)
    m, nb = q.shape[0], b.neighbors
    where = "benchmark ground truth (the 'neighbors' dataset of an ann-benchmarks file)"
    if nb is not None:
        nb = np.asarray(nb)
        if nb.ndim != 2 or nb.shape[0] != m or nb.shape[1] == 0:
            raise EmbeddingInputError(f"{where} has shape {nb.shape}; it must hold one row of true neighbour ids "
                                      f"per query, shape ({m}, k) for the {m} queries")
        if nb.dtype.kind not in "iu":
            raise EmbeddingInputError(f"{where} has dtype {nb.dtype}; ground-truth ids must be integers (row "
                                      "numbers of the corpus, 'train'): store them as int32")
        negative = np.flatnonzero((nb < 0).any(axis=1))
        if len(negative):
            raise EmbeddingInputError(f"{where} holds negative ids (at {_rows(negative, 'query')}); ids must be "
                                      f"row numbers 0..{n - 1} of the corpus ('train')")
        if nb.size and nb.max() >= n:
            raise EmbeddingInputError(f"{where} holds ids up to {int(nb.max())}, but the corpus has {n} rows "
                                      f"(ids 0..{n - 1}); the ground truth must be of this file's 'train' set")
    d = b.distances
    if d is not None:
        d = np.asarray(d)
        want = f"{nb.shape}, the shape of the neighbours" if nb is not None else f"({m}, k)"
        if d.ndim != 2 or d.shape[0] != m or (nb is not None and d.shape != nb.shape):
            raise EmbeddingInputError(f"benchmark distances (the 'distances' dataset) have shape {d.shape}; they "
                                      f"must have shape {want}")
        if d.dtype.kind not in "iuf":
            raise EmbeddingInputError(f"benchmark distances (the 'distances' dataset) have dtype {d.dtype}; they "
                                      "must be numbers")
        bad = np.flatnonzero(~np.isfinite(d).all(axis=1))
        if len(bad):
            raise EmbeddingInputError(f"benchmark distances (the 'distances' dataset) hold NaN or inf (at "
                                      f"{_rows(bad, 'query')}); every true neighbour's distance must be finite")


def _renumbered(b: ANNBenchmark | None, keep: np.ndarray, dropped: np.ndarray) -> ANNBenchmark | None:
    """The benchmark of the rows kept after dropping ``dropped``: its ground-truth ids renumbered to the
    kept rows' new positions. Raises when an id names a dropped row: the file's recall could no longer be
    scored against the ground truth it stores."""
    if b is None or b.neighbors is None:
        return b
    nb = np.asarray(b.neighbors)
    hit = np.unique(nb[np.isin(nb, dropped)])
    if len(hit):
        raise EmbeddingInputError(
            f"the benchmark ground truth ('neighbors') names {_rows(hit)} as true neighbours, but they hold "
            "NaN/inf and on_invalid='drop' dropped them, so recall against it could not be scored; fix those "
            "rows at the source")
    return replace(b, neighbors=np.searchsorted(keep, nb).astype(nb.dtype))


def as_embedding_set(data, *, name: str | None = None) -> EmbeddingSet:
    """Return ``data`` if it is an :class:`EmbeddingSet`, else wrap the (n, d) array in one.

    ``name`` names a new set (a set passed in keeps its own name).
    """
    if isinstance(data, EmbeddingSet):
        return data
    return EmbeddingSet(data) if name is None else EmbeddingSet(data, name=name)
