"""Data with known answers, and the real embedding samples that ship with embgeo.

Synthetic generators
--------------------
Each generator returns float32 points of shape ``(n, d)`` whose geometry is known exactly, so every
estimator in embgeo can be tested against the right answer rather than against itself:

* :func:`make_sphere` - uniform on the unit k-sphere, isometrically embedded: intrinsic dimension k.
* :func:`make_subspace` - uniform in a k-dimensional cube in an affine subspace: dimension and rank k.
* :func:`make_isotropic_gaussian` - covariance the identity: perfectly isotropic.
* :func:`make_anisotropic` - an embedding-like cloud with a common direction, a power-law spectrum
  and rogue dimensions, with the planted truth available as :class:`AnisotropicTruth`.
* :func:`make_planted_hubs` - clusters whose centroids are planted as points and become hubs.

All take ``random_state`` (None, an int or a :class:`numpy.random.Generator`) and are deterministic
for a fixed seed.

Bundled samples
---------------
:func:`load_sample` reads real all-MiniLM-L6-v2 embeddings stored as package data (see
``analysis/data/DATASET_CARD.md`` and ``scripts/build_samples.py``); :func:`list_samples` names them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ._core import EmbeddingInputError, check_random_state
from .embeddings import EmbeddingSet

__all__ = [
    "AnisotropicTruth",
    "list_samples",
    "load_sample",
    "make_anisotropic",
    "make_isotropic_gaussian",
    "make_planted_hubs",
    "make_sphere",
    "make_subspace",
]


# ------------------------------------------------------------------------------------ helpers
def _check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise EmbeddingInputError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise EmbeddingInputError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _check_nonnegative(value, name: str) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise EmbeddingInputError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def random_orthonormal(ambient_dim: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random ``(k, ambient_dim)`` matrix with orthonormal rows (k <= ambient_dim).

    QR of a Gaussian matrix, with the signs of R's diagonal folded into Q so the result is uniformly
    distributed (Mezzadri, "How to generate random matrices from the classical compact groups",
    Notices AMS 2007); multiplying coordinates in R^k by it is an isometry into R^ambient_dim.
    """
    g = rng.standard_normal((ambient_dim, k))
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))
    return q.T


