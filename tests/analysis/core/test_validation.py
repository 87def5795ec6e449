"""Input validation (_validation.py) and the EmbeddingSet behaviour built on it.

Every bad input must raise EmbeddingInputError saying what is wrong and where; no check may modify
or lock the caller's array.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import embgeo.analysis.embeddings.embedding_set as es_module
from embgeo.analysis import EmbeddingInputError, EmbeddingSet, exact_knn
from embgeo.analysis._core.validation import (
    SCAN_BLOCK_ROWS,
    as_float32_matrix,
    check_finite,
    check_k,
    check_metric,
    check_no_zero_rows,
    check_random_state,
    check_same_dim,
    check_weights,
    find_nonfinite_rows,
    find_zero_rows,
    iter_row_blocks,
)


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32)


# --------------------------------------------------------------------------------------------- shapes and dtypes


def test_error_is_a_value_error():
    assert issubclass(EmbeddingInputError, ValueError)


def test_one_d_input_suggests_a_row():
    with pytest.raises(EmbeddingInputError, match=r"2-D array .* got 1-D with shape \(6,\) \(a single vector\? pass it as x\[None, :\]\)"):
        as_float32_matrix(np.ones(6))


def test_three_d_input_suggests_reshape():
    with pytest.raises(EmbeddingInputError, match=r"got 3-D with shape \(2, 3, 4\) \(flatten the leading axes"):
        EmbeddingSet(np.ones((2, 3, 4), dtype=np.float32))


@pytest.mark.parametrize("shape", [(0, 4), (5, 0)])
def test_empty(shape):
    with pytest.raises(EmbeddingInputError, match=rf"vectors is empty: shape \({shape[0]}, {shape[1]}\)"):
        as_float32_matrix(np.zeros(shape, dtype=np.float32))


def test_ragged_rows_list_and_object_array():
    with pytest.raises(EmbeddingInputError, match=r"rows have different lengths \(ragged input\)"):
        as_float32_matrix([[1.0, 2.0], [3.0]])
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1.0, 2.0], [3.0]
    with pytest.raises(EmbeddingInputError, match=r"ragged input\): saw lengths \[1, 2\]"):
        as_float32_matrix(ragged)


def test_non_numeric_values():
    with pytest.raises(EmbeddingInputError, match=r"values are not numeric \(object dtype\)"):
        as_float32_matrix(np.array([["x", "a"], ["b", "c"]], dtype=object))
    with pytest.raises(EmbeddingInputError, match="dtype <U1 is not a numeric vector type"):
        as_float32_matrix(np.array([["a", "b"]]))
    with pytest.raises(EmbeddingInputError, match="dtype bool is not a numeric vector type"):
        as_float32_matrix(np.ones((2, 2), dtype=bool))


def test_mixed_object_cells_reported_as_non_numeric():
    with pytest.raises(EmbeddingInputError, match=r"values are not numeric \(object dtype\)"):
        as_float32_matrix(np.array([[1.0, "a"], [2.0, 3.0]], dtype=object))


def test_numeric_object_array_is_converted():
    obj = np.array([[1, 2], [3, 4]], dtype=object)
    out = as_float32_matrix(obj)
    assert out.dtype == np.float32 and out.tolist() == [[1, 2], [3, 4]]
    assert obj.dtype == object  # the caller's array keeps its dtype


def test_float32_is_a_read_only_view_and_the_caller_keeps_writing(x):
    out = as_float32_matrix(x)
    assert np.shares_memory(out, x) and not out.flags.writeable
    assert x.flags.writeable
    x[0, 0] = 42.0  # the caller's array is not locked
    assert out[0, 0] == 42.0


def test_other_dtypes_become_new_float32(x):
    x64 = x.astype(np.float64)
    before = x64.copy()
    out = as_float32_matrix(x64)
    assert out.dtype == np.float32 and not np.shares_memory(out, x64)
    np.testing.assert_array_equal(x64, before)
    assert as_float32_matrix(np.arange(6, dtype=np.int16).reshape(2, 3)).dtype == np.float32


# --------------------------------------------------------------------------------------------- values


def test_nonfinite_rows_reported_with_count_and_first_indices(x):
    y = x.copy()
    bad = [3, 5, 8, 13, 21, 34]
    y[bad[:3], 1] = np.nan
    y[bad[3:], 0] = np.inf
    y[bad[-1], 2] = -np.inf
    with pytest.raises(EmbeddingInputError,
                       match=r"^vectors: 6 of 40 rows contain NaN or inf values \(first rows \[3, 5, 8, 13, 21, \.\.\.\]\)"):
        check_finite(y)
    with pytest.raises(EmbeddingInputError, match=r"2 of 40 rows .*\[3, 5\]\).*on_invalid='drop'"):
        EmbeddingSet(np.where(np.isin(np.arange(40), [3, 5])[:, None], np.nan, x))


def test_nonfinite_scan_crosses_block_boundaries(tmp_path):
    """The scan reads a memory map in blocks; a bad row on each side of a boundary is found."""
    n = SCAN_BLOCK_ROWS + 10
    path = tmp_path / "big.dat"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, 2))
    mm[:] = 1.0
    mm[SCAN_BLOCK_ROWS - 1, 0] = np.nan
    mm[SCAN_BLOCK_ROWS, 1] = np.inf
    mm[5] = 0.0
    mm.flush()
    del mm
    ro = np.memmap(path, dtype=np.float32, mode="r", shape=(n, 2))
    assert find_nonfinite_rows(ro).tolist() == [SCAN_BLOCK_ROWS - 1, SCAN_BLOCK_ROWS]
    assert find_zero_rows(ro).tolist() == [5]


def test_iter_row_blocks_covers_every_row_once(x):
    starts = [(s, len(b)) for s, b in iter_row_blocks(x, block_rows=16)]
    assert starts == [(0, 16), (16, 16), (32, 8)]


def test_zero_rows_under_cosine_only(x):
    y = x.copy()
    y[[4, 9]] = 0.0
    with pytest.raises(EmbeddingInputError, match=r"2 of 40 rows are all-zero vectors \(first rows \[4, 9\]\).*metric='euclidean'"):
        check_no_zero_rows(y, "cosine")
    check_no_zero_rows(y, "euclidean")
    check_no_zero_rows(y, "dot")
    s = EmbeddingSet(y)  # a zero vector is a valid vector; only the cosine metric refuses it
    with pytest.raises(EmbeddingInputError, match=r"corpus: 2 of 40 rows are all-zero"):
        s.neighbors(3, metric="cosine", backend="numpy")
    assert s.neighbors(3, metric="euclidean", backend="numpy").k == 3


# --------------------------------------------------------------------------------------------- other checks


def test_check_metric():
    assert check_metric("dot") == "dot"
    with pytest.raises(EmbeddingInputError, match="unknown metric 'l2'; choose one of cosine, dot, euclidean"):
        check_metric("l2")


def test_check_k():
    assert check_k(np.int64(3), 5) == 3
    with pytest.raises(EmbeddingInputError, match="k must be an integer, got 2.5"):
        check_k(2.5, 5)
    with pytest.raises(EmbeddingInputError, match="k must be an integer, got True"):
        check_k(True, 5)
    with pytest.raises(EmbeddingInputError, match="k must be at least 1, got 0"):
        check_k(0, 5)
    with pytest.raises(EmbeddingInputError, match="too few points for k=6: only 5 candidate neighbours"):
        check_k(6, 5)


def test_too_few_rows_for_k():
    s = EmbeddingSet(np.eye(4, dtype=np.float32))
    with pytest.raises(EmbeddingInputError, match=r"too few points for k=4: only 3 candidate neighbours \(self excluded\)"):
        s.neighbors(4, backend="numpy")
    assert s.neighbors(3, backend="numpy").k == 3


def test_mismatched_corpus_and_query_dims(x):
    with pytest.raises(EmbeddingInputError, match="queries have dimension 5 but the corpus has dimension 6"):
        check_same_dim(x, x[:, :5])
    with pytest.raises(EmbeddingInputError, match="queries have dimension 5 but the corpus has dimension 6"):
        exact_knn(x, x[:3, :5], k=2, backend="numpy")


def test_check_weights():
    np.testing.assert_allclose(check_weights([1, 3], 2), [0.25, 0.75])
    with pytest.raises(EmbeddingInputError, match="weights have 3 entries but there are 2 vectors"):
        check_weights([1, 2, 3], 2)
    with pytest.raises(EmbeddingInputError, match=r"weights must be non-negative; negative at rows \[1\]"):
        check_weights([1, -2], 2)
    with pytest.raises(EmbeddingInputError, match=r"weights contain NaN or inf at rows \[0\]"):
        check_weights([np.nan, 1], 2)
    with pytest.raises(EmbeddingInputError, match="weights sum to zero"):
        check_weights([0, 0], 2)


def test_check_random_state():
    g = np.random.default_rng(1)
    assert check_random_state(g) is g
    assert check_random_state(7).integers(1000) == np.random.default_rng(7).integers(1000)


# --------------------------------------------------------------------------------------------- EmbeddingSet


def test_drop_invalid_rows_with_their_metadata_and_weights(x):
    y = x.copy()
    y[[1, 6]] = np.nan
    y[30, 2] = np.inf
    meta = pd.DataFrame({"text": [f"w{i}" for i in range(40)]})
    w = np.arange(1.0, 41.0)
    y_before, meta_before, w_before = y.copy(), meta.copy(), w.copy()
    s = EmbeddingSet(y, meta, w, on_invalid="drop")
    assert s.dropped_rows.tolist() == [1, 6, 30]
    keep = np.setdiff1d(np.arange(40), [1, 6, 30])
    np.testing.assert_array_equal(s.vectors, x[keep])
    assert s.texts == [f"w{i}" for i in keep]
    np.testing.assert_array_equal(s.weights, w[keep])
    assert s.probabilities.sum() == pytest.approx(1.0)
    assert "dropped rows" in repr(s) and "3 with NaN/inf" in repr(s)
    # the caller's array, table and weights are untouched and still writeable
    np.testing.assert_array_equal(y, y_before)
    pd.testing.assert_frame_equal(meta, meta_before)
    np.testing.assert_array_equal(w, w_before)
    assert y.flags.writeable and w.flags.writeable


def test_on_invalid_must_be_known(x):
    with pytest.raises(EmbeddingInputError, match="on_invalid must be 'raise' or 'drop', got 'skip'"):
        EmbeddingSet(x, on_invalid="skip")


def test_metadata_and_weight_lengths_checked(x):
    with pytest.raises(EmbeddingInputError, match="metadata has 3 rows but there are 40 vectors"):
        EmbeddingSet(x, metadata={"text": ["a", "b", "c"]})
    with pytest.raises(EmbeddingInputError, match="weights have 2 entries but there are 40 vectors"):
        EmbeddingSet(x, weights=[1, 2])


def test_caller_array_untouched_and_writeable(x):
    before = x.copy()
    s = EmbeddingSet(x)
    s.neighbors(5, metric="cosine", backend="numpy")  # normalises internally, never in place
    s.neighbors(5, metric="euclidean", backend="numpy")
    np.testing.assert_array_equal(x, before)
    assert x.flags.writeable and not s.vectors.flags.writeable


def test_subset_and_with_vectors_keep_items(x):
    s = EmbeddingSet(x, {"text": [str(i) for i in range(40)]}, np.arange(40) + 1.0)
    sub = s.subset([3, 1])
    assert sub.texts == ["3", "1"] and sub.weights.tolist() == [4.0, 2.0]
    np.testing.assert_array_equal(sub.vectors, x[[3, 1]])
    with pytest.raises(EmbeddingInputError, match="new vectors have 2 rows, the set has 40"):
        s.with_vectors(x[:2])
    assert s.with_vectors(2 * x).texts == s.texts


def test_neighbors_cache_slices_a_larger_table(x, monkeypatch):
    s = EmbeddingSet(x)
    calls = []
    real = es_module.exact_knn

    def counting(*args, **kwargs):
        calls.append(kwargs["k"])
        return real(*args, **kwargs)

    monkeypatch.setattr(es_module, "exact_knn", counting)
    big = s.neighbors(8, backend="numpy")
    small = s.neighbors(3, backend="numpy")
    assert calls == [8]  # served from the cache
    np.testing.assert_array_equal(small.indices, big.indices[:, :3])
    np.testing.assert_array_equal(small.distances, big.distances[:, :3])
    # the slice equals an independent k=3 search
    fresh = real(x, k=3, metric="cosine", backend="numpy")
    np.testing.assert_array_equal(small.indices, fresh.indices)
    np.testing.assert_allclose(small.distances, fresh.distances, rtol=1e-5)
    assert s.neighbors(8, backend="numpy") is big
    assert s.neighbors(5, exact=False).exact  # an exact table serves approximate requests
    s.neighbors(3, metric="euclidean", backend="numpy")  # another metric is another table
    s.neighbors(10, backend="numpy")  # a larger k than cached recomputes
    assert calls == [8, 3, 10]
    s.clear_cache()
    s.neighbors(2, backend="numpy")
    assert calls == [8, 3, 10, 2]
