"""The dashboard's logic, without any view: state in traitlets, results cached per setting.

:class:`DashboardController` calls :mod:`embgeo.analysis` and keeps what it computed in a
byte-budgeted LRU cache (:mod:`._cache`), keyed by the settings that produced it, so switching panels or
going back to an earlier setting does not recompute while a long session stays bounded. It knows
nothing about plotly or ipywidgets layout, so it runs (and is tested) without a kernel or a browser.
Long work reports progress through the ``progress``/``status`` traits of :class:`._tasks.TaskRunner`,
tile by tile during neighbour searches, and can be cancelled.
"""

from __future__ import annotations

import numpy as np
import traitlets

from embgeo.analysis import (
    TRANSFORMS,
    EmbeddingInputError,
    EmbeddingSet,
    Verdict,
    apply_transform,
    compare,
    datasets,
    geometry_report,
    hubness_report,
    index_report,
    intrinsic_dimension,
    isotropy_report,
    live_index_report,
    load,
    project,
    scan_moments,
    verdicts,
)

from ._cache import ByteBudgetCache, default_budget
from ._colours import category_codes, colour_columns, numeric_colours
from ._options import (
    COMPARE_SAMPLE,
    DEFAULT_INDEX_KINDS,
    DERIVED_COLOURS,
    ID_SAMPLE,
    INDEX_KINDS,
    INDEX_SWEEP,
    LIVE_QUERIES,
    LIVE_SCHEMES,
    PLAYGROUND_METRICS,
    APPROXIMATE_ABOVE,
    UMAP_MAX_POINTS,
    BeforeAfter,
    frozen,
    transform_label,
    transform_params,
)
from ._tasks import TaskRunner


