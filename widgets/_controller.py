"""The dashboard's logic, without any view: state in traitlets, results cached per setting.

:class:`DashboardController` calls :mod:`embgeo.analysis` and keeps every result it computed, keyed by
the settings that produced it, so switching panels or going back to an earlier setting does not
recompute. It knows nothing about plotly or ipywidgets layout, so it runs (and is tested) without a
kernel or a browser. Long work reports progress through the ``progress``/``status`` traits, which the
view mirrors into an ``IntProgress`` and a ``Label``.
"""

from __future__ import annotations

import html
import threading
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np
import traitlets

from embgeo.analysis import EmbeddingInputError, EmbeddingSet

#: Above this many points the projection panel draws a density layer plus a point sample.
DENSITY_THRESHOLD = 100_000
#: Points drawn individually when the density layer is on.
POINT_SAMPLE = 20_000
#: UMAP is fitted on at most this many rows (a uniform sample); PCA always uses every row.
UMAP_MAX_POINTS = 50_000
#: Rows used by the per-point intrinsic-dimension estimators on large sets.
ID_SAMPLE = 20_000

#: Colour-by options computed from the data rather than read from the metadata.
#: Query sample of the sampled report parts in comparisons (A's report is computed once with it).
COMPARE_SAMPLE = 2000
DERIVED_COLOURS = ("none", "norm", "local ID", "k-occurrence")

#: Readable names of the transforms in ``embgeo.analysis.TRANSFORMS`` (a new one shows under its key).
TRANSFORM_LABELS = {
    "center": "Centring",
    "l2": "L2 normalisation",
    "abtt": "All-but-the-top",
    "pca-whiten": "PCA whitening",
    "zca": "ZCA whitening",
    "zipfian": "Zipfian whitening (frequency-weighted)",
    "phis": "PHI-S (equal variance per dimension)",
    "rogue": "Rogue dimensions",
}

#: Geometry numbers shown as before/after cards in the transform playground: summary path, card title.
PLAYGROUND_METRICS = (
    ("isotropy.mean_cosine", "Mean cosine"),
    ("isotropy.isoscore", "IsoScore"),
    ("weighted_isotropy.isoscore", "IsoScore (frequency-weighted)"),
    ("isotropy.effective_rank", "Effective rank"),
    ("hubness.skewness", "Hubness (skewness)"),
    ("hubness.antihub_rate", "Antihubs"),
    ("intrinsic_dimension.twonn", "Intrinsic dimension (TwoNN)"),
    ("concentration.relative_contrast_median", "Relative contrast (median)"),
)

#: Index kinds the Index health panel offers, and those ticked by default. IVF-PQ is opt-in: its
#: codebook training dominates the run (about two minutes on the 20,000-word sample).
INDEX_KINDS = ("hnsw", "ivf", "sq8", "ivfpq")
DEFAULT_INDEX_KINDS = ("hnsw", "ivf")
#: A quick sweep: a few search-effort values per kind instead of index_report's longer defaults.
INDEX_SWEEP = {"hnsw": {"efSearch": (16, 32, 64, 128)}, "ivf": {"nprobe": (1, 4, 16, 64)},
               "ivfpq": {"nprobe": (1, 4, 16, 64)}}


@dataclass(frozen=True)
class Card:
    """One overview metric: its value, what it means, a verdict with the threshold used, and advice."""

    title: str
    value: str
    meaning: str
    status: str  # "ok" | "warn" | "bad" | "info"
    threshold: str
    advice: str
    reference: str = ""


@dataclass(frozen=True)
class TransformParam:
    """One parameter control of the transform playground: a constructor keyword of the transformer."""

    name: str
    label: str
    kind: str  # "int" | "float" | "choice"
    default: object
    low: float | None = None
    high: float | None = None
    options: tuple = ()
    help: str = ""


@dataclass(frozen=True)
class BeforeAfter:
    """One geometry number before and after a change (a playground card)."""

    title: str
    metric: str
    before: float | None
    after: float | None
    change: float | None
    meaning: str


