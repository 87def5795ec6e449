"""How an intrinsic-dimension estimate changes with scale: the TwoNN decimation curve (Facco et al.,
2017) and the GRIDE curve over neighbour ranks (Denti et al., 2022)."""

from __future__ import annotations

import math

import numpy as np

from ..neighbors import duplicate_mask, exact_knn
from ._estimators import gride, twonn_mle

#: Smallest subsample (points per block) used by the decimation scale curve.
MIN_SCALE_POINTS = 64
#: A decimation block is copied out of the data (which may be memory-mapped); larger levels are skipped.
MAX_BLOCK_BYTES = 1 << 30


def gride_curve(dist: np.ndarray, max_rank: int):
    """GRIDE at (n1, 2 n1) for n1 = 1, 2, 4, ... while 2 n1 fits in the table and in ``max_rank``."""
    kept = dist[~duplicate_mask(dist)]
    n1s, dims, scale = [], [], []
    n1 = 1
    while 2 * n1 <= min(max_rank, dist.shape[1]):
        n2 = 2 * n1
        with np.errstate(divide="ignore", invalid="ignore"):
            log_mu = np.log(kept[:, n2 - 1] / kept[:, n1 - 1])
        n1s.append(n1)
        dims.append(gride(log_mu[np.isfinite(log_mu)], n1, n2))
        scale.append(float(np.median(kept[:, n2 - 1])))
        n1 *= 2
    return np.array(n1s, dtype=np.int64), np.array(dims), np.array(scale)


def decimation_curve(es, metric, dist0, rows, levels, rng):
    """TwoNN on disjoint random blocks of n / 2^j points (Facco et al., 2017, decimation).

    Level 0 is the estimate from the main table. At level j the data are split into 2^j disjoint
    random blocks; each block's queries (all its points, or those in the query sample) get their two
    nearest neighbours within the block, the log-ratios are pooled for the estimate, and the per-block
    estimates give its spread. Blocks per level are capped at 16, which bounds the work, and a level
    whose block would exceed 1 GiB of float32 copied out of the data is skipped.
    """
    n = es.n
    in_sample = None
    if rows is not None:
        in_sample = np.zeros(n, dtype=bool)
        in_sample[rows] = True
    perm = rng.permutation(n)
    sizes, dims, spread, scale = [], [], [], []
    for j in range(levels):
        size = n >> j
        if size < MIN_SCALE_POINTS and j > 0:
            break
        if j == 0:
            blocks_r = [dist0[~duplicate_mask(dist0)][:, :2]]
        elif size * es.dim * 4 > MAX_BLOCK_BYTES:
            continue
        else:
            blocks_r = []
            for b in range(min(2 ** j, 16)):
                members = np.sort(perm[b * size:(b + 1) * size])
                q = np.arange(size) if in_sample is None else np.flatnonzero(in_sample[members])
                if len(q) < 2:
                    continue
                nb = exact_knn(es.vectors[members], k=2, metric=metric, query_indices=q,
                               progress=False, validate=False)
                r = nb.distances.astype(np.float64)
                blocks_r.append(r[~duplicate_mask(r)])
        log_mus = [np.log(r[:, 1] / r[:, 0]) for r in blocks_r]
        pooled = np.concatenate(log_mus) if log_mus else np.empty(0)
        if len(pooled) < 10:
            break
        per_block = [twonn_mle(lm) for lm in log_mus if len(lm) >= 3]
        sizes.append(size)
        dims.append(twonn_mle(pooled))
        spread.append(float(np.std(per_block, ddof=1)) if len(per_block) > 1 else math.nan)
        scale.append(float(np.median(np.concatenate([r[:, 1] for r in blocks_r]))))
    return np.array(sizes, dtype=np.int64), np.array(dims), np.array(spread), np.array(scale)


def scale_warning(values: np.ndarray, what: str) -> list[str]:
    finite = values[np.isfinite(values) & (values > 0)]
    if len(finite) < 2 or finite.max() <= 1.25 * finite.min():
        return []
    return [
        f"the {what} estimate ranges from {finite.min():.3g} to {finite.max():.3g} across scales: the "
        "dimension depends on the neighbourhood size, so no single number describes it (see the scale curves)"
    ]
