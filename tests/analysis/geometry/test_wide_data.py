"""Wide data (fewer rows than dimensions, as LLM embeddings of a few items): the moments keep the rows
and every spectrum comes from the n x n side, yet each statistic equals the d x d computation.

References: numpy's eigh of the explicit d x d covariance at d = 1024; at d = 4096 and 8192 (where a
d x d eigendecomposition takes minutes) the SVD of the centred rows padded with d - n zeros, computed
here with numpy, and matrix-free checks ``X^T X v = lambda v`` of the axes.
"""

import pickle
import tracemalloc

import numpy as np
import pytest

from embgeo.analysis import EmbeddingSet
from embgeo.analysis._core.moments import scan_moments, sorted_eigh
from embgeo.analysis.geometry.isotropy import isoscore_from_eigenvalues, isotropy_report, spectrum_summary

#: (n, d, rank) of the wide cases; rank None = random (full row rank), else rows on a rank-r subspace
#: plus a common offset.
WIDE = [(5, 4096, None), (5, 4096, 2), (50, 8192, None), (50, 8192, 3), (20, 1024, None), (30, 1024, 4)]
SPECTRUM_FIELDS = ("isoscore", "participation_ratio", "effective_rank", "power_law_alpha")
INTEGER_FIELDS = ("pca_dim_90", "pca_dim_95", "pca_dim_99")


