"""Transforms by name: the registry behind ``apply_transform``, ``embgeo transform --method`` and the
dashboard's playground, and the fit that carries an :class:`EmbeddingSet`'s weights.

:func:`apply_transform` applies a post-processing transform (centring, all-but-the-top, whitening,
Zipfian whitening, PHI-S, rogue-dimension removal) to an :class:`EmbeddingSet` by name, returning a
new set with the same items, so "before" and "after" can be compared.
"""

from __future__ import annotations

from .._core import EmbeddingInputError
from ..embeddings import EmbeddingSet, as_embedding_set
from .linear import AllButTheTop, Center, L2Normalize, Whitening, ZipfianWhitening
from .phis import PHIS
from .rogue import RogueDimensions


#: Transform names accepted by :func:`apply_transform` and ``embgeo transform --method``.
TRANSFORMS = {
    "center": lambda **p: Center(**p),
    "l2": lambda **p: L2Normalize(**p),
    "abtt": lambda **p: AllButTheTop(**p),
    "pca-whiten": lambda **p: Whitening(method="pca", **p),
    "zca": lambda **p: Whitening(method="zca", **p),
    "zipfian": lambda **p: ZipfianWhitening(**p),
    "phis": lambda **p: PHIS(**p),
    "rogue": lambda **p: RogueDimensions(**p),
}


def apply_transform(data, method: str, *, weighted: bool | None = None, **params) -> EmbeddingSet:
    """Fit a named post-processing transform on a set and return the transformed set.

    The transform is fitted on the set's own vectors and applied to them; metadata and weights are
    carried over through :meth:`EmbeddingSet.with_vectors`. The input set and its array are never
    modified.

    Parameters
    ----------
    data : EmbeddingSet or array-like of shape (n, d)
    method : str
        ``"center"`` (:class:`Center`), ``"l2"`` (:class:`L2Normalize`), ``"abtt"``
        (:class:`AllButTheTop`), ``"pca-whiten"`` and ``"zca"`` (:class:`Whitening`), ``"zipfian"``
        (:class:`ZipfianWhitening`), ``"phis"`` (:class:`PHIS`), ``"rogue"`` (:class:`RogueDimensions`).
    weighted : bool, optional
        Fit the means and covariances p-weighted by the set's item weights. ``"zipfian"`` is weighted
        by definition (it needs weights); for every other method the default is the unweighted
        (uniform) fit the method was published with, and ``weighted=True`` opts into weights.
    **params
        Constructor parameters of the transformer, e.g. ``n_components=3`` for ``"abtt"`` or
        ``eps=1e-4`` for the whitenings.

    Returns
    -------
    EmbeddingSet
        Named ``"<name> | <method>"``.

    Raises
    ------
    EmbeddingInputError
        An unknown method or parameter, ``"zipfian"`` (or ``weighted=True``) on a set without
        weights, or invalid vectors.

    References
    ----------
    Mu & Viswanath, "All-but-the-Top", ICLR 2018; Su et al., "Whitening Sentence Representations",
    arXiv:2103.15316, 2021; Yokoi et al., "Zipfian Whitening", NeurIPS 2024; Ranzinger et al.,
    "PHI-S", arXiv:2410.01680, 2024; Timkey & van Schijndel, "All Bark and No Bite", EMNLP 2021.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(500, 8)) * [5, 4, 3, 2, 1, 1, 1, 1] + 2.0
    >>> z = apply_transform(x, "zca")
    >>> bool(np.allclose(np.cov(z.vectors.T, bias=True), np.eye(8), atol=1e-3))
    True
    """
    es = as_embedding_set(data)
    out = fit_transformer(es, method, weighted=weighted, **params).transform(es.vectors)
    try:
        return es.with_vectors(out, name=f"{es.name} | {method}")
    except EmbeddingInputError as exc:  # say that it is the output, not the caller's vectors
        raise EmbeddingInputError(f"the {method!r} output of {es.name!r} cannot be analysed as a set: {exc}") from None


def fit_transformer(es: EmbeddingSet, method: str, *, weighted: bool | None = None, **params):
    """The named transformer fitted on ``es`` (weighted as :func:`apply_transform` describes).

    Use it to apply one fitted transform to other vectors too, e.g. queries of the same corpus.
    """
    if method not in TRANSFORMS:
        raise EmbeddingInputError(f"unknown transform {method!r}; choose from {', '.join(TRANSFORMS)}")
    if method == "zipfian":
        if weighted is False:
            raise EmbeddingInputError("'zipfian' whitening is weighted by definition; use 'pca-whiten' for uniform")
        weighted = True
    if weighted and es.weights is None:
        raise EmbeddingInputError(
            f"transform {method!r} needs item weights (e.g. word frequencies), and set {es.name!r} has none: "
            "build it with EmbeddingSet(..., weights=...) or load an .npz with a 'weights' array")
    try:
        transformer = TRANSFORMS[method](**params)
    except TypeError as exc:  # an unknown constructor keyword
        raise EmbeddingInputError(f"transform {method!r}: {exc}") from None
    return transformer.fit(es.vectors, sample_weight=es.weights if weighted else None)
