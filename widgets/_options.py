"""What the dashboard offers and how it names it: sizes, transform parameters, index sweeps, card paths.

UI metadata only: no computation and no widgets, so the controller and every view read the same
choices from one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TABS = ("Overview", "Projection", "Spectrum", "Intrinsic dimension", "Hubness", "Transforms", "Index health",
        "Retrieval", "Compare", "Shift", "Layers")

#: Above this many points the shared neighbour table is the approximate join (recall measured and shown
#: on the cards; exact on request): the exact self-join would take about half an hour at 1,000,000.
APPROXIMATE_ABOVE = 200_000
#: Above this many points the projection panel draws a density layer plus a point sample.
DENSITY_THRESHOLD = 100_000
#: Points drawn individually when the density layer is on.
POINT_SAMPLE = 20_000
#: Bins per axis of that density layer (binned in the kernel: the browser gets a grid, not n points).
DENSITY_BINS = 150
#: UMAP is fitted on at most this many rows (a uniform sample); PCA always uses every row.
UMAP_MAX_POINTS = 50_000
#: Rows used by the per-point intrinsic-dimension estimators on large sets.
ID_SAMPLE = 20_000
#: Query sample of the sampled report parts in comparisons (A's report is computed once with it).
COMPARE_SAMPLE = 2000
#: Texts the Layers tab reads by default (a seeded sample of more), and the most it accepts: the forward
#: pass of the bundled MiniLM dominates (about 25 ms a text on two busy CPU cores).
LAYER_TEXTS_DEFAULT, LAYER_TEXTS_MAX = 1000, 20_000
#: Neighbours per point the k selector offers (up to 32 slice the one shared table; more search again).
K_CHOICES = (5, 10, 15, 20, 30, 50, 100)


def k_options(n: int, current: int | None = None) -> list[int]:
    """The k values a set of ``n`` points can take (k < n - 1, so every point has k others and a spare),
    with ``current`` kept among them."""
    options = {k for k in K_CHOICES if k < n - 1}
    if current is not None:
        options.add(int(current))
    return sorted(options) or [max(1, n - 2)]


#: Categories coloured one by one when colouring by a metadata column; the rest share one grey,
#: named "other (N more)" in the legend (196 modules cycling 12 colours told nothing apart).
COLOUR_CATEGORIES = 11
OTHER_CATEGORY = "other"
#: A positive numeric column spanning more than this ratio is coloured on a log10 scale (Zipfian
#: frequencies on a linear scale gave nearly every point the same colour).
LOG_COLOUR_RATIO = 1e3

#: Colour-by options computed from the data rather than read from the metadata.
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
INDEX_KIND_LABELS = {"hnsw": "HNSW", "ivf": "IVF-Flat", "sq8": "8-bit scalar", "ivfpq": "IVF-PQ (slow to train)"}
#: A quick sweep: a few search-effort values per kind instead of index_report's longer defaults.
INDEX_SWEEP = {"hnsw": {"efSearch": (16, 32, 64, 128)}, "ivf": {"nprobe": (1, 4, 16, 64)},
               "ivfpq": {"nprobe": (1, 4, 16, 64)}}
#: The live-index panel: URI schemes whose database search it measures, and its held-out query rows.
LIVE_SCHEMES = ("lancedb", "chroma", "qdrant", "qdrant+local", "milvus")
LIVE_QUERIES = 200


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
                TransformParam("eps", "eps", "float", 1e-6, 0.0, 1.0,  # the range the estimators accept
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


def frozen(params: dict) -> tuple:
    """Parameters as a hashable, order-independent cache key."""
    return tuple(sorted(params.items()))
