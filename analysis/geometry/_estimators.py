"""The intrinsic-dimension estimators on neighbour-distance ratios: TwoNN's maximum likelihood and GRIDE.

Both take ``log mu`` values (``mu = r_n2 / r_n1``) and so serve the main estimate, the decimation curve
and the GRIDE scale curve alike.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq


def twonn_mle(log_mu: np.ndarray) -> float:
    """(N - 1) / sum log mu: the unbiased maximum-likelihood rate of the Pareto(1, d) law of mu."""
    total = float(np.sum(log_mu))
    return (len(log_mu) - 1) / total if total > 0 else math.inf


def gride(log_mu: np.ndarray, n1: int, n2: int) -> float:
    """GRIDE maximum-likelihood ID from ``log(r_n2 / r_n1)`` (Denti et al., 2022).

    The density of mu = r_n2 / r_n1 is d (mu^d - 1)^(n2-n1-1) / (B(n2-n1, n1) mu^((n2-1) d + 1)). The
    score (with (N - 1) in place of N, so that n1 = 1, n2 = 2 gives the unbiased TwoNN MLE) decreases
    monotonically in d, from +inf to -n1 sum log mu, so its single root is found by bracketing.
    """
    log_mu = log_mu[log_mu > 0]  # ties (mu = 1) carry no information and make the score 0/0
    n = len(log_mu)
    if n < 2:
        return math.nan
    s = float(log_mu.sum())

    def score(d):
        return (n - 1) / d + (n2 - n1 - 1) * np.sum(log_mu / -np.expm1(-d * log_mu)) - (n2 - 1) * s

    hi = 1.0
    while score(hi) > 0:
        if hi > 1e6:  # ratios indistinguishable from 1: no finite dimension fits
            return math.inf
        hi *= 2.0
    return float(brentq(score, 1e-9, hi, xtol=1e-10, rtol=1e-10))
