"""Values float32 cannot hold, or cannot square, are refused by name (issue 15, defects 4 and 5).

embgeo computes in float32. Before these checks a float64 value beyond float32's range became inf and
was reported as "NaN or inf", one below its smallest number became 0 and was reported as an all-zero
row, and float32 rows at magnitudes of 1e19 or 1e-25 gave wrong neighbours without a word.
"""

import numpy as np
import pytest

from embgeo.analysis import EmbeddingInputError, EmbeddingSet, exact_knn, load
from embgeo.analysis._core import magnitude_limits


@pytest.fixture
def gauss():
    return np.random.default_rng(0).normal(size=(200, 16))


def test_float64_beyond_float32_range_is_named_not_called_nan(gauss):
    x = gauss * 1e39
    before = x.copy()
    with pytest.raises(EmbeddingInputError, match="beyond float32's range") as err:
        load(x)
    assert "NaN" not in str(err.value) and "3.9e+39" in str(err.value)
    np.testing.assert_array_equal(x, before)


def test_float64_underflow_is_named_not_called_all_zero(gauss):
    with pytest.raises(EmbeddingInputError, match="below float32's smallest number") as err:
        load(gauss * 1e-46)
    assert "all-zero vectors (first" not in str(err.value)


def test_a_single_overflowing_row_is_found_in_a_later_block(gauss):
    x = np.tile(gauss, (400, 1))  # 80,000 rows: more than one scan block
    x[70_001, 3] = 1e300
    with pytest.raises(EmbeddingInputError, match=r"rows \[70001\]"):
        EmbeddingSet(x)


@pytest.mark.parametrize("scale, words", [(1e19, "overflow above"), (1e-25, "below float32's precision")])
@pytest.mark.parametrize("metric", ["cosine", "euclidean", "dot"])
def test_float32_rows_too_large_or_small_to_square_are_refused(gauss, scale, words, metric):
    x = (gauss * scale).astype(np.float32)
    with pytest.raises(EmbeddingInputError, match=words):
        EmbeddingSet(x)
    with pytest.raises(EmbeddingInputError, match=words):  # the engine's own entry, given an array
        exact_knn(x, k=3, metric=metric)


def test_the_limits_keep_the_search_exact_at_their_edges(gauss):
    """Just inside the limits the neighbours equal those of the unscaled data: the limits are not
    arbitrary, and they refuse only what float32 gets wrong."""
    low, high = magnitude_limits(16)
    ref = exact_knn(gauss.astype(np.float32), k=5, metric="euclidean").indices
    peaks = np.abs(gauss).max(axis=1)
    for scale in (high / 2 / peaks.max(), low * 2 / peaks.min()):  # one constant: the same neighbours
        x = gauss * scale
        got = exact_knn(x.astype(np.float32), k=5, metric="euclidean").indices
        assert np.mean(got == ref) > 0.99


def test_zero_rows_are_not_refused_as_too_small(gauss):
    x = gauss.astype(np.float32)
    x[5] = 0
    assert EmbeddingSet(x).n == 200