class DashboardController(TaskRunner):
    """State and computations behind :class:`embgeo.widgets.Dashboard`.

    Parameters
    ----------
    data : EmbeddingSet, array-like of shape (n, d), or path
    metadata : pandas.DataFrame, optional
        Replaces the set's metadata (one row per vector; ``text`` is used for hover and neighbours).
    background : bool
        Run :meth:`submit` tasks in a worker thread (the app) or inline (tests, scripts).
    compare_with : EmbeddingSet, array-like of shape (m, d'), or path, optional
        A second set (another model's vectors of the same items, say) offered first in the Compare panel.
    cache_bytes : int, optional
        Memory the cached results and transformed copies may hold together; default 1 GiB (less on
        small machines, see :func:`._cache.default_budget`). The data itself is not counted.

    Above :data:`._options.APPROXIMATE_ABOVE` rows the shared neighbour table is the approximate join,
    whose measured recall the Overview shows; setting ``exact`` to True asks for the exact table.
    """

    metric = traitlets.Unicode("cosine")
    k = traitlets.Int(10)
    method = traitlets.Unicode("pca")
    n_components = traitlets.Int(2)
    color_by = traitlets.Unicode("none")
    selected_point = traitlets.Int(-1)
    selected_rows = traitlets.Any(None)
    exact = traitlets.Bool(True)

    def __init__(self, data, metadata=None, *, background: bool = False, compare_with=None,
                 cache_bytes: int | None = None, **kwargs):
        super().__init__(background=background, **kwargs)
        self.data = load(data, metadata=metadata)
        if self.data.n < 3:
            raise EmbeddingInputError(f"the dashboard needs at least 3 vectors, got {self.data.n}")
        self.k = min(self.k, self.data.n - 1)
        self.exact = self.data.n <= APPROXIMATE_ABOVE
        if compare_with is not None and not isinstance(compare_with, EmbeddingSet):
            # an unnamed array would share the default name "embeddings" with an unnamed A
            compare_with = load(compare_with)
            if compare_with.name == "embeddings":
                compare_with.name = "second set"
        self.compare_with = compare_with
        # transforms applied in the playground, in order, so the Compare panel can offer them
        self.applied_transforms: list[tuple[str, tuple]] = []
        self.cache = ByteBudgetCache(default_budget() if cache_bytes is None else cache_bytes,
                                     exclude=[self.data.vectors])

    def _cached(self, key: tuple, compute):
        return self.cache.get(key, compute)

    def is_cached(self, *key) -> bool:
        return tuple(key) in self.cache

    # ------------------------------------------------------------------------------ neighbours
    def neighbor_table_width(self) -> int:
        """Columns of the one k-NN table searched per metric: wide enough for every panel.

        Intrinsic dimension reads up to GRIDE's 32 ranks and hubness k; searching the widest once lets
        the set's cache slice it for every other request instead of searching again.
        """
        return min(self.data.n - 1, max(self.k, 32))

    def neighbors(self, k: int | None = None):
        """The set's shared k-NN table under the current metric (exact or approximate, see ``exact``),
        cached on the EmbeddingSet."""
        wide = self.data.neighbors(self.neighbor_table_width(), metric=self.metric, exact=self.exact, progress=False)
        k = k or self.k
        return wide if wide.k == k else wide.head(k)

    def shared_table(self, metric: str | None = None):
        """The shared table under ``metric`` (default: the current one) if it is searched, else None."""
        return self.data.cached_neighbors(self.neighbor_table_width(), metric=metric or self.metric, exact=self.exact)

    def table_set(self, metric: str | None = None) -> EmbeddingSet:
        """The set whose neighbour requests under ``metric`` read the shared table: the set itself when
        the table is exact, else a view answering them from the approximate table (whose ``exact`` flag
        and recall travel into every report built on it)."""
        if self.exact:
            return self.data
        table = self.shared_table(metric)
        if table is None:
            raise EmbeddingInputError("the shared neighbour table is not searched yet")
        return self.data if table.exact else self.data.with_neighbors(table)

    def table_note(self) -> str:
        """One line on the shared table under the current metric: exact, or approximate with its recall."""
        table = self.shared_table()
        if table is None:
            return ""
        if table.exact:
            return f"Neighbours: exact {table.k}-NN table of all {self.data.n:,} points."
        return (f"Neighbours: approximate {table.k}-NN table (IVF join, re-ranked exactly), recall@{table.k} "
                f"{table.recall:.3f} measured against exact search on {table.recall_sample:,} queries; "
                "hubness and intrinsic dimension are read off it.")

    def _ensure_table(self, metric: str | None = None, low: int = 10, high: int = 45) -> None:
        """Search the shared table if it is not cached yet, the bar moving from ``low`` to ``high``."""
        if self.shared_table(metric) is not None:
            return
        metric, width = metric or self.metric, self.neighbor_table_width()
        kind = "exact" if self.exact else "approximate (recall measured)"
        status = f"searching the {kind} {width}-NN table ({self.data.n:,} points, {metric})..."
        self.data.neighbors(width, metric=metric, exact=self.exact, progress=self.progress_between(low, high, status))

    # ------------------------------------------------------------------------------ analyses
    def projection(self, method: str | None = None, n_components: int | None = None):
        method, n_components = method or self.method, n_components or self.n_components
        sample = UMAP_MAX_POINTS if method == "umap" and self.data.n > UMAP_MAX_POINTS else None
        metric = self.metric if not (method == "umap" and self.metric == "dot") else "cosine"
        if method == "umap" and sample is None:
            self._ensure_table(metric)  # UMAP's graph is sliced from the shared table
        return self._cached(("projection", method, n_components, metric),
                            lambda: project(self.data, method, n_components, metric=metric,
                                            sample=sample, k=min(10, self.data.n - 1), random_state=0))

    def isotropy(self):
        return self._cached(("isotropy", self.metric), lambda: isotropy_report(self.data, metric=self.metric))

    def intrinsic(self):
        metric = "euclidean" if self.metric == "euclidean" else "cosine"  # dot is not a distance
        k = max(2, min(self.k, self.data.n - 2))
        # exact: a query sample against the set (cheaper than the self-join above ID_SAMPLE rows);
        # approximate: every point, read off the shared table already searched
        sample = ID_SAMPLE if self.data.n > ID_SAMPLE and self.exact else None
        if not self.is_cached("intrinsic", metric, k, self.exact):
            self._ensure_table(metric)
        # the decimation curve's subsample self-joins are cheap only for a query sample; on the
        # approximate table of every point the GRIDE curve (read off the table) shows the scales
        levels = 6 if self.exact or self.data.n <= ID_SAMPLE else 1
        return self._cached(("intrinsic", metric, k, self.exact),
                            lambda: intrinsic_dimension(self.table_set(metric), metric=metric, k=k, bootstrap=100,
                                                        sample=sample, gride_max_rank=min(32, self.data.n - 2),
                                                        scale_levels=levels))

    def hubness(self):
        if not self.is_cached("hubness", self.metric, self.k, self.exact):
            self._ensure_table()
        return self._cached(("hubness", self.metric, self.k, self.exact),
                            lambda: hubness_report(self.table_set(), k=self.k, metric=self.metric))

    def dimension_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and standard deviation of the unit vectors (cosine) or raw vectors.

        The mean is what rogue dimensions sit on; the spread says whether a large mean is a constant
        offset (small spread: it only shifts every cosine) or a dimension that also varies a lot. Both
        come from the set's cached moments, the pass isotropy already made.
        """
        mom = self.data.moments(normalize=self.metric == "cosine")
        return mom.mean, np.sqrt(np.clip(np.diag(mom.covariance()), 0.0, None))

    def norms(self) -> np.ndarray:
        return self._cached(("norms",), self.data.norms)

    def cards(self) -> list[Verdict]:
        """The Overview: :func:`embgeo.analysis.verdicts` of isotropy, hubness and intrinsic dimension,
        the same thresholds and advice ``embgeo report`` prints."""
        self._ensure_table()
        self.step(50, "isotropy and spectrum...")
        iso = self.isotropy()
        self.step(65, "hubness...")
        hub = self.hubness()
        self.step(75, "intrinsic dimension...")
        idr = self.intrinsic()
        return verdicts(isotropy=iso, hubness=hub, intrinsic_dimension=idr, dim=self.data.dim)

    # ------------------------------------------------------------------------------ transforms
    def available_transforms(self) -> list[str]:
        """Transform names the playground offers: every one of TRANSFORMS, Zipfian only with item weights."""
        return [m for m in TRANSFORMS if m != "zipfian" or self.data.weights is not None]

    def transformed(self, method: str, params: dict | None = None) -> EmbeddingSet:
        """The set after one transform, fitted on the set itself (cached per method and parameters)."""
        params = dict(params or {})
        return self._cached(("transformed", method, frozen(params)),
                            lambda: apply_transform(self.data, method, **params))

    def transform_comparison(self, method: str, params: dict | None = None):
        """:func:`embgeo.analysis.compare` of the set with its transformed copy (cached per setting)."""
        key = ("transform", method, frozen(dict(params or {})))
        comparison = self.comparison(key)
        if key[1:] not in self.applied_transforms:  # only settings that worked are offered for Compare
            self.applied_transforms.append(key[1:])
        return comparison

    def transform_projections(self, method: str, params: dict | None = None):
        """2-D PCA projections of the set before and after the transform (every row, in both)."""
        after_set = self.transformed(method, params)
        self.step(85, "PCA maps before and after...")
        before = self.projection("pca", 2)  # the Projection tab's map, when it was drawn already
        after = self._cached(("transformed_projection", method, frozen(params or {}), self.metric),
                             lambda: project(after_set, "pca", 2, metric=self.metric,
                                             k=min(10, self.data.n - 1), random_state=0))
        return before, after

    def before_after(self, comparison) -> list[BeforeAfter]:
        """The playground's cards: the main geometry numbers of A and B, then the neighbourhood measures."""
        cards = []
        for path, title in PLAYGROUND_METRICS:
            try:
                row = comparison.row(path)
            except KeyError:  # e.g. no weighted isotropy on a set without weights
                continue
            cards.append(BeforeAfter(title, path, row["a"], row["b"], row["change"], row["meaning"]))
        if comparison.neighborhood_preservation is not None:
            p = comparison.neighborhood_preservation
            cards.append(BeforeAfter(
                f"k-NN overlap (k = {comparison.k})", "neighborhood_preservation", 1.0, p, p - 1.0,
                "Share of each item's k nearest neighbours that are still its neighbours after the change "
                "(1 = the same neighbours). (Venna & Kaski, ICANN 2001)"))
        if comparison.knn_accuracy is not None:
            a, b = comparison.knn_accuracy["a"], comparison.knn_accuracy["b"]
            cards.append(BeforeAfter("k-NN label accuracy", "knn_accuracy", a, b, b - a,
                                     "Leave-one-out accuracy of a k-NN vote on the 'label' column. "
                                     "(Cover & Hart, 1967)"))
        return cards

    # ------------------------------------------------------------------------------ comparison
    def compare_choices(self) -> list[tuple[str, tuple]]:
        """(label, key) of every second set the Compare panel offers.

        The set given to the constructor first, then transforms applied in the playground, then
        each transform with its default parameters, then the bundled samples that are installed.
        """
        choices = []
        if self.compare_with is not None:
            choices.append((f"given set: {self.compare_with.name} ({self.compare_with.n:,} x "
                            f"{self.compare_with.dim})", ("given",)))
        defaults = [(m, frozen({p.name: p.default for p in transform_params(m, self.data.dim)}))
                    for m in self.available_transforms()]
        for method, params in self.applied_transforms:
            if (method, params) not in defaults:
                choices.append((f"this set after {transform_label(method, dict(params))} (Transforms tab)",
                                ("transform", method, params)))
        for method, params in defaults:
            choices.append((f"this set after {transform_label(method)}", ("transform", method, params)))
        installed = datasets.list_samples(installed=True)
        for subset, base in datasets.SAMPLE_SUBSETS.items():
            # this set is a sample over some of another sample's items: offer that one row for row, so
            # the similarity block (which needs the same items) compares the two models
            if base in installed and self.data.source == f"embgeo sample {subset!r}":
                choices.append((f"bundled sample: {base}, over the same {self.data.n:,} items (another model)",
                                ("sample", base, subset)))
        for name in installed:
            choices.append((f"bundled sample: {name}", ("sample", name)))
        return choices

    def second_set(self, key: tuple) -> EmbeddingSet:
        """The set a Compare choice names: the given set, a transformed copy, or a bundled sample."""
        if key[0] == "given":
            if self.compare_with is None:
                raise EmbeddingInputError("no second set was given (Dashboard(data, compare_with=...))")
            return self.compare_with
        if key[0] == "transform":
            return self.transformed(key[1], dict(key[2]))
        if key[0] == "sample":
            items_of = key[2] if len(key) > 2 else None
            return self._cached(key, lambda: datasets.load_sample(key[1], items_of=items_of))
        raise EmbeddingInputError(f"unknown comparison choice {key!r}")

    def comparison(self, key: tuple):
        """:func:`embgeo.analysis.compare` of the set (A) with the chosen second set (B), cached.

        The leave-one-out k-NN label accuracy is added when the items carry a ``label`` column and
        both sets hold the same number of rows (labels describe items row for row).
        """
        def compute():
            self.step(8, "loading or transforming the second set...")
            other = self.second_set(key)
            labels = ("label" if other.n == self.data.n and self.data.metadata is not None
                      and "label" in self.data.metadata.columns else None)
            self._ensure_table(low=10, high=25)  # A's report and the overlap slice the shared table
            # as wide as compare()'s geometry report asks for
            width = min(max(self.k, 32), other.n - 1)
            exact_b = self.exact or other.n <= APPROXIMATE_ABOVE
            table_b = other.neighbors(width, metric=self.metric, exact=exact_b, progress=self.progress_between(
                25, 45, f"searching the second set's {'exact' if exact_b else 'approximate'} {width}-NN table "
                        f"({other.n:,} points)..."))
            report_a = self.report_of_this_set()
            self.step(50, f"geometry of both sets ({self.data.n:,} and {other.n:,} points) and their k-NN overlap...")
            b = other if table_b.exact else other.with_neighbors(table_b)
            return compare(self.table_set(), b, metric=self.metric, k=self.k, labels=labels, name_a=self.data.name,
                           name_b=other.name, sample=COMPARE_SAMPLE, random_state=0, report_a=report_a)
        return self._cached(("comparison", key, self.metric, self.k, self.exact), compute)

    def report_of_this_set(self):
        """The set's own :func:`geometry_report` at compare()'s settings, computed once per metric and k.

        Every comparison (each transform tried, each second set) reuses it, so only B's report is new.
        """
        self._ensure_table()
        return self._cached(("geometry_report", self.metric, self.k, self.exact), lambda: geometry_report(
            self.table_set(), metric=self.metric, k=self.k, sample=COMPARE_SAMPLE, random_state=0,
            progress=self.progress_between(45, 50, "geometry of this set...")))

    def comparison_notes(self, key: tuple) -> list[str]:
        """Warnings about a comparison's premises: different items, texts that disagree row by row."""
        other = self.second_set(key)
        a, notes = self.data, []
        if other.n != a.n:
            notes.append(f"The two sets hold different numbers of items: A has {a.n:,} rows, B has {other.n:,}. "
                         "Only their geometry is compared; the k-NN overlap and label accuracy need the same "
                         "items, row for row, and are left out.")
        elif a.texts is not None and other.texts is not None:
            differ = sum(x != y for x, y in zip(a.texts, other.texts))
            if differ:
                notes.append(f"The two sets have the same size but their texts differ in {differ:,} of {a.n:,} "
                             "rows: the k-NN overlap assumes row i is the same item in both, so read it with care.")
        return notes

    # ------------------------------------------------------------------------------ index health
    def default_holdout(self) -> int:
        """Held-out query rows of the index sweep: index_report's default, min(1000, n / 10)."""
        return min(1000, max(1, self.data.n // 10))

    def index_health(self, kinds=DEFAULT_INDEX_KINDS, holdout: int | None = None):
        """:func:`embgeo.analysis.index_report` on a held-out query split with a quick sweep, cached.

        Queries are ``holdout`` random rows taken out of the corpus (so none finds itself); each index
        kind sweeps a few search-effort values of :data:`._options.INDEX_SWEEP`.
        """
        kinds = tuple(k for k in INDEX_KINDS if k in set(kinds))
        if not kinds:
            raise EmbeddingInputError("choose at least one index kind to measure")
        holdout = self.default_holdout() if holdout is None else int(holdout)

        def compute():
            self._ensure_table()  # corpus reachability slices the shared table
            progress = self.progress_between(50, 98, f"exact ground truth for {holdout:,} held-out queries, then "
                                                     f"building and sweeping {', '.join(kinds)}...", say_steps=True)
            return index_report(self.table_set(), k=self.k, metric=self.metric, holdout=holdout, indexes=kinds,
                                index_params={k: INDEX_SWEEP[k] for k in kinds if k in INDEX_SWEEP},
                                random_state=0, progress=progress)
        return self._cached(("index", self.metric, self.k, kinds, holdout, self.exact), compute)

    @staticmethod
    def index_rows(report) -> list[dict]:
        """One row per swept setting: kind, label, recall@k, QPS (one thread), build seconds, bytes/vector."""
        return [{"kind": s.kind, "label": s.label, "recall": s.recall_at_k, "qps": s.qps,
                 "build_seconds": s.build_seconds, "bytes_per_vector": s.bytes_per_vector, "pareto": s.pareto}
                for s in report.indexes]

    def live_source(self) -> str | None:
        """The database URI the set was read from (``EmbeddingSet.source``), when its search can be measured."""
        source = self.data.source
        scheme = source.split("://", 1)[0].lower() if isinstance(source, str) and "://" in source else None
        return source if scheme in LIVE_SCHEMES else None

    def live_index(self, n_queries: int = LIVE_QUERIES, k: int | None = None):
        """:func:`embgeo.analysis.live_index_report` on the source database's own search, cached: ``n_queries``
        held-out collection rows, k nearest (default the dashboard's k), the collection's own distance. The
        set shown stands in for reading the collection again while it still matches it (``data=``)."""
        source = self.live_source()
        if source is None:
            raise EmbeddingInputError("this set was not read from a vector database URI (lancedb://, chroma://, "
                                      "qdrant://, qdrant+local://, milvus://): there is no live index to measure")
        k = self.k if k is None else int(k)
        return self._cached(("live_index", source, int(n_queries), k), lambda: live_index_report(
            source, k=k, n_queries=int(n_queries), random_state=0, data=self.data,
            progress=self.progress_between(5, 95, f"searching {source} ({n_queries:,} queries, k = {k})...")))

    # ------------------------------------------------------------------------------ colouring
    def color_options(self) -> list[str]:
        """Derived colourings, then the metadata columns that can colour a map (:func:`._colours.colour_columns`)."""
        cols = colour_columns(self.data.metadata)
        derived = list(DERIVED_COLOURS)
        if self.data.weights is not None and "frequency" not in cols:  # weights given apart from metadata
            derived.append("frequency")
        return derived + [c for c in cols if c not in DERIVED_COLOURS]

    def color_values(self, name: str | None = None, rows: np.ndarray | None = None):
        """Values to colour points by: (array, "numeric" | "categorical" | "none", label).

        Numeric values come back as float32; categorical ones as integer codes with the category
        names in the label. ``rows`` picks the rows shown (a projection sample).
        """
        name = self.color_by if name is None else name
        if name == "none":
            return None, "none", ""
        if name == "norm":
            values, label = self.norms(), "vector norm"
        elif name == "local ID":
            rep = self.intrinsic()
            values = np.full(self.data.n, np.nan, np.float32)
            idx = rep.sample_indices if rep.sample_indices is not None else np.arange(self.data.n)
            values[idx] = rep.lid
            label = f"local ID (k={rep.k})"
        elif name == "k-occurrence":
            values, label = self.hubness().k_occurrence.astype(np.float32), f"k-occurrence (k={self.k})"
        elif name == "frequency" and self.data.weights is not None and (
                self.data.metadata is None or "frequency" not in self.data.metadata.columns):
            # Zipfian weights span orders of magnitude: a linear scale would show one colour
            values = np.log10(np.maximum(self.data.weights, np.finfo(np.float64).tiny))
            label = "log10 frequency (weight)"
        else:
            if self.data.metadata is None or name not in self.data.metadata.columns:
                raise EmbeddingInputError(f"no metadata column {name!r}; choose one of {self.color_options()}")
            col = self.data.metadata[name]
            from pandas.api.types import is_bool_dtype, is_numeric_dtype

            if is_numeric_dtype(col) and not is_bool_dtype(col) and col.nunique() > 12:
                values, label = numeric_colours(col.to_numpy(np.float64), name)
            else:
                values, cats = category_codes(col.astype(str))
                vals = values if rows is None else values[rows]
                return vals, "categorical", cats
        values = np.asarray(values, dtype=np.float32)
        return (values if rows is None else values[rows]), "numeric", label

    # ------------------------------------------------------------------------------ interactions
    def neighbor_table(self, i: int, k: int | None = None) -> list[dict]:
        """The nearest neighbours of row ``i`` in the ORIGINAL space: rank, row, text, similarity."""
        if not 0 <= i < self.data.n:
            raise EmbeddingInputError(f"point {i} is outside 0..{self.data.n - 1}")
        nn = self.neighbors(k)
        sims = nn.similarities[i]
        return [{"rank": r + 1, "row": int(j), "text": self.data.label(int(j)), "similarity": float(s)}
                for r, (j, s) in enumerate(zip(nn.indices[i], sims))]

    def selection_stats(self, rows) -> dict:
        """Statistics of a lasso/box selection: size, norms, mean cosine inside it, commonest labels.

        The mean cosine over distinct pairs and the mean norm come from the selection's moments,
        ``(||sum u||^2 - m) / (m (m - 1))``, O(m d).
        """
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if len(rows) == 0:
            return {"count": 0}
        m = len(rows)
        mom = scan_moments(self.data.vectors[rows])
        out = {"count": m, "share": m / self.data.n, "mean_norm": mom.norm_mean,
               "mean_cosine": mom.mean_cosine(), "rows": rows}
        md = self.data.metadata
        if md is not None and "label" in md.columns:
            out["top_label"] = list(md["label"].iloc[rows].astype(str).value_counts().head(5).items())
        if md is not None and "text" in md.columns:  # texts are mostly unique: show examples, not counts
            out["examples"] = md["text"].iloc[rows[:: max(1, m // 8)][:8]].astype(str).tolist()
        return out