def _data(n, d, rank=None, seed=0):
    """Anisotropic rows with a common direction (a cone), float32 as a set stores them."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d)) if rank is None else rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d))
    return (z * rng.uniform(0.2, 2.0, size=d) + 0.8 * rng.normal(size=d)).astype(np.float32)


def _analysed(x, metric):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x


def _reference(x, metric, weights=None):
    """Every field of isotropy_report computed directly from the rows (d x d eigh when d <= 1024)."""
    rows = _analysed(x, metric)
    n, d = rows.shape
    p = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
    mu = p @ rows
    centred = rows - mu
    if d <= 1024:
        lam = np.clip(np.linalg.eigvalsh((centred * p[:, None]).T @ centred)[::-1], 0.0, None)
        # n rows span at most n directions: eigh's values past n are rounding noise of exact zeros
        # (~1e-17 each, yet 1,000 of them move the effective rank by ~5e-5), so they are set to 0
        if n < d:
            assert lam[n:].max() < 1e-12 * lam[0]
            lam[n:] = 0.0
    else:
        s = np.linalg.svd(centred * np.sqrt(p)[:, None], compute_uv=False)
        lam = np.r_[s**2, np.zeros(d - s.size)]
    out = spectrum_summary(lam, n=n)
    out["isoscore"] = isoscore_from_eigenvalues(lam)
    u = _analysed(x, "cosine")
    cos, off = u @ u.T, ~np.eye(n, dtype=bool)
    pp = np.outer(p, p)[off]
    out["mean_cosine"] = float((cos[off] * pp).sum() / pp.sum())
    out["common_direction_share"] = float(mu @ mu / (p @ np.einsum("ij,ij->i", rows, rows)))
    norms = np.linalg.norm(np.asarray(x, np.float64), axis=1)
    out["norm_mean"] = float(p @ norms)
    out["norm_std"] = float(np.sqrt(p @ (norms - p @ norms) ** 2))
    shares = (p @ u) ** 2
    out["shares"] = shares / shares.sum()
    return out


def _same(got, want, rel):
    if np.isnan(want):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(want, rel=rel, abs=1e-12)


def _fix_signs(v):
    return v * np.sign(v[np.argmax(np.abs(v), axis=0), np.arange(v.shape[1])])


@pytest.mark.parametrize("n,d,rank", WIDE)
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_every_statistic_equals_the_d_by_d_computation(n, d, rank, metric):
    x = _data(n, d, rank, seed=n + d)
    before = x.copy()
    r = isotropy_report(x, metric=metric)
    ref = _reference(x, metric)
    np.testing.assert_array_equal(x, before)
    lam = ref["eigenvalues"]
    assert r.eigenvalues.shape == (d,)
    np.testing.assert_allclose(r.eigenvalues, lam, rtol=1e-6, atol=1e-9 * lam[0])
    # the rows span at most n directions: every eigenvalue past n is exactly zero, not rounding noise
    assert (r.eigenvalues[n:] == 0.0).all()
    np.testing.assert_allclose(r.explained_variance_ratio, ref["explained_variance_ratio"], rtol=1e-6, atol=1e-12)
    for key in SPECTRUM_FIELDS + ("mean_cosine", "common_direction_share", "norm_mean", "norm_std"):
        _same(getattr(r, key), ref[key], rel=1e-6)
    for key in INTEGER_FIELDS:
        assert getattr(r, key) == ref[key], key
    assert r.alpha_fit_range == ref["alpha_fit_range"]
    top = np.argsort(-ref["shares"], kind="stable")[:10]
    assert [e["dim"] for e in r.top_dimensions] == top.tolist()
    np.testing.assert_allclose([e["share"] for e in r.top_dimensions], ref["shares"][top], rtol=1e-6)
    if rank is not None:  # rows on an affine rank-r subspace; their unit vectors span r + 1 directions
        span = rank if metric == "euclidean" else rank + 1
        assert r.pca_dim_99 <= span and r.effective_rank < span + 0.01


@pytest.mark.parametrize("n,rank", [(20, None), (30, 4)])
def test_isoscore_matches_isoscore_package(n, rank):
    IsoScore = pytest.importorskip("IsoScore.IsoScore")
    x = _data(n, 1024, rank, seed=3)
    for metric in ("euclidean", "cosine"):
        want = float(IsoScore.IsoScore(_analysed(x, metric)))
        assert isotropy_report(x, metric=metric).isoscore == pytest.approx(want, rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("rank", [None, 4])
def test_partition_isotropy_equals_the_d_by_d_estimate(rank):
    # Z(c) = sum_i exp(<c, x_i>) over the eigenvectors c of X^T X. Z(c) and Z(-c) differ and an
    # eigenvector's sign is arbitrary, so the d x d reference is oriented like the set's own axes first;
    # its d - n null directions give Z = n (up to rounding), which the wide route puts in exactly.
    x = _data(30, 1024, rank, seed=4)
    for metric in ("cosine", "euclidean"):
        rows = _analysed(x, metric)
        lam, ref = np.linalg.eigh(rows.T @ rows)
        lam_w, axes = scan_moments(x, normalize=metric == "cosine").eigensystem(centered=False)
        np.testing.assert_allclose(lam_w, np.clip(lam[::-1], 0, None) / len(x), rtol=1e-6, atol=1e-9 * lam_w[0])
        r = axes.shape[1]
        live = lam_w[:r] > 1e-9 * lam_w[0]
        ref = ref[:, ::-1].copy()
        signs = np.sign(np.sum(ref[:, :r] * axes, axis=0))
        ref[:, :r] *= np.where(signs == 0, 1.0, signs)
        z = np.exp(rows @ ref).sum(axis=0)
        # the same Z on the directions the rows span (elsewhere Z = n up to rounding, whatever the sign)
        np.testing.assert_allclose(np.exp(rows @ axes).sum(axis=0)[live], z[:r][live], rtol=1e-6)
        want = z.min() / z.max()
        assert isotropy_report(x, metric=metric).partition_isotropy == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("n,d,rank", [(5, 4096, None), (50, 8192, None), (50, 8192, 3)])
def test_partition_isotropy_large_d_matrix_free(n, d, rank):
    x = _data(n, d, rank, seed=5)
    rows = _analysed(x, "cosine")
    lam, axes = scan_moments(x, normalize=True).eigensystem(centered=False)
    r = axes.shape[1]  # the numerical rank: every direction the unit rows span
    assert axes.shape[0] == d and (n if rank is None else rank + 1) <= r <= n and (lam[n:] == 0).all()
    # the axes are orthonormal eigenvectors of X^T X / n: checked without forming the d x d matrix
    np.testing.assert_allclose(axes.T @ axes, np.eye(r), atol=1e-10)
    np.testing.assert_allclose(rows.T @ (rows @ axes) / n, axes * lam[:r], atol=1e-9 * lam[0])
    z = np.r_[np.exp(rows @ axes).sum(axis=0), np.full(d - r, float(n))]
    assert isotropy_report(x).partition_isotropy == pytest.approx(z.min() / z.max(), rel=1e-5)


@pytest.mark.parametrize("rank", [None, 4])
@pytest.mark.parametrize("centered", [True, False])
def test_principal_axes_equal_d_by_d_eigh(rank, centered):
    x = _data(30, 1024, rank, seed=6)
    m = scan_moments(x)
    assert m.wide
    rows = _analysed(x, "euclidean")
    matrix = np.cov(rows.T, bias=True) if centered else rows.T @ rows / len(rows)
    lam_ref, v_ref = sorted_eigh(matrix)
    k = (rank or 29) if centered else (rank + 1 if rank else 30)  # the directions the rows span
    lam, v = m.principal_axes(centered=centered, n_components=k)
    assert v.shape == (1024, k)
    np.testing.assert_allclose(lam, lam_ref[:k], rtol=1e-7, atol=1e-10 * lam_ref[0])
    np.testing.assert_allclose(v, v_ref[:, :k], atol=1e-7)
    # the whole basis: orthonormal, the same leading axes, and the rest a basis of the null space
    lam_all, v_all = m.principal_axes(centered=centered)
    assert v_all.shape == (1024, 1024) and lam_all.shape == (1024,) and (lam_all[30:] == 0).all()
    np.testing.assert_allclose(v_all.T @ v_all, np.eye(1024), atol=1e-10)
    np.testing.assert_allclose(v_all[:, :k], v_ref[:, :k], atol=1e-7)
    spread = (rows - rows.mean(0)) if centered else rows
    assert np.abs(spread @ v_all[:, k:]).max() < 1e-6 * np.abs(rows).max()
    with pytest.raises(ValueError, match="n_components"):
        m.principal_axes(n_components=0)


@pytest.mark.parametrize("n,d", [(5, 4096), (50, 8192)])
def test_principal_axes_large_d_equal_svd(n, d):
    x = _data(n, d, seed=7)
    centred = _analysed(x, "euclidean") - x.astype(np.float64).mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    lam, v = scan_moments(x).principal_axes(n_components=n - 1)
    np.testing.assert_allclose(lam, s[: n - 1] ** 2 / n, rtol=1e-8)
    np.testing.assert_allclose(v, _fix_signs(vt[: n - 1].T), atol=1e-8)
    m = scan_moments(x)
    np.testing.assert_allclose(m.variances(), centred.var(axis=0), rtol=1e-9, atol=1e-15)
    assert m.total_variance() == pytest.approx(float((centred**2).sum() / n), rel=1e-12)


def test_weighted_wide_equals_weighted_reference_and_replicated_rows():
    x = _data(20, 1024, seed=8)
    counts = np.random.default_rng(8).integers(1, 5, size=len(x))
    w = isotropy_report(EmbeddingSet(x, weights=counts), weighted=True, metric="euclidean")
    ref = _reference(x, "euclidean", weights=counts)
    np.testing.assert_allclose(w.eigenvalues, ref["eigenvalues"], rtol=1e-6, atol=1e-9 * ref["eigenvalues"][0])
    for key in SPECTRUM_FIELDS + ("mean_cosine", "common_direction_share", "norm_mean", "norm_std"):
        _same(getattr(w, key), ref[key], rel=1e-6)
    rep = isotropy_report(np.repeat(x, counts, axis=0), metric="euclidean")
    for key in SPECTRUM_FIELDS + ("partition_isotropy", "common_direction_share"):
        _same(getattr(w, key), getattr(rep, key), rel=1e-5)


def test_rotation_leaves_the_spectrum_unchanged():
    rng = np.random.default_rng(9)
    cases = []
    q, _ = np.linalg.qr(rng.normal(size=(1024, 1024)))  # a Haar-random rotation at d = 1024
    x = _data(20, 1024, seed=10)
    cases.append((x, (x.astype(np.float64) @ q).astype(np.float32)))
    x = _data(50, 8192, seed=11)  # at d = 8192: four random Householder reflections (a rotation)
    y = x.astype(np.float64)
    for v in rng.normal(size=(4, 8192)):
        v /= np.linalg.norm(v)
        y = y - 2.0 * np.outer(y @ v, v)
    cases.append((x, y.astype(np.float32)))
    for x, y in cases:
        for metric in ("cosine", "euclidean"):
            a, b = isotropy_report(x, metric=metric), isotropy_report(y, metric=metric)
            np.testing.assert_allclose(b.eigenvalues, a.eigenvalues, rtol=1e-4, atol=1e-7 * a.eigenvalues[0])
            assert (b.eigenvalues[len(x):] == 0).all()
            for key in ("isoscore", "participation_ratio", "effective_rank", "mean_cosine",
                        "common_direction_share", "norm_mean"):
                assert getattr(b, key) == pytest.approx(getattr(a, key), rel=1e-4, abs=1e-7), key
            for key in INTEGER_FIELDS:
                assert getattr(b, key) == getattr(a, key)


def test_streamed_moments_cross_from_rows_to_scatter_and_stay_exact():
    rng = np.random.default_rng(12)
    d = 64
    x = (rng.normal(size=(200, d)) * np.linspace(0.1, 2.0, d) + 30.0).astype(np.float32)
    w = rng.random(200) + 0.1
    x64 = x.astype(np.float64)
    for n in (20, d - 1, d, d + 1, 200):
        m = scan_moments(x[:n], w[:n], block_rows=16)
        assert m.wide == (n < d) and m.count == n
        cov = np.cov(x64[:n].T, aweights=w[:n], bias=True)
        np.testing.assert_allclose(m.mean, w[:n] @ x64[:n] / w[:n].sum(), rtol=1e-12)
        np.testing.assert_allclose(m.covariance(), cov, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(m.scatter_, cov * w[:n].sum(), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(m.eigenvalues(), np.clip(np.linalg.eigvalsh(cov)[::-1], 0, None),
                                   rtol=1e-7, atol=1e-11 * np.trace(cov))
        np.testing.assert_allclose(m.variances(), np.diag(cov), rtol=1e-9)
        np.testing.assert_allclose(m.second_moment(), (x64[:n] * w[:n, None]).T @ x64[:n] / w[:n].sum(), rtol=1e-9)
    # merging wide parts: below d rows they stay rows, past it they become the scatter; any order
    parts = [scan_moments(x[s], w[s]) for s in (slice(0, 10), slice(10, 40), slice(40, 50), slice(50, 200))]
    assert parts[0].merge(parts[1]).wide and not parts[0].merge(parts[1]).merge(parts[3]).wide
    whole = scan_moments(x, w)
    for merged in (sum(parts), parts[3] + (parts[2] + (parts[1] + parts[0])),
                   sum(pickle.loads(pickle.dumps(p)) for p in parts[::-1])):
        np.testing.assert_allclose(merged.covariance(), whole.covariance(), rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12)
    assert parts[0].count == 10 and parts[0].wide  # merge returns a new object
    copy = parts[0].copy()
    copy.update(x[10:12])
    assert parts[0].count == 10 and copy.count == 12


@pytest.mark.parametrize("n", [63, 64, 65])
def test_report_at_the_rows_equal_dimensions_boundary(n):
    x = _data(n, 64, seed=13)
    for metric in ("cosine", "euclidean"):
        r, ref = isotropy_report(x, metric=metric, block_rows=10), _reference(x, metric)
        np.testing.assert_allclose(r.eigenvalues, ref["eigenvalues"], rtol=1e-6, atol=1e-9 * ref["eigenvalues"][0])
        for key in SPECTRUM_FIELDS + ("mean_cosine", "common_direction_share"):
            _same(getattr(r, key), ref[key], rel=1e-6)


def _traced_peak(work) -> int:
    """Peak bytes of Python (NumPy included) allocations while ``work()`` runs."""
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("d", [4096, 16384])
def test_report_peak_memory_is_linear_in_d(d):
    # d x d float64 is 128 MiB at d = 4096 and 2 GiB at 16,384; 5 rows of 16,384 float64 are 640 KiB
    import torch  # noqa: F401  (imported before tracing: the import's allocations are not the report's)

    x = _data(5, d, seed=14)
    isotropy_report(_data(5, 32, seed=0))  # lazy imports happen outside the traced region
    reports = []
    peak = _traced_peak(lambda: reports.extend(isotropy_report(x, metric=m) for m in ("cosine", "euclidean")))
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.0f} MiB of allocations for 5 x {d}"
    assert all(r.eigenvalues.shape == (d,) and np.count_nonzero(r.eigenvalues) <= 5 for r in reports)


def test_moments_spectrum_peak_memory_is_linear_in_d():
    x = _data(5, 16384, seed=15)
    out = {}

    def work():
        m = scan_moments(x)
        out["eig"], out["axes"] = m.eigenvalues(), m.principal_axes(n_components=4)
        out["var"], out["system"] = m.variances(), m.eigensystem(centered=False)

    peak = _traced_peak(work)
    assert peak < 50 * 2**20, f"peak {peak / 2**20:.0f} MiB of allocations for 5 x 16384"
    assert out["axes"][1].shape == (16384, 4) and out["system"][1].shape == (16384, 5)
    assert (out["eig"][5:] == 0).all() and out["var"].shape == (16384,)
