"""Neighbour-table statistics: overlap and recall, k-occurrence, contrast, expansion and local ID."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embgeo.analysis import EmbeddingInputError, exact_knn, k_occurrence, local_intrinsic_dimension
from embgeo.analysis.neighbors import (
    duplicate_mask,
    expansion,
    local_intrinsic_dimension_from_distances,
    overlap_counts,
    recall_at_k,
    recall_per_query,
    relative_contrast,
)


# ------------------------------------------------------------------------------------------ overlap


def test_recall_per_query_matches_hand_computation_and_shared_helper():
    found = np.array([[1, 2, 3], [4, 5, -1]])
    truth = np.array([[3, 2, 9], [7, 8, 4]])
    np.testing.assert_allclose(recall_per_query(found, truth), [2 / 3, 1 / 3])
    rng = np.random.default_rng(1)
    f = np.array([rng.choice(50, 10, replace=False) for _ in range(30)])
    t = np.array([rng.choice(50, 10, replace=False) for _ in range(30)])
    assert recall_per_query(f, t).mean() == pytest.approx(recall_at_k(f, t))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_overlap_matches_python_set_intersection(k, rows, seed):
    rng = np.random.default_rng(seed)
    n = 3 * k + 2
    truth = np.array([rng.choice(n, k, replace=False) for _ in range(rows)])
    found = np.array([rng.choice(n, k + 2, replace=False) for _ in range(rows)])
    found[rng.random(found.shape) < 0.2] = -1  # missing results, possibly several in a row
    expected = [len({int(f) for f in fr[:k] if f >= 0} & set(tr.tolist())) for fr, tr in zip(found, truth)]
    assert overlap_counts(found, truth).tolist() == expected


def test_overlap_refuses_too_few_columns_or_rows():
    with pytest.raises(EmbeddingInputError, match="fewer than k"):
        recall_per_query(np.zeros((2, 1), int), np.zeros((2, 3), int))
    with pytest.raises(EmbeddingInputError, match="one row per query"):
        recall_per_query(np.zeros((3, 3), int), np.zeros((2, 3), int))


# ------------------------------------------------------------------------------------------ occurrence


def test_k_occurrence_counts_in_links():
    assert k_occurrence(np.array([[1, 2], [0, 2], [0, 1], [2, 0]]), 4).tolist() == [3, 2, 3, 0]


@pytest.mark.parametrize("bad", [np.array([[0, 5]]), np.array([[-1, 0]]), np.array([0, 1]), np.array([[0.5, 1.0]])])
def test_k_occurrence_rejects_bad_tables(bad):
    with pytest.raises(EmbeddingInputError):
        k_occurrence(bad, 3)


# ------------------------------------------------------------------------------------------ contrast


def test_relative_contrast_and_expansion_by_hand_and_nan_for_duplicates():
    dist = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 2.0]])
    mean = np.array([8.0, 5.0])
    np.testing.assert_allclose(relative_contrast(dist, 2, mean_distance=mean), [4.0, np.nan])
    np.testing.assert_allclose(expansion(dist, 2), [2.0, np.nan])
    with pytest.raises(EmbeddingInputError, match="at least 4 neighbours"):
        expansion(dist[:, :3], 2)
    with pytest.raises(EmbeddingInputError, match="mean distance"):
        relative_contrast(dist, 2)


def test_relative_contrast_of_an_exact_table_matches_brute_force():
    x = np.random.default_rng(3).normal(size=(300, 12)).astype(np.float32)
    rows = np.arange(0, 300, 11)
    table = exact_knn(x, k=6, metric="euclidean", query_indices=rows, mean_distance=True, backend="numpy")
    d = np.linalg.norm(x[rows, None, :].astype(np.float64) - x[None, :, :], axis=2)
    mean = d.sum(axis=1) / 299
    kth = np.sort(d, axis=1)[:, 3]  # column 0 is the query itself
    np.testing.assert_allclose(relative_contrast(table, 3), mean / kth, rtol=1e-5)


# ------------------------------------------------------------------------------------------ local ID


def test_lid_recovers_known_dimension_from_distance_law():
    # Inside a ball of dimension m, r_i / r_k of uniform points follow U^(1/m): the Hill MLE gives m.
    rng = np.random.default_rng(0)
    for m in (2, 5, 12):
        r = np.sort(rng.uniform(size=(200, 400)) ** (1 / m), axis=1)
        assert np.median(local_intrinsic_dimension_from_distances(r, form="hill")) == pytest.approx(m, rel=0.08)


def test_lid_agrees_with_the_intrinsic_dimension_module():
    x = np.random.default_rng(0).normal(size=(600, 10)).astype(np.float32)
    rows = np.arange(0, 600, 7)
    theirs = local_intrinsic_dimension(x, metric="euclidean", k=10, form="hill", query_indices=rows)
    nb = exact_knn(x, k=10, metric="euclidean", query_indices=rows, backend="numpy")
    np.testing.assert_allclose(local_intrinsic_dimension_from_distances(nb, form="hill"), theirs, rtol=1e-5)


def test_lid_marks_duplicates_and_flat_rows():
    dist = np.array([[0.5, 1.0, 2.0], [0.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    lid = local_intrinsic_dimension_from_distances(dist, form="hill")
    assert lid[0] == pytest.approx(-1 / ((math.log(0.25) + math.log(0.5)) / 3))
    assert math.isnan(lid[1]) and math.isinf(lid[2])  # duplicate; no contrast at all


def test_duplicate_mask_uses_a_relative_tolerance():
    dist = np.array([[1e-9, 1.0], [0.5, 1.0], [0.0, 2.0]])
    assert duplicate_mask(dist).tolist() == [True, False, True]