def transform_params(method: str, dim: int) -> list[TransformParam]:
    """The parameters the playground shows for ``method`` on ``dim``-dimensional vectors, with defaults.

    Defaults are the analysis defaults (all-but-the-top removes about d / 100 directions; whitening
    keeps every component with eps = 1e-6 relative to the largest eigenvalue), so an untouched control
    gives the same transform as ``apply_transform(data, method)``.
    """
    if method == "abtt":
        return [TransformParam("n_components", "D", "int", max(1, int(np.floor(dim / 100 + 0.5))), 1, max(1, dim - 1),
                               help="top principal directions removed after centring (paper: about d / 100)")]
    if method in ("pca-whiten", "zca", "zipfian"):
        return [TransformParam("n_components", "k (components)", "int", dim, 1, dim,
                               help=f"leading components kept ({dim} = all)"),
                TransformParam("eps", "eps", "float", 1e-6, 0.0, None,
                               help="regulariser, relative to the largest eigenvalue")]
    if method == "rogue":
        return [TransformParam("mode", "mode", "choice", "remove", options=("remove", "standardize"),
                               help="remove the rogue dimensions, or z-score every dimension")]
    return []


def transform_label(method: str, params: dict | None = None) -> str:
    """A readable name such as ``ZCA whitening (k=64, eps=1e-06)``."""
    label = TRANSFORM_LABELS.get(method, method)
    shown = ", ".join(f"{k if k != 'n_components' else ('D' if method == 'abtt' else 'k')}={v}"
                      for k, v in (params or {}).items())
    return f"{label} ({shown})" if shown else label


def as_embedding_set(data, metadata=None) -> EmbeddingSet:
    """An EmbeddingSet from a set, an (n, d) array, or a path readable by ``embgeo.analysis.io.load``."""
    if isinstance(data, EmbeddingSet):
        if metadata is not None:
            return EmbeddingSet(data.vectors, metadata, data.weights, name=data.name, source=data.source)
        return data
    if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
        from embgeo.analysis import io

        return io.load(data, metadata=metadata)
    return EmbeddingSet(data, metadata)


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