def _add_noise(x: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    if noise > 0:
        x = x + noise * rng.standard_normal(x.shape)
    return x


# ------------------------------------------------------------------------------------ generators
def make_sphere(n: int, intrinsic_dim: int, ambient_dim: int, *, noise: float = 0.0,
                random_state=None) -> np.ndarray:
    """Points uniform on the unit k-sphere S^k, embedded in R^d by a random isometry.

    S^k is the unit sphere in R^(k+1) (S^1 is a circle), so its intrinsic dimension is k. Points are
    sampled as normalised standard Gaussians in R^(k+1) (uniform by rotational symmetry) and mapped
    into R^d by a random matrix with orthonormal rows, which preserves every distance and norm.

    Parameters
    ----------
    n : int
        Number of points.
    intrinsic_dim : int
        k, the dimension of the sphere (>= 1).
    ambient_dim : int
        d, the dimension of the returned vectors; must be at least k + 1.
    noise : float, default 0.0
        Standard deviation of isotropic Gaussian noise added in R^d (0 keeps the points exactly on
        the sphere).
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    X : ndarray of shape (n, ambient_dim), float32
        Without noise every row has unit norm.

    Examples
    --------
    >>> X = make_sphere(500, intrinsic_dim=3, ambient_dim=50, random_state=0)
    >>> X.shape, bool(np.allclose(np.linalg.norm(X, axis=1), 1, atol=1e-5))
    ((500, 50), True)
    """
    n = _check_count(n, "n")
    k = _check_count(intrinsic_dim, "intrinsic_dim")
    d = _check_count(ambient_dim, "ambient_dim")
    if d < k + 1:
        raise EmbeddingInputError(
            f"the {k}-sphere lives in R^{k + 1}, so ambient_dim must be at least {k + 1}; got {d}"
        )
    noise = _check_nonnegative(noise, "noise")
    rng = check_random_state(random_state)
    z = rng.standard_normal((n, k + 1))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    x = z @ random_orthonormal(d, k + 1, rng)
    return _add_noise(x, noise, rng).astype(np.float32)


def make_subspace(n: int, intrinsic_dim: int, ambient_dim: int, *, offset: float = 1.0,
                  noise: float = 0.0, random_state=None) -> np.ndarray:
    """Points uniform in a k-dimensional unit cube lying in a random affine subspace of R^d.

    Coordinates are uniform on [-1/2, 1/2]^k, mapped into R^d by a random isometry, then shifted by
    a vector of norm ``offset`` orthogonal to that subspace. The shift keeps every point away from
    the origin, so cosine similarity is defined, and because it is orthogonal the normalised points
    still form a k-dimensional patch of the unit sphere: the intrinsic dimension is k under both the
    Euclidean and the cosine (chord) distance, and the centred data have rank exactly k.

    Parameters
    ----------
    n : int
        Number of points.
    intrinsic_dim : int
        k, the dimension of the cube and of the subspace (>= 1).
    ambient_dim : int
        d; must be at least k + 1 (one direction is used by the offset).
    offset : float, default 1.0
        Distance of the affine subspace from the origin (> 0).
    noise : float, default 0.0
        Standard deviation of isotropic Gaussian noise added in R^d.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    X : ndarray of shape (n, ambient_dim), float32

    Examples
    --------
    >>> X = make_subspace(200, intrinsic_dim=4, ambient_dim=30, random_state=0)
    >>> int(np.linalg.matrix_rank(X - X.mean(axis=0), tol=1e-4))
    4
    """
    n = _check_count(n, "n")
    k = _check_count(intrinsic_dim, "intrinsic_dim")
    d = _check_count(ambient_dim, "ambient_dim")
    if d < k + 1:
        raise EmbeddingInputError(
            f"a {k}-dimensional subspace shifted off the origin needs ambient_dim >= {k + 1}; got {d}"
        )
    offset = _check_nonnegative(offset, "offset")
    if offset == 0:
        raise EmbeddingInputError("offset must be > 0 so that no point sits at the origin (cosine undefined)")
    noise = _check_nonnegative(noise, "noise")
    rng = check_random_state(random_state)
    basis = random_orthonormal(d, k + 1, rng)  # first k rows span the subspace, the last is the shift
    coords = rng.uniform(-0.5, 0.5, size=(n, k))
    x = coords @ basis[:k] + offset * basis[k]
    return _add_noise(x, noise, rng).astype(np.float32)


def make_isotropic_gaussian(n: int, dim: int, *, random_state=None) -> np.ndarray:
    """Standard Gaussian points in R^d: mean 0, covariance the identity (perfectly isotropic).

    Parameters
    ----------
    n : int
        Number of points.
    dim : int
        Dimension d.
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    X : ndarray of shape (n, dim), float32

    Examples
    --------
    >>> X = make_isotropic_gaussian(1000, 8, random_state=0)
    >>> X.shape
    (1000, 8)
    """
    n = _check_count(n, "n")
    d = _check_count(dim, "dim")
    rng = check_random_state(random_state)
    return rng.standard_normal((n, d)).astype(np.float32)


@dataclass(frozen=True)
class AnisotropicTruth:
    """The population parameters planted by :func:`make_anisotropic`.

    Attributes
    ----------
    mean : ndarray of shape (d,)
        Population mean: ``mean_norm`` along :attr:`mean_direction` plus the rogue offsets.
    mean_direction : ndarray of shape (d,)
        Unit vector of the common direction (orthogonal to the rogue coordinate axes).
    eigenvalues : ndarray of shape (d,)
        Population covariance eigenvalues, descending, ``lambda_k = c * k^-alpha``, summing to
        ``total_variance``.
    principal_axes : ndarray of shape (d, d)
        Orthonormal rows; row k is the eigenvector of ``eigenvalues[k]``.
    spectrum_exponent : float
        alpha.
    rogue_dims : tuple of int
        Coordinate axes given a large mean offset (sorted).
    rogue_offsets : ndarray of shape (n_rogue,)
        The signed offset on each rogue axis.
    """

    mean: np.ndarray
    mean_direction: np.ndarray
    eigenvalues: np.ndarray
    principal_axes: np.ndarray
    spectrum_exponent: float
    rogue_dims: tuple[int, ...]
    rogue_offsets: np.ndarray

    @property
    def covariance(self) -> np.ndarray:
        """The population covariance ``V^T diag(lambda) V`` (d x d; for tests on small d)."""
        v = self.principal_axes
        return (v.T * self.eigenvalues) @ v


def make_anisotropic(n: int, dim: int, *, mean_norm: float = 1.0, spectrum_exponent: float = 1.0,
                     total_variance: float = 1.0, n_rogue: int = 2, rogue_scale: float = 2.0,
                     random_state=None, return_truth: bool = False):
    """An embedding-like cloud: common mean direction, power-law spectrum and rogue dimensions.

    ``X = mean + Z diag(sqrt(lambda)) V`` with Z standard Gaussian, V a random orthonormal basis and
    ``lambda_k proportional to k^-alpha`` (the power-law decay reported for learned representations,
    e.g. Stringer et al., Nature 2019; Agrawal et al., NeurIPS 2022). The mean has norm ``mean_norm``
    along a random direction (the "narrow cone" of Ethayarajh, EMNLP 2019) plus ``rogue_scale``
    (with a random sign) on ``n_rogue`` random coordinate axes: a few coordinates with a large mean,
    the rogue dimensions of Timkey & van Schijndel (EMNLP 2021), which then dominate the expected
    cosine of random pairs.

    Parameters
    ----------
    n : int
        Number of points.
    dim : int
        Dimension d.
    mean_norm : float, default 1.0
        Length of the common (non-rogue) part of the mean.
    spectrum_exponent : float, default 1.0
        alpha >= 0; 0 gives an isotropic covariance.
    total_variance : float, default 1.0
        Trace of the covariance (sum of the eigenvalues).
    n_rogue : int, default 2
        Number of rogue coordinates (0 for none; at most d - 1).
    rogue_scale : float, default 2.0
        Absolute mean offset on each rogue coordinate.
    random_state : None, int or numpy.random.Generator
    return_truth : bool, default False
        Also return the planted parameters as :class:`AnisotropicTruth`.

    Returns
    -------
    X : ndarray of shape (n, dim), float32
    truth : AnisotropicTruth
        Only when ``return_truth=True``; ``truth.rogue_dims`` names the rogue coordinates.

    Examples
    --------
    >>> X, truth = make_anisotropic(2000, 32, n_rogue=2, random_state=0, return_truth=True)
    >>> X.shape, len(truth.rogue_dims)
    ((2000, 32), 2)
    """
    n = _check_count(n, "n")
    d = _check_count(dim, "dim", minimum=2)
    n_rogue = _check_count(n_rogue, "n_rogue", minimum=0)
    if n_rogue > d - 1:
        raise EmbeddingInputError(f"n_rogue must be at most dim - 1 = {d - 1} (one axis is left for the "
                                  f"common direction); got {n_rogue}")
    mean_norm = _check_nonnegative(mean_norm, "mean_norm")
    alpha = _check_nonnegative(spectrum_exponent, "spectrum_exponent")
    total_variance = _check_nonnegative(total_variance, "total_variance")
    if total_variance == 0:
        raise EmbeddingInputError("total_variance must be > 0")
    rogue_scale = _check_nonnegative(rogue_scale, "rogue_scale")
    rng = check_random_state(random_state)

    eigenvalues = np.arange(1, d + 1, dtype=np.float64) ** -alpha
    eigenvalues *= total_variance / eigenvalues.sum()
    axes = random_orthonormal(d, d, rng)

    rogue = np.sort(rng.choice(d, size=n_rogue, replace=False))
    offsets = rogue_scale * rng.choice([-1.0, 1.0], size=n_rogue)
    direction = rng.standard_normal(d)
    direction[rogue] = 0.0  # keep the common direction apart from the rogue axes
    direction /= np.linalg.norm(direction)
    mean = mean_norm * direction
    mean[rogue] += offsets

    z = rng.standard_normal((n, d))
    x = mean + (z * np.sqrt(eigenvalues)) @ axes
    x = x.astype(np.float32)
    if not return_truth:
        return x
    truth = AnisotropicTruth(mean=mean, mean_direction=direction, eigenvalues=eigenvalues,
                             principal_axes=axes, spectrum_exponent=alpha,
                             rogue_dims=tuple(int(j) for j in rogue), rogue_offsets=offsets)
    return x, truth


def make_planted_hubs(n: int, dim: int, n_hubs: int, *, cluster_std: float = 0.5,
                      random_state=None) -> tuple[np.ndarray, np.ndarray]:
    """Clustered points with one planted hub per cluster, at the cluster's centre.

    ``n_hubs`` cluster centres are drawn uniformly on the unit sphere; every other point is its
    centre plus Gaussian noise of total length about ``cluster_std``. The hub of each cluster sits
    exactly at the centre. In high dimension a member is at distance ~ ``cluster_std`` from its
    centre but ~ ``sqrt(2) * cluster_std`` from the other members, so the centre is among the k
    nearest neighbours of nearly every member: its k-occurrence N_k is close to the cluster size
    while ordinary points have N_k near k. This is the mechanism of hubness (points near a data
    centre appear in many neighbour lists; Radovanovic, Nanopoulos & Ivanovic, JMLR 2010) made
    extreme, and it holds for the cosine and the Euclidean metric alike.

    Parameters
    ----------
    n : int
        Total number of points, hubs included (at least ``2 * n_hubs``).
    dim : int
        Dimension d (>= 2; the effect is clean from d of about 20).
    n_hubs : int
        Number of clusters, and of planted hubs.
    cluster_std : float, default 0.5
        Expected length of a member's offset from its centre (the per-coordinate standard deviation
        is ``cluster_std / sqrt(d)``).
    random_state : None, int or numpy.random.Generator

    Returns
    -------
    X : ndarray of shape (n, dim), float32
        Rows in a random order.
    hub_indices : ndarray of shape (n_hubs,), int64
        Rows of ``X`` that are the planted hubs (sorted).

    Examples
    --------
    >>> X, hubs = make_planted_hubs(600, 32, n_hubs=3, random_state=0)
    >>> X.shape, hubs.shape
    ((600, 32), (3,))
    """
    n = _check_count(n, "n")
    d = _check_count(dim, "dim", minimum=2)
    n_hubs = _check_count(n_hubs, "n_hubs")
    if n < 2 * n_hubs:
        raise EmbeddingInputError(f"n must be at least 2 * n_hubs = {2 * n_hubs} so each hub has members; got {n}")
    cluster_std = _check_nonnegative(cluster_std, "cluster_std")
    if cluster_std == 0:
        raise EmbeddingInputError("cluster_std must be > 0 (members would coincide with their hub)")
    rng = check_random_state(random_state)

    centres = rng.standard_normal((n_hubs, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    cluster = np.arange(n - n_hubs) % n_hubs  # near-equal cluster sizes
    members = centres[cluster] + (cluster_std / np.sqrt(d)) * rng.standard_normal((n - n_hubs, d))
    x = np.vstack([centres, members])
    order = rng.permutation(n)
    x = x[order]
    hub_indices = np.sort(np.flatnonzero(order < n_hubs))
    return x.astype(np.float32), hub_indices.astype(np.int64)


# ------------------------------------------------------------------------------------ bundled samples
#: Real embedding samples shipped as package data: name -> one-line description.
SAMPLES = {
    "words": "the 20,000 most frequent English words (wordfreq), all-MiniLM-L6-v2, weighted by frequency",
    "sentences": "first sentences of Python standard-library docstrings, all-MiniLM-L6-v2, labelled by module",
    "sentences_mpnet": "2,000 of the same sentences embedded by a second model, all-mpnet-base-v2 (768-d)",
}
#: Samples whose items are a subset of another sample's: name -> that sample. Their ``row`` column is
#: each item's row in it, so ``load_sample(that, items_of=name)`` lines the two up row for row.
SAMPLE_SUBSETS = {"sentences_mpnet": "sentences"}


def list_samples(*, installed: bool = False) -> dict[str, str]:
    """Names and descriptions of the embedding samples that :func:`load_sample` can load.

    ``installed=True`` keeps only those whose data file is present in this install (a source
    checkout without the built samples has none).

    Examples
    --------
    >>> sorted(list_samples())
    ['sentences', 'sentences_mpnet', 'words']
    """
    if not installed:
        return dict(SAMPLES)
    return {name: text for name, text in SAMPLES.items() if _is_installed(name)}


def _sample_path(name: str):
    return resources.files(__package__).joinpath("data", f"{name}.npz")


def _is_installed(name: str) -> bool:
    try:
        return _sample_path(name).is_file()
    except (OSError, ValueError):  # a broken package-data lookup means: not installed
        return False


def load_sample(name: str, *, items_of: str | None = None) -> EmbeddingSet:
    """Load a bundled sample of real sentence-transformer embeddings as an :class:`EmbeddingSet`.

    The vectors are unit norm before storage, stored as float16 and returned as float32. How
    they were built is described in ``analysis/data/DATASET_CARD.md``.

    Parameters
    ----------
    name : {"words", "sentences", "sentences_mpnet"}
        ``"words"``: 20,000 frequent English words, all-MiniLM-L6-v2 (384-d); metadata ``text``
        and ``frequency`` (the wordfreq frequency per word), weights = those frequencies (for
        Zipfian statistics).
        ``"sentences"``: first sentences of standard-library docstrings, all-MiniLM-L6-v2
        (384-d); metadata ``text``, ``label`` (top-level module) and ``source`` (the documented
        object's dotted name); no weights.
        ``"sentences_mpnet"``: 2,000 of those sentences embedded by all-mpnet-base-v2 (768-d),
        for comparing two models over the same items; the same metadata plus ``row``, the item's
        row in ``"sentences"``.
    items_of : str, optional
        Keep only the items of that sample, in its order: ``load_sample("sentences",
        items_of="sentences_mpnet")`` is MiniLM over the 2,000 sentences of the mpnet sample, row
        for row, ready for :func:`~embgeo.analysis.representation_similarity`. Only for a sample
        whose items are a subset of ``name``'s (:data:`SAMPLE_SUBSETS`).

    Returns
    -------
    EmbeddingSet

    Raises
    ------
    EmbeddingInputError
        For an unknown name (the message lists the known ones), a sample missing from the install, or
        an ``items_of`` sample whose items are not a subset of ``name``'s.

    Examples
    --------
    >>> words = load_sample("words")
    >>> words.dim
    384
    >>> load_sample("sentences", items_of="sentences_mpnet").n
    2000
    """
    if not isinstance(name, str) or name not in SAMPLES:
        raise EmbeddingInputError(f"unknown sample {name!r}; known samples: {', '.join(sorted(SAMPLES))}")
    if items_of is not None:
        if SAMPLE_SUBSETS.get(items_of) != name:
            pairs = ", ".join(f"load_sample({b!r}, items_of={a!r})" for a, b in SAMPLE_SUBSETS.items())
            raise EmbeddingInputError(f"the items of sample {items_of!r} are not a subset of sample {name!r}; "
                                      f"known pairs: {pairs}")
        rows = load_sample(items_of).metadata["row"].to_numpy()
        return load_sample(name).subset(rows, name=f"{name} (the {len(rows):,} items of {items_of})")
    path = _sample_path(name)
    if not path.is_file():
        raise EmbeddingInputError(
            f"sample {name!r} is not installed (expected package data {path}); rebuild it with "
            "`python scripts/build_samples.py`"
        )
    import pandas as pd

    with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as npz:
        vectors = npz["vectors"].astype(np.float32)
        columns = {key: npz[key] for key in npz.files if key != "vectors"}
    metadata = pd.DataFrame({key: (value.astype(str) if value.dtype.kind == "U" else value)
                             for key, value in columns.items()})
    weights = metadata["frequency"].to_numpy(np.float64) if "frequency" in metadata else None
    return EmbeddingSet(vectors, metadata, weights, name=name, source=f"embgeo sample {name!r}")
