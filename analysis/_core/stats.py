"""Small statistics shared by the estimators: row samples, bootstrap intervals, skewness, Spearman.

Each lives here once so that every report draws its samples, resamples and rank correlations the
same way.
"""

from __future__ import annotations

import math
from typing import Callable

import numba
import numpy as np

from .validation import EmbeddingInputError, check_random_state

#: Resamples drawn at once are bounded so that (resamples x values) stays near this many indices.
BOOTSTRAP_CHUNK_ITEMS = 4_000_000
#: Default bootstrap resamples of a median's confidence interval.
N_BOOTSTRAP = 1000


def sample_rows(n: int, sample, rng, *, minimum: int = 1, what: str = "sample") -> np.ndarray | None:
    """Sorted random rows (without replacement) to use as queries, or None for every row.

    ``sample`` None, or a count of at least ``n``, means every row. A count below ``minimum`` (or not
    an integer) is refused with a message naming ``what``.
    """
    if sample is None:
        return None
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or sample < minimum:
        raise EmbeddingInputError(f"{what} must be an integer number of points >= {minimum}, got {sample!r}")
    if sample >= n:
        return None
    return np.sort(check_random_state(rng).choice(n, size=int(sample), replace=False))


def bootstrap(values, statistic: Callable[[np.ndarray], np.ndarray], n_boot: int, rng) -> np.ndarray:
    """``statistic`` of ``n_boot`` resamples (with replacement) of ``values`` (Efron, 1979).

    ``statistic`` maps a (resamples, len(values)) matrix to one value per row (``lambda r: r.sum(1)``);
    resamples are drawn in chunks of about :data:`BOOTSTRAP_CHUNK_ITEMS` indices, so memory stays
    bounded whatever the number of values.
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    rng = check_random_state(rng)
    out = np.empty(n_boot, dtype=np.float64)
    per_chunk = max(1, BOOTSTRAP_CHUNK_ITEMS // max(n, 1))
    for start in range(0, n_boot, per_chunk):
        stop = min(n_boot, start + per_chunk)
        out[start:stop] = statistic(values[rng.integers(0, n, size=(stop - start, n))])
    return out


def percentile_interval(estimates, confidence: float) -> np.ndarray:
    """The (low, high) percentile interval of bootstrap estimates, as a read-only float64 array."""
    alpha = (1.0 - confidence) / 2.0
    out = np.quantile(np.asarray(estimates, dtype=np.float64), [alpha, 1.0 - alpha]).astype(np.float64)
    out.flags.writeable = False
    return out


def median_ci(values, *, confidence: float = 0.95, n_boot: int = N_BOOTSTRAP,
              random_state=0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median (Efron & Tibshirani, 1993); NaNs if empty."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (math.nan, math.nan)
    medians = bootstrap(values, lambda r: np.median(r, axis=1), n_boot, random_state)
    lo, hi = percentile_interval(medians, confidence)
    return (float(lo), float(hi))


def check_confidence(confidence) -> float:
    if not isinstance(confidence, (int, float, np.floating)) or not 0 < confidence < 1:
        raise EmbeddingInputError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    return float(confidence)


def check_n_boot(n_boot) -> int:
    """A non-negative number of bootstrap resamples (0 = no interval)."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise EmbeddingInputError(f"bootstrap must be a non-negative number of resamples, got {n_boot!r}")
    return int(n_boot)


def skewness(x) -> float:
    """Population (moment) skewness E[(x - mean)^3] / std^3; 0 for a constant sample."""
    return float(row_skewness(np.asarray(x, dtype=np.float64)[None, :])[0])


def row_skewness(r) -> np.ndarray:
    """:func:`skewness` of each row of a 2-D array (bootstrap resamples, one per row)."""
    r = np.asarray(r, dtype=np.float64)
    mean = r.mean(axis=1)
    centred = r - mean[:, None]
    var = np.mean(centred ** 2, axis=1)
    constant = var <= 1e-24 * np.maximum(1.0, mean ** 2)  # every value equal: no asymmetry to measure
    return np.where(constant, 0.0, np.mean(centred ** 3, axis=1) / np.where(constant, 1.0, var) ** 1.5)


@numba.njit(cache=True)
def _average_ranks(x):
    """Ranks 1..n of ``x``, ties sharing their average rank (scipy's rankdata, method="average")."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


@numba.njit(cache=True)
def spearman(a, b):
    """Spearman correlation of two float64 vectors (NaN when either is constant), as scipy defines it."""
    if len(a) < 2 or a.max() == a.min() or b.max() == b.min():
        return np.nan
    ra, rb = _average_ranks(a), _average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    return (ra * rb).sum() / np.sqrt((ra * ra).sum() * (rb * rb).sum())