class DashboardController(traitlets.HasTraits):
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
    """

    metric = traitlets.Unicode("cosine")
    k = traitlets.Int(10)
    method = traitlets.Unicode("pca")
    n_components = traitlets.Int(2)
    color_by = traitlets.Unicode("none")
    selected_point = traitlets.Int(-1)
    selected_rows = traitlets.Any(None)
    status = traitlets.Unicode("")
    progress = traitlets.Int(0)
    busy = traitlets.Bool(False)
    error = traitlets.Unicode("")

    def __init__(self, data, metadata=None, *, background: bool = False, compare_with=None, **kwargs):
        super().__init__(**kwargs)
        self.data = as_embedding_set(data, metadata)
        if self.data.n < 3:
            raise EmbeddingInputError(f"the dashboard needs at least 3 vectors, got {self.data.n}")
        self.k = min(self.k, self.data.n - 1)
        self.background = background
        if compare_with is not None and not isinstance(compare_with, EmbeddingSet):
            # an unnamed array would share the default name "embeddings" with an unnamed A
            compare_with = as_embedding_set(compare_with)
            if compare_with.name == "embeddings":
                compare_with.name = "second set"
        self.compare_with = compare_with
        # transforms applied in the playground, in order, so the Compare panel can offer them
        self.applied_transforms: list[tuple[str, tuple]] = []
        self._cache: dict[tuple, object] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------ running tasks
    def submit(self, label: str, fn: Callable[[], object], done: Callable[[object], None] | None = None,
               failed: Callable[[], None] | None = None) -> None:
        """Run ``fn`` with the busy/progress/status traits set; errors land in ``error``, not a traceback.

        In background mode ``fn`` runs in a worker thread so widgets stay responsive; ``done`` gets
        its result. Tasks run one at a time (a lock), so results are never computed twice.
        """
        def work():
            with self._lock:
                self.busy, self.error, self.status, self.progress = True, "", f"{label}...", 10
                try:
                    result = fn()
                except Exception as exc:  # shown in the page; the traceback goes to the server log
                    self.error = _describe(exc)
                    traceback.print_exc()
                    self.status, self.progress, self.busy = f"{label} failed", 0, False
                    if failed is not None:
                        failed()
                    return
                self.status, self.progress, self.busy = f"{label}: done", 100, False
            if done is not None:
                try:
                    done(result)
                except Exception as exc:
                    self.error = _describe(exc)
                    traceback.print_exc()

        if self.background:
            threading.Thread(target=work, daemon=True).start()
        else:
            work()

    def _cached(self, key: tuple, compute: Callable[[], object]):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def is_cached(self, *key) -> bool:
        return tuple(key) in self._cache

    def _step(self, progress: int, status: str) -> None:
        """Report progress within a task (the view mirrors it into its progress bar and label)."""
        self.progress, self.status = progress, status

    # ------------------------------------------------------------------------------ analyses
    def neighbor_table_width(self) -> int:
        """Columns of the one k-NN table searched per metric: wide enough for every panel.

        Intrinsic dimension reads up to GRIDE's 32 ranks and hubness k; searching the widest once lets
        the set's cache slice it for every other request instead of searching again.
        """
        return min(self.data.n - 1, max(self.k, 32))

    def neighbors(self, k: int | None = None):
        """The set's exact k-NN table under the current metric (cached on the EmbeddingSet)."""
        wide = self.data.neighbors(self.neighbor_table_width(), metric=self.metric, progress=False)
        k = k or self.k
        return wide if wide.k == k else wide.head(k)

    def _ensure_table(self, metric: str | None = None) -> None:
        metric = metric or self.metric
        self._step(max(self.progress, 10), f"searching the exact {self.neighbor_table_width()}-NN table "
                   f"({self.data.n:,} points, {metric})...")
        self.data.neighbors(self.neighbor_table_width(), metric=metric, progress=False)

    def projection(self, method: str | None = None, n_components: int | None = None):
        from embgeo.analysis import project

        method, n_components = method or self.method, n_components or self.n_components
        sample = UMAP_MAX_POINTS if method == "umap" and self.data.n > UMAP_MAX_POINTS else None
        metric = self.metric if not (method == "umap" and self.metric == "dot") else "cosine"
        if method == "umap" and sample is None:
            self._ensure_table(metric)  # UMAP's graph is sliced from the shared table
        return self._cached(("projection", method, n_components, metric),
                            lambda: project(self.data, method, n_components, metric=metric,
                                            sample=sample, k=min(10, self.data.n - 1), random_state=0))

    def isotropy(self):
        from embgeo.analysis import isotropy_report

        return self._cached(("isotropy", self.metric), lambda: isotropy_report(self.data, metric=self.metric))

    def intrinsic(self):
        from embgeo.analysis import intrinsic_dimension

        metric = "euclidean" if self.metric == "euclidean" else "cosine"  # dot is not a distance
        k = max(2, min(self.k, self.data.n - 2))
        sample = ID_SAMPLE if self.data.n > ID_SAMPLE else None
        if not self.is_cached("intrinsic", metric, k):
            self._ensure_table(metric)
        return self._cached(("intrinsic", metric, k),
                            lambda: intrinsic_dimension(self.data, metric=metric, k=k, bootstrap=100,
                                                        sample=sample, gride_max_rank=min(32, self.data.n - 2)))

    def hubness(self):
        from embgeo.analysis import hubness_report

        if not self.is_cached("hubness", self.metric, self.k):
            self._ensure_table()
        return self._cached(("hubness", self.metric, self.k),
                            lambda: hubness_report(self.data, k=self.k, metric=self.metric))

    def dimension_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and standard deviation of the unit vectors (cosine) or raw vectors.

        The mean is what rogue dimensions sit on; the spread says whether a large mean is a constant
        offset (small spread: it only shifts every cosine) or a dimension that also varies a lot.
        """
        def compute():
            total = np.zeros(self.data.dim, np.float64)
            squares = np.zeros(self.data.dim, np.float64)
            for start in range(0, self.data.n, 65_536):
                block = np.asarray(self.data.vectors[start:start + 65_536], dtype=np.float64)
                if self.metric == "cosine":
                    block = block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-30)
                total += block.sum(axis=0)
                squares += (block * block).sum(axis=0)
            mean = total / self.data.n
            return mean, np.sqrt(np.clip(squares / self.data.n - mean * mean, 0.0, None))
        return self._cached(("dimension_stats", self.metric), compute)

    def dimension_means(self) -> np.ndarray:
        """Per-dimension mean (see :meth:`dimension_stats`)."""
        return self.dimension_stats()[0]

    def norms(self) -> np.ndarray:
        return self._cached(("norms",), lambda: np.linalg.norm(self.data.vectors, axis=1).astype(np.float32))

    # ------------------------------------------------------------------------------ transforms
    def available_transforms(self) -> list[str]:
        """Transform names the playground offers: every one of TRANSFORMS, Zipfian only with item weights."""
        from embgeo.analysis import TRANSFORMS

        return [m for m in TRANSFORMS if m != "zipfian" or self.data.weights is not None]

    def transformed(self, method: str, params: dict | None = None) -> EmbeddingSet:
        """The set after one transform, fitted on the set itself (cached per method and parameters)."""
        from embgeo.analysis import apply_transform

        params = dict(params or {})
        return self._cached(("transformed", method, _frozen(params)),
                            lambda: apply_transform(self.data, method, **params))

    def transform_comparison(self, method: str, params: dict | None = None):
        """:func:`embgeo.analysis.compare` of the set with its transformed copy (cached per setting)."""
        params = dict(params or {})
        key = ("transform", method, _frozen(params))
        comparison = self.comparison(key)
        if key[1:] not in self.applied_transforms:  # only settings that worked are offered for Compare
            self.applied_transforms.append(key[1:])
        return comparison

    def transform_projections(self, method: str, params: dict | None = None):
        """2-D PCA projections of the set before and after the transform (every row, in both)."""
        from embgeo.analysis import project

        after_set = self.transformed(method, params)
        self._step(85, "PCA maps before and after...")
        before = self.projection("pca", 2)  # the Projection tab's map, when it was drawn already
        after = self._cached(("transformed_projection", method, _frozen(params or {}), self.metric),
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
        from embgeo.analysis import datasets

        choices = []
        if self.compare_with is not None:
            choices.append((f"given set: {self.compare_with.name} ({self.compare_with.n:,} x "
                            f"{self.compare_with.dim})", ("given",)))
        defaults = [(m, _frozen({p.name: p.default for p in transform_params(m, self.data.dim)}))
                    for m in self.available_transforms()]
        for method, params in self.applied_transforms:
            if (method, params) not in defaults:
                choices.append((f"this set after {transform_label(method, dict(params))} (Transforms tab)",
                                ("transform", method, params)))
        for method, params in defaults:
            choices.append((f"this set after {transform_label(method)}", ("transform", method, params)))
        for name in datasets.list_samples(installed=True):
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
            from embgeo.analysis import datasets

            return self._cached(("sample", key[1]), lambda: datasets.load_sample(key[1]))
        raise EmbeddingInputError(f"unknown comparison choice {key!r}")

    def comparison(self, key: tuple):
        """:func:`embgeo.analysis.compare` of the set (A) with the chosen second set (B), cached.

        The leave-one-out k-NN label accuracy is added when the items carry a ``label`` column and
        both sets hold the same number of rows (labels describe items row for row).
        """
        from embgeo.analysis import compare

        def compute():
            self._step(15, "loading or transforming the second set...")
            other = self.second_set(key)
            labels = ("label" if other.n == self.data.n and self.data.metadata is not None
                      and "label" in self.data.metadata.columns else None)
            self._ensure_table()  # A's report and the overlap slice the dashboard's shared table
            self._step(25, f"searching the second set's exact k-NN table ({other.n:,} points)...")
            # as wide as compare()'s geometry report asks for, searched here without a console progress bar
            other.neighbors(min(max(self.k, 32), other.n - 1), metric=self.metric, progress=False)
            self._step(40, f"geometry of both sets ({self.data.n:,} and {other.n:,} points) and their "
                           "k-NN overlap...")
            return compare(self.data, other, metric=self.metric, k=self.k, labels=labels, name_a=self.data.name,
                           name_b=other.name, sample=COMPARE_SAMPLE, random_state=0,
                           report_a=self.report_of_this_set())
        return self._cached(("comparison", key, self.metric, self.k), compute)

    def report_of_this_set(self):
        """The set's own :func:`geometry_report` at compare()'s settings, computed once per metric and k.

        Every comparison (each transform tried, each second set) reuses it, so only B's report is new.
        """
        from embgeo.analysis import geometry_report

        return self._cached(("geometry_report", self.metric, self.k), lambda: geometry_report(
            self.data, metric=self.metric, k=self.k, sample=COMPARE_SAMPLE, random_state=0, progress=False))

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

    def comparison_table(self, comparison) -> list[dict]:
        """Rows {metric, a, b, change, meaning}: task measures first, then every geometry scalar."""
        rows = []
        if comparison.knn_accuracy is not None:
            a, b = comparison.knn_accuracy["a"], comparison.knn_accuracy["b"]
            rows.append({"metric": "knn_accuracy", "a": a, "b": b, "change": b - a,
                         "meaning": "Leave-one-out k-NN label accuracy (Cover & Hart, 1967)"})
        if comparison.retrieval is not None:
            for name in comparison.retrieval["a"]:
                if name != "n_judged":
                    a, b = comparison.retrieval["a"][name], comparison.retrieval["b"][name]
                    rows.append({"metric": f"retrieval.{name}", "a": a, "b": b, "change": b - a,
                                 "meaning": "Exact retrieval against the relevance judgements"})
        return rows + [dict(r) for r in comparison.rows]

    # ------------------------------------------------------------------------------ index health
    def default_holdout(self) -> int:
        """Held-out query rows of the index sweep: index_report's default, min(1000, n / 10)."""
        return min(1000, max(1, self.data.n // 10))

    def index_health(self, kinds=DEFAULT_INDEX_KINDS, holdout: int | None = None):
        """:func:`embgeo.analysis.index_report` on a held-out query split with a quick sweep, cached.

        Queries are ``holdout`` random rows taken out of the corpus (so none finds itself); each index
        kind sweeps a few search-effort values of :data:`INDEX_SWEEP`.
        """
        from embgeo.analysis import index_report

        kinds = tuple(k for k in INDEX_KINDS if k in set(kinds))
        if not kinds:
            raise EmbeddingInputError("choose at least one index kind to measure")
        holdout = self.default_holdout() if holdout is None else int(holdout)

        def compute():
            self._ensure_table()  # corpus reachability slices the shared table
            self._step(30, f"exact ground truth for {holdout:,} held-out queries, then building and sweeping "
                           f"{', '.join(kinds)}...")
            return index_report(self.data, k=self.k, metric=self.metric, holdout=holdout, indexes=kinds,
                                index_params={k: INDEX_SWEEP[k] for k in kinds if k in INDEX_SWEEP},
                                random_state=0)
        return self._cached(("index", self.metric, self.k, kinds, holdout), compute)

    @staticmethod
    def index_rows(report) -> list[dict]:
        """One row per swept setting: kind, label, recall@k, QPS (one thread), build seconds, bytes/vector."""
        return [{"kind": s.kind, "label": s.label, "recall": s.recall_at_k, "qps": s.qps,
                 "build_seconds": s.build_seconds, "bytes_per_vector": s.bytes_per_vector, "pareto": s.pareto}
                for s in report.indexes]

    # ------------------------------------------------------------------------------ colouring
    def color_options(self) -> list[str]:
        cols = [] if self.data.metadata is None else [str(c) for c in self.data.metadata.columns]
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
                values, label = col.to_numpy(np.float32), name
            else:
                codes, cats = col.astype(str).factorize(sort=True)
                values = codes.astype(np.float32)
                vals = values if rows is None else values[rows]
                return vals, "categorical", list(map(str, cats))
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
        """Statistics of a lasso/box selection: size, norms, mean cosine inside it, commonest labels."""
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if len(rows) == 0:
            return {"count": 0}
        x = np.asarray(self.data.vectors[rows], dtype=np.float64)
        norms = np.linalg.norm(x, axis=1)
        u = x / np.maximum(norms, 1e-30)[:, None]
        s = u.sum(axis=0)
        m = len(rows)
        # mean pairwise cosine over distinct pairs, (||sum u||^2 - m) / (m (m - 1)), O(m d)
        mean_cos = float((s @ s - m) / (m * (m - 1))) if m > 1 else float("nan")
        out = {"count": m, "share": m / self.data.n, "mean_norm": float(norms.mean()),
               "mean_cosine": mean_cos, "rows": rows}
        md = self.data.metadata
        if md is not None and "label" in md.columns:
            out["top_label"] = list(md["label"].iloc[rows].astype(str).value_counts().head(5).items())
        if md is not None and "text" in md.columns:  # texts are mostly unique: show examples, not counts
            out["examples"] = md["text"].iloc[rows[:: max(1, m // 8)][:8]].astype(str).tolist()
        return out

    # ------------------------------------------------------------------------------ overview cards
    def cards(self) -> list[Card]:
        self._ensure_table()
        self._step(50, "isotropy and spectrum...")
        iso = self.isotropy()
        self._step(65, "hubness...")
        hub = self.hubness()
        self._step(75, "intrinsic dimension...")
        idr = self.intrinsic()
        cards = [
            _graded("Mean cosine", iso.mean_cosine, "Average cosine between two random items. Near 0: directions "
                    "spread out; near 1: everything points one way (a narrow cone), so raw cosines say little.",
                    (0.2, 0.5), higher_is_bad=True,
                    advice="Centre the vectors, or remove the top principal directions (all-but-the-top), "
                           "then compare again.", reference="Ethayarajh, EMNLP 2019"),
            _graded("IsoScore", iso.isoscore, "How evenly the variance is spread over all dimensions: 1 = "
                    "uniformly, 0 = a single direction.", (0.3, 0.1), higher_is_bad=False,
                    advice="Whitening (PCA/ZCA or Zipfian) spreads the variance; look at the Spectrum tab first.",
                    reference="Rudman et al., Findings of ACL 2022"),
            Card("Rogue dimensions", str(len(iso.rogue_dimensions)),
                 "Coordinates that alone carry a large share of every cosine (a few dimensions deciding "
                 "similarity). " + (", ".join(f"dim {r['dim']} ({r['share']:.0%})" for r in iso.rogue_dimensions)),
                 "ok" if not iso.rogue_dimensions else "warn", "ok when none",
                 "Standardise the dimensions (z-score) or remove the mean before cosine; see the Spectrum tab.",
                 "Timkey & van Schijndel, EMNLP 2021"),
            _graded(f"Hubness (skewness of N_{hub.k})", hub.skewness, "Skew of how often each item is someone's "
                    "nearest neighbour. Large: a few hubs appear in almost every result list.",
                    (1.0, 3.0), higher_is_bad=True,
                    advice="Try CSLS or mutual proximity for retrieval, or centre the vectors; see the Hubness tab.",
                    reference="Radovanovic et al., JMLR 2010"),
            _graded("Antihubs", hub.antihub_rate, "Share of items that are nobody's neighbour: they are never "
                    "retrieved by a similarity search.", (0.1, 0.3), higher_is_bad=True, percent=True,
                    advice="Hubness reduction (CSLS, mutual proximity) brings antihubs back into results.",
                    reference="Radovanovic et al., JMLR 2010"),
        ]
        lid_status = "warn" if idr.warnings else "info"
        cards.append(Card("Intrinsic dimension (TwoNN)", _fmt(idr.twonn), "Number of directions the data "
                          f"really varies in locally (of {self.data.dim}). MLE: {_fmt(idr.mle)}; PCA 90%: "
                          f"{idr.pca_90} components.", lid_status,
                          "warn when the estimate is unreliable (too few points or scale-dependent)",
                          (idr.warnings[0] if idr.warnings else "Compare with the PCA dimension: a much larger "
                           "PCA count means a curved, low-dimensional manifold."),
                          "Facco et al., Sci. Rep. 2017"))
        return cards


def _graded(title, value, meaning, thresholds, *, higher_is_bad, advice, reference="", percent=False) -> Card:
    """A card whose verdict comes from two thresholds (ok/warn boundary, warn/bad boundary)."""
    a, b = thresholds
    if value is None or not np.isfinite(value):
        status = "info"
    elif higher_is_bad:
        status = "ok" if value < a else "warn" if value < b else "bad"
    else:
        status = "ok" if value >= a else "warn" if value >= b else "bad"
    show = (lambda v: f"{v:.1%}") if percent else _fmt
    if higher_is_bad:
        rule = f"ok < {show(a)}, warn < {show(b)}, bad above"
    else:
        rule = f"ok >= {show(a)}, warn >= {show(b)}, bad below"
    return Card(title, "n/a" if value is None else show(value), meaning, status, rule,
                advice if status != "ok" else "Nothing to fix here.", reference)


def _frozen(params: dict) -> tuple:
    """Parameters as a hashable, order-independent cache key."""
    return tuple(sorted(params.items()))


def _describe(exc: Exception) -> str:
    """A one-paragraph message for the page (no traceback)."""
    kind = "Input problem" if isinstance(exc, (EmbeddingInputError, ValueError)) else type(exc).__name__
    return html.escape(f"{kind}: {exc}")
