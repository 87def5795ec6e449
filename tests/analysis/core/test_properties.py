"""Property tests (hypothesis) where they pay: validation never touches the input, moments merge
exactly, and blocked computations equal their one-shot versions whatever the block size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from embgeo.analysis import EmbeddingInputError, Moments, exact_knn, scan_moments
from embgeo.analysis._core import as_float32_matrix, find_nonfinite_rows, find_zero_rows, sample_rows

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Rows of moderate values (embedding-like magnitudes; no overflow in float32 squares).
finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=32)


def matrices(dtype=np.float32, rows=(1, 40), cols=(1, 12), elements=finite):
    shape = st.tuples(st.integers(*rows), st.integers(*cols))
    return hnp.arrays(dtype, shape, elements=elements)


# --------------------------------------------------------------------------------------------- validation


@SETTINGS
@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.int16, np.uint8]),
                  st.tuples(st.integers(1, 30), st.integers(1, 8)),
                  elements=st.integers(0, 100)))
def test_as_float32_matrix_never_writes_and_keeps_the_values(x):
    before = x.copy()
    view = as_float32_matrix(x)
    assert view.dtype == np.float32 and view.shape == x.shape and not view.flags.writeable
    np.testing.assert_array_equal(view, before.astype(np.float32))
    np.testing.assert_array_equal(x, before)  # the caller's array is untouched
    with pytest.raises(ValueError):
        view[0, 0] = 1.0


@SETTINGS
@given(matrices(), st.data())
def test_non_finite_and_zero_rows_are_found_exactly(x, data):
    x = x.copy()
    bad = data.draw(st.lists(st.integers(0, len(x) - 1), unique=True, max_size=len(x)))
    for r in bad:
        x[r, data.draw(st.integers(0, x.shape[1] - 1))] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    np.testing.assert_array_equal(find_nonfinite_rows(x), sorted(bad))
    clean = np.nan_to_num(x, nan=1.0, posinf=1.0, neginf=1.0)
    zero = [r for r in range(len(clean)) if not clean[r].any()]
    np.testing.assert_array_equal(find_zero_rows(clean), zero)


@SETTINGS
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 5), st.integers(1, 3)), elements=finite))
def test_arrays_of_the_wrong_rank_are_refused_with_their_shape(x):
    with pytest.raises(EmbeddingInputError, match=r"2-D array .* got 3-D"):
        as_float32_matrix(x)


@SETTINGS
@given(st.integers(2, 500), st.integers(1, 600), st.integers(0, 2**31 - 1))
def test_sample_rows_are_sorted_distinct_and_reproducible(n, sample, seed):
    rows = sample_rows(n, sample, np.random.default_rng(seed))
    if sample >= n:
        assert rows is None  # every row
        return
    assert len(rows) == sample and len(np.unique(rows)) == sample and (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, sample_rows(n, sample, np.random.default_rng(seed)))


# --------------------------------------------------------------------------------------------- moments


@SETTINGS
@given(matrices(np.float64, rows=(2, 60)), st.data(), st.booleans())
def test_moments_of_any_split_merge_to_the_moments_of_the_whole(x, data, weighted):
    assume(np.linalg.norm(x, axis=1).min() > 1e-3)  # unit vectors need a direction
    w = data.draw(hnp.arrays(np.float64, len(x), elements=st.floats(0.1, 10))) if weighted else None
    cut = sorted(data.draw(st.lists(st.integers(1, len(x) - 1), unique=True, max_size=4)))
    parts = np.split(np.arange(len(x)), cut)
    for normalize in (False, True):
        whole = Moments(x.shape[1], normalize=normalize).update(x, w)
        merged = sum(Moments(x.shape[1], normalize=normalize).update(x[p], None if w is None else w[p])
                     for p in parts)
        scale = 1.0 + np.abs(whole.scatter_).max()
        np.testing.assert_allclose(merged.mean_, whole.mean_, atol=1e-9 * scale)
        np.testing.assert_allclose(merged.scatter_, whole.scatter_, atol=1e-9 * scale)
        np.testing.assert_allclose(merged.unit_sum_, whole.unit_sum_, atol=1e-9 * len(x))
        np.testing.assert_allclose(merged.unit_sq_sum_, whole.unit_sq_sum_, atol=1e-9 * len(x))
        assert merged.count == whole.count and merged.weight_sum == pytest.approx(whole.weight_sum)


@SETTINGS
@given(matrices(rows=(2, 80)), st.integers(1, 20))
def test_blocked_moments_equal_one_shot_numpy(x, block_rows):
    m = scan_moments(x, block_rows=block_rows)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(m.mean, x64.mean(axis=0), atol=1e-9 * (1 + np.abs(x64).max()))
    np.testing.assert_allclose(m.covariance(), np.cov(x64.T, bias=True).reshape(m.dim, m.dim),
                               atol=1e-7 * (1 + (x64 ** 2).max()))


# --------------------------------------------------------------------------------------------- k-NN


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(6, 90), st.integers(2, 10), st.integers(1, 5), st.sampled_from(["cosine", "euclidean", "dot"]),
       st.integers(16, 64), st.integers(0, 2**31 - 1))
def test_blocked_exact_search_equals_brute_force(n, d, k, metric, block, seed):
    from embgeo.analysis.neighbors import exact

    x = (np.random.default_rng(seed).normal(size=(n, d)) + 0.3).astype(np.float32)
    saved = exact.SYMMETRIC_BLOCK_ROWS
    exact.SYMMETRIC_BLOCK_ROWS = block  # many tiles, a ragged last one
    try:
        res = exact_knn(x, k=k, metric=metric, backend="numpy")
    finally:
        exact.SYMMETRIC_BLOCK_ROWS = saved
    x64 = x.astype(np.float64)
    if metric == "cosine":
        u = x64 / np.linalg.norm(x64, axis=1, keepdims=True)
        score = u @ u.T
    elif metric == "dot":
        score = x64 @ x64.T
    else:
        score = -np.linalg.norm(x64[:, None] - x64[None], axis=2)
    np.fill_diagonal(score, -np.inf)
    kth = np.sort(score, axis=1)[:, -k]  # each row's k-th best score
    got = np.take_along_axis(score, res.indices, axis=1)
    # the found neighbours are k best ones (ties at the k-th score may be broken either way)
    assert (got >= kth[:, None] - 1e-5 * (1 + np.abs(kth[:, None]))).all()
    assert (np.diff(res.distances, axis=1) >= -1e-6).all()  # nearest first
