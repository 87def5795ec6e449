"""EmbeddingSet's public ways to share a neighbour table: attach_neighbors and with_neighbors."""

from __future__ import annotations

import numpy as np
import pytest

from embgeo.analysis import EmbeddingInputError, EmbeddingSet, approximate_knn, exact_knn


def _set(n=400, d=16, seed=0):
    return EmbeddingSet(np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32), name="s")


def test_an_attached_table_serves_later_requests_without_a_search(monkeypatch):
    import embgeo.analysis.embeddings.embedding_set as module

    es = _set()
    table = exact_knn(es.vectors, k=12)
    es.attach_neighbors(table)
    monkeypatch.setattr(module, "exact_knn", lambda *a, **k: pytest.fail("searched again"))
    assert es.neighbors(12) is table
    np.testing.assert_array_equal(es.neighbors(5).indices, table.indices[:, :5])
    assert es.cached_neighbors(12) is not None and es.cached_neighbors(13) is None


def test_attach_refuses_a_table_of_another_set():
    es = _set()
    with pytest.raises(EmbeddingInputError, match="needs 400 rows"):
        es.attach_neighbors(exact_knn(es.vectors[:100], k=5))
    with pytest.raises(EmbeddingInputError, match="Neighbors table"):
        es.attach_neighbors(np.zeros((400, 5), int))


def test_with_neighbors_answers_exact_requests_from_an_approximate_table_and_leaves_the_set_alone():
    es = _set(n=3000, d=24)
    approx = approximate_knn(es.vectors, k=10, recall_sample=100)
    view = es.with_neighbors(approx)
    assert view.neighbors(10) is approx and view.neighbors(10, exact=False) is approx
    assert np.shares_memory(view.vectors, es.vectors) and view.name == es.name  # no copy
    assert es.cached_tables() == []  # the caller's cache is untouched
    assert view.moments() is es.moments()  # same vectors, one moments pass


def test_norms_are_the_row_norms():
    es = _set()
    np.testing.assert_allclose(es.norms(), np.linalg.norm(es.vectors, axis=1), rtol=1e-6)
